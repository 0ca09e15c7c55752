#!/usr/bin/env python3
"""Engine-level comparison: the same ONNX model, the same inputs, the same thread count, through
Kiln (`kiln bench-engine`) and its peers (ONNX Runtime fp32 with all graph optimizations, ONNX
Runtime int8 dynamic quantization, OpenVINO fp32 when installed), in one run. bf16 (Kiln and
OpenVINO) is measured where the CPU runs it; elsewhere the report says why it was not (what
`kiln build --precision bf16` answers, and which precision OpenVINO actually chose for a bf16 hint).

Two modes:
  fixed       synthetic batches of fixed shape (default: batch 1 and 16, seq 32)
  utterances  real utterances (default: snips test set) in batches of 16 in file order; peers run
              each batch padded to its longest utterance; Kiln gets the same padded batch with its
              attention mask and runs the real tokens only (padding-free), plus a padded row
              (KILN_PACKED=0) for the A/B

Writes a markdown table to stdout (and --out). Ratios are against the best peer in the same run:
these machines are noisy, so only same-run ratios mean anything. "CPU ms/seq" is process CPU time
(all threads, spin-waiting included) per sequence: steadier than wall time on a busy machine.
Last, a peak-RSS comparison of Kiln and ONNX Runtime, each serving the model in its own process
(--no-rss skips it).

Usage (bench/run_engine_peers sets up bench/.venv and builds kiln in release):
  python bench/engine_peers.py --model models/snips/1/model.onnx --kiln .build/release/kiln --threads 2
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def synthetic_inputs(session_inputs, batch, seq):
    inputs = {}
    for info in session_inputs:
        if "mask" in info.name:
            values = np.ones((batch, seq), dtype=np.int64)
            values[-1, seq // 2 + 1:] = 0
        elif "type" in info.name:
            values = np.zeros((batch, seq), dtype=np.int64)
        else:
            values = ((np.arange(batch * seq) * 7 + 3) % 100).reshape(batch, seq).astype(np.int64)
        inputs[info.name] = values
    return inputs


def utterance_batches(tokenizer_path, files, batch, max_length, names):
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(tokenizer_path)
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    lines = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            lines += [line.strip() for line in f if line.strip()]
    batches = []
    for start in range(0, len(lines), batch):
        encodings = tokenizer.encode_batch(lines[start:start + batch])
        longest = max(len(e.ids) for e in encodings)
        def matrix(field):
            return np.array([getattr(e, field) + [0] * (longest - len(e.ids)) for e in encodings], dtype=np.int64)
        feed = {"input_ids": matrix("ids"), "attention_mask": matrix("attention_mask"), "token_type_ids": matrix("type_ids")}
        batches.append({k: v for k, v in feed.items() if k in names})
    return lines, batches


def time_runs(run, feeds, seconds):
    run(feeds[0])
    latencies, sequences = [], 0
    cpu_start = time.process_time()
    start = time.perf_counter()
    while True:
        for feed in feeds:
            t0 = time.perf_counter()
            run(feed)
            latencies.append((time.perf_counter() - t0) * 1000)
            sequences += next(iter(feed.values())).shape[0]
        if time.perf_counter() - start >= seconds:
            break
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    latencies.sort()
    return {"seq_per_s": sequences / elapsed, "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "cpu_ms_per_seq": cpu * 1000 / max(sequences, 1)}


ORT_RSS_SCRIPT = """
import resource, sys, time, numpy as np, onnxruntime as ort
model, threads, batch, seq, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
options = ort.SessionOptions(); options.intra_op_num_threads = threads; options.inter_op_num_threads = 1
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
feed = {}
for info in session.get_inputs():
    if "mask" in info.name: feed[info.name] = np.ones((batch, seq), dtype=np.int64)
    elif "type" in info.name: feed[info.name] = np.zeros((batch, seq), dtype=np.int64)
    else: feed[info.name] = ((np.arange(batch * seq) * 7 + 3) % 100).reshape(batch, seq).astype(np.int64)
