"""Triton's perf_analyzer as a second, independent load generator for the v2-capable servers of
bench/run_all (Kiln's /v2/models/NAME/infer, MLServer's), beside `kiln bench`.

Pattern: per server, one perf_analyzer run per closed-loop concurrency of the plan (`-f` CSV, parsed
into throughput and P50/P90/P99), with --input-data built from the same snips test utterances. What a
request carries differs by server, and the report says so: MLServer's runtime takes the text (BYTES
tensor `text`), so its requests do the whole work (tokenize, model, decode); Kiln's v2 endpoint takes
token tensors (input_ids, attention_mask, token_type_ids), so Kiln's requests skip tokenization and the
NLU decoding. A failed run is recorded as {"error": ...}, never fatal: the comparison stands on
`kiln bench` alone.

UNTESTED on this machine: no perf_analyzer binary can be installed here (PyPI `perf-analyzer` 0.1.0 is
a placeholder; the real one ships in Triton's SDK container). tools/serve_perf_analyzer checks the
same flags against `kiln serve` where a binary exists.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TEXTS = os.path.join(REPO, "..", "shared", "data", "snips", "test", "seq.in")


def input_data(peer, path: str, limit: int = 200) -> None:
    """perf_analyzer --input-data JSON: one entry per utterance (text, or Kiln's token rows)."""
    with open(TEXTS, encoding="utf-8") as f:
        texts = [line.strip() for line in f if line.strip()][:limit]
    if peer.api == "v2":
        data = [{"text": {"content": [text], "shape": [1]}} for text in texts]
    else:
        from tokenizers import Tokenizer  # Kiln's v2 inputs are token ids
        repository = os.path.join(HERE, "work", "repo")
        name = os.listdir(repository)[0]
        version = os.listdir(os.path.join(repository, name))[0]
        tokenizer = Tokenizer.from_file(os.path.join(repository, name, version, "tokenizer.json"))
        data = []
        for text in texts:
            ids = tokenizer.encode(text).ids
            data.append({"input_ids": {"content": ids, "shape": [len(ids)]},
                         "attention_mask": {"content": [1] * len(ids), "shape": [len(ids)]},
                         "token_type_ids": {"content": [0] * len(ids), "shape": [len(ids)]}})
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"data": data}, f)


def model_name(peer) -> str:
    return peer.model or os.listdir(os.path.join(HERE, "work", "repo"))[0]


def run(binary: str, peer, duration: float, concurrency: list[int]) -> dict:
    """perf_analyzer at each concurrency -> {"what": ..., "points": [{concurrency, throughput_rps, p50/p90/p99 ms}]}."""
    host = peer.url.split("://", 1)[-1].rstrip("/")
    what = ("text in (whole work per request)" if peer.api == "v2"
            else "token tensors in (no tokenization / NLU decoding in the request)")
    points = []
    with tempfile.TemporaryDirectory() as scratch:
        data, table = os.path.join(scratch, "input.json"), os.path.join(scratch, "out.csv")
        try:
            input_data(peer, data)
        except Exception as error:  # noqa: BLE001
            return {"what": what, "error": f"input data: {error}"}
        for clients in concurrency:
            command = [binary, "-m", model_name(peer), "-u", host, "-i", "http", "--input-data", data,
                       "--concurrency-range", str(clients), "--measurement-interval", str(int(duration * 1000)),
                       "-f", table]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not os.path.exists(table):
                return {"what": what, "points": points,
                        "error": f"{' '.join(command)} -> {done.returncode}: {(done.stderr or done.stdout)[-500:]}"}
            with open(table, newline="") as f:
                for row in csv.DictReader(f):
                    points.append({"concurrency": int(row["Concurrency"]),
                                   "throughput_rps": float(row["Inferences/Second"]),
                                   **{f"p{p}_ms": float(row[f"p{p} latency"]) / 1000 for p in (50, 90, 99)}})
    return {"what": what, "points": points}