start = time.perf_counter()
while time.perf_counter() - start < seconds: session.run(None, feed)
time.sleep(0.2)  # let the parent's /proc poll see the final high-water mark
"""


def peak_rss_mib(command):
    """Peak resident memory (MiB) of a child process: its VmHWM, polled from /proc until it exits.
    (wait4's ru_maxrss is no good here: a child forked from this Python process starts with
    Python's high-water mark, ORT sessions included.)"""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kib = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} exited with {process.returncode}")
    return peak_kib / 1024


def rss_table(kiln, plan, model, threads, batch, seq, seconds):
    """Peak RSS serving one model: each engine in its own process, loading the model and running
    batch x seq for a few seconds (the ORT process includes the Python interpreter and numpy)."""
    kiln_mib = peak_rss_mib([kiln, "bench-engine", plan, "--batch", str(batch), "--seq", str(seq), "--seconds", str(seconds),
                             "--threads", str(threads), "--json"])
    ort_mib = peak_rss_mib([sys.executable, "-c", ORT_RSS_SCRIPT, model, str(threads), str(batch), str(seq), str(seconds)])
    return "\n".join([f"### peak RSS serving the model (batch {batch}, seq {seq}, {seconds:g} s, own process each)", "",
                      "| engine | peak RSS MiB | vs ONNX Runtime |", "|---|---|---|",
                      f"| ONNX Runtime fp32 (python + numpy + ORT) | {ort_mib:.0f} | 1.00x |",
                      f"| Kiln fp32 (kiln bench-engine, .kiln plan) | {kiln_mib:.0f} | {kiln_mib / ort_mib:.2f}x |"]) + "\n"


def ort_session(path, threads, optimized=True):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimized else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def peers(model, threads, workdir):
    found = {}
    session = ort_session(model, threads)
    found["ONNX Runtime fp32"] = lambda feed, s=session: s.run(None, feed)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantized = os.path.join(workdir, "model.int8.onnx")
        quantize_dynamic(model, quantized, weight_type=QuantType.QInt8)
        session8 = ort_session(quantized, threads)
        found["ONNX Runtime int8 (dynamic)"] = lambda feed, s=session8: s.run(None, feed)
    except Exception as error:  # noqa: BLE001 - report and go on with the other peers
        print(f"note: ORT int8 unavailable: {error}", file=sys.stderr)
    try:
        import openvino as ov
        core = ov.Core()
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
        found["OpenVINO fp32"] = lambda feed, c=compiled: c(feed)
    except Exception as error:  # noqa: BLE001
        print(f"note: OpenVINO unavailable: {error}", file=sys.stderr)
    return found


def bf16_engines(model, kiln, threads, workdir):
    """bf16 peers and the Kiln bf16 plan, where this CPU runs them: ({name: run}, plan or None,
    notes saying why an engine is missing). OpenVINO silently executes a bf16 hint in fp32 on CPUs
    without bf16 instructions, so its row counts only when it reports bf16 as the precision used."""
    found, notes = {}, []
    try:
        import openvino as ov
        core = ov.Core()
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "bf16"})
        used = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        if "bf16" in used:
            found["OpenVINO bf16"] = lambda feed, c=compiled: c(feed)
        else:
            capabilities = ", ".join(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
            notes.append(f"OpenVINO bf16: not measured: asked for bf16, it runs {used} (CPU capabilities: {capabilities})")
    except Exception as error:  # noqa: BLE001 - report and go on
        notes.append(f"OpenVINO bf16: unavailable: {error}")
    plan = os.path.join(workdir, "model.bf16.kiln")
    built = subprocess.run([kiln, "build", model, "-o", plan, "--precision", "bf16"], capture_output=True, text=True)
    if built.returncode != 0:
        message = (built.stderr.strip() or built.stdout.strip()).splitlines()
        notes.append(f"Kiln bf16: not measured: `kiln build --precision bf16` says: {message[-1] if message else built.returncode}")
        plan = None
    return found, plan, notes


def kiln_env(packed):
    """KILN_PACKED=0 turns the engine's padding-free execution off (the padded A/B row)."""
    return {**os.environ, "KILN_PACKED": "1" if packed else "0"}


def kiln_fixed(kiln, plan, threads, batch, seq, seconds, packed=False):
    out = subprocess.run([kiln, "bench-engine", plan, "--batch", str(batch), "--seq", str(seq), "--seconds", str(seconds),
                          "--threads", str(threads), "--json"], check=True, capture_output=True, text=True,
                         env=kiln_env(packed)).stdout
    return json.loads(out.strip().splitlines()[-1])


def kiln_utterances(kiln, plan, threads, texts, tokenizer, batch, max_length, seconds, packed=True):
    """Kiln gets each batch padded to its longest, with its attention mask: the engine then runs
    the real tokens only (natural lengths) unless packed=False."""
    out = subprocess.run([kiln, "bench-engine", plan, "--texts", texts, "--tokenizer", tokenizer, "--batch", str(batch),
                          "--max-length", str(max_length), "--seconds", str(seconds), "--threads", str(threads), "--json"],
                         check=True, capture_output=True, text=True, env=kiln_env(packed)).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(title, rows):
    best_peer = max((r["seq_per_s"] for name, r in rows if not name.startswith("Kiln")), default=None)
    lines = [f"### {title}", "", "| engine | seq/s | p50 ms | p99 ms | CPU ms/seq | vs best peer |", "|---|---|---|---|---|---|"]
    for name, r in rows:
        ratio = f"{r['seq_per_s'] / best_peer:.2f}x" if best_peer else "-"
        cpu = f"{r['cpu_ms_per_seq']:.2f}" if "cpu_ms_per_seq" in r else "-"
        lines.append(f"| {name} | {r['seq_per_s']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {cpu} | {ratio} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="the ONNX model")
    parser.add_argument("--kiln", default=os.path.join(REPO, ".build", "release", "kiln"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--tokenizer", help="tokenizer.json (default: beside the model)")
    parser.add_argument("--texts", nargs="*", default=[os.path.join(DATA, "snips", "test", "seq.in")])
    parser.add_argument("--out", help="also write the markdown here")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS comparison")
    args = parser.parse_args()
    tokenizer = args.tokenizer or os.path.join(os.path.dirname(args.model), "tokenizer.json")
    with tempfile.TemporaryDirectory() as workdir:
        plan = os.path.join(workdir, "model.kiln")
        subprocess.run([args.kiln, "build", args.model, "-o", plan], check=True, capture_output=True)
        found = peers(args.model, args.threads, workdir)
        names = {i.name for i in ort_session(args.model, 1).get_inputs()}
        session_inputs = ort_session(args.model, 1).get_inputs()
        report = [f"## Engine comparison: `{os.path.relpath(args.model, REPO)}`, {args.threads} threads, {args.seconds:.0f} s per cell", "",
                  f"Command: `python bench/engine_peers.py --model {os.path.relpath(args.model, REPO)} --threads {args.threads} --seconds {args.seconds:g}`", ""]
        for batch in [int(b) for b in args.batches.split(",")]:
            feeds = [synthetic_inputs(session_inputs, batch, args.seq)]
            rows = [(name, time_runs(run, feeds, args.seconds)) for name, run in found.items()]
            # The synthetic batch's last row is half padding: the padded row is the dense comparison,
            # the padding-free row skips that padding (as it would in serving).
            rows.append(("Kiln fp32 padded (KILN_PACKED=0)", kiln_fixed(args.kiln, plan, args.threads, batch, args.seq, args.seconds)))
            rows.append(("Kiln fp32 padding-free", kiln_fixed(args.kiln, plan, args.threads, batch, args.seq, args.seconds, packed=True)))
            report.append(table(f"fixed shape: batch {batch}, seq {args.seq}", rows))
        bf16_found, bf16_plan, bf16_notes = bf16_engines(args.model, args.kiln, args.threads, workdir)
        for batch in [int(b) for b in args.batches.split(",")] if (bf16_found or bf16_plan) else []:
            feeds = [synthetic_inputs(session_inputs, batch, args.seq)]
            rows = [(name, time_runs(run, feeds, args.seconds)) for name, run in bf16_found.items()]
            if bf16_plan:
                rows.append(("Kiln bf16 padded (KILN_PACKED=0)", kiln_fixed(args.kiln, bf16_plan, args.threads, batch, args.seq, args.seconds)))
            report.append(table(f"bf16, fixed shape: batch {batch}, seq {args.seq}", rows))
        if bf16_notes:
            report.append("### bf16\n\n" + "\n".join(f"- {note}" for note in bf16_notes) + "\n")
        if os.path.exists(tokenizer):
            lines, feeds = utterance_batches(tokenizer, args.texts, 16, 128, names)
            names_mask = "attention_mask" if "attention_mask" in names else None
            texts = os.path.join(workdir, "texts.txt")
            with open(texts, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            rows = [(name, time_runs(run, feeds, args.seconds)) for name, run in found.items()]
            rows.append(("Kiln fp32 padding-free (natural lengths)", kiln_utterances(args.kiln, plan, args.threads, texts, tokenizer, 16, 128, args.seconds)))
            rows.append(("Kiln fp32 padded (KILN_PACKED=0)", kiln_utterances(args.kiln, plan, args.threads, texts, tokenizer, 16, 128, args.seconds, packed=False)))
            real = sum(int(f[names_mask].sum()) for f in feeds) if names_mask else 0
            padded = sum(f[names_mask].size for f in feeds) if names_mask else 0
            report.append(table(f"real utterances ({len(lines)} lines, batches of 16 in file order; peers pad to the longest in the batch"
                                f"{f', {real} real of {padded} padded tokens' if padded else ''})", rows))
        if not args.no_rss:
            report.append(rss_table(args.kiln, plan, args.model, args.threads, 16, args.seq, min(args.seconds, 3)))
        text = "\n".join(report)
        print(text)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)


if __name__ == "__main__":
    main()
