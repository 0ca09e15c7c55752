#!/usr/bin/env python3
"""INT8 engines side by side, one run: Kiln fp32, Kiln int8 (static, calibrated), Kiln int8-dynamic,
ONNX Runtime fp32 and ONNX Runtime int8 (dynamic quantization, QInt8 weights), the same model,
the same synthetic batch (default 16 x 32), the same thread count.

Ratios are against Kiln fp32 and ONNX Runtime int8 measured in the same run (the machine is
shared and noisy; absolute numbers from different runs mean little).

Second table (unless --no-utterances): real utterances (default: the snips test set) in batches of
16 in file order. ONNX Runtime runs each batch padded to its longest utterance; Kiln gets the same
padded batch with its attention mask and runs only the real tokens (padding-free execution, for
int8 plans too), plus a padded Kiln int8 row (KILN_PACKED=0) for the A/B.

Usage:
  kiln calibrate models/snips/1/model.onnx --data ../shared/data/snips/train -o /tmp/snips.calibration.json
  bench/.venv/bin/python bench/int8_peers.py --model models/snips/1/model.onnx \
      --calibration /tmp/snips.calibration.json --kiln .build-int8-rel/release/kiln --threads 2
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_peers import DATA, kiln_fixed, kiln_utterances, ort_session, synthetic_inputs, time_runs, utterance_batches  # noqa: E402


def table(rows, fp32_name, ort_name):
    """Markdown rows with seq/s and CPU-time ratios against `fp32_name` and `ort_name` (same run)."""
    by_name = dict(rows)
    kiln_fp32, ort_int8 = by_name[fp32_name]["seq_per_s"], by_name[ort_name]["seq_per_s"]
    lines = [f"| engine | seq/s | p50 ms | p99 ms | vs {fp32_name} | vs ORT int8 | CPU ms/seq | CPU-time ratio vs {fp32_name} / ORT int8 |",
             "|---|---|---|---|---|---|---|---|"]
    cpu_fp32, cpu_ort = by_name[fp32_name].get("cpu_ms_per_seq"), by_name[ort_name].get("cpu_ms_per_seq")
    for name, r in rows:
        cpu = r.get("cpu_ms_per_seq")
        cpu_text = f"{cpu:.2f} | {cpu_fp32 / cpu:.2f}x / {cpu_ort / cpu:.2f}x" if cpu and cpu_fp32 and cpu_ort else "- | -"
        lines.append(f"| {name} | {r['seq_per_s']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['seq_per_s'] / kiln_fp32:.2f}x | {r['seq_per_s'] / ort_int8:.2f}x | {cpu_text} |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--calibration", required=True, help="cache from `kiln calibrate` for --model")
    parser.add_argument("--kiln", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--build-args", default="", help="extra `kiln build` arguments for the int8 plan (e.g. --keep-fp32 NODE)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="time every engine this many times, interleaved, and keep each engine's best round")
    parser.add_argument("--out", help="also write the markdown here")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: beside the model)")
    parser.add_argument("--texts", nargs="*", default=[os.path.join(DATA, "snips", "test", "seq.in")])
    parser.add_argument("--no-utterances", action="store_true", help="skip the real-utterance table")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        plans = {}
        for name, extra in [("fp32", []), ("int8", ["--calibration", args.calibration] + args.build_args.split()),
                            ("int8-dynamic", [])]:
            plans[name] = os.path.join(workdir, f"model.{name}.kiln")
            subprocess.run([args.kiln, "build", args.model, "--precision", name, "-o", plans[name], "--no-verify"] + extra,
                           check=True, capture_output=True)
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantized = os.path.join(workdir, "model.ort-int8.onnx")
        quantize_dynamic(args.model, quantized, weight_type=QuantType.QInt8)
        sessions = {"ONNX Runtime fp32": ort_session(args.model, args.threads),
                    "ONNX Runtime int8 (dynamic)": ort_session(quantized, args.threads)}
        feed = synthetic_inputs(sessions["ONNX Runtime fp32"].get_inputs(), args.batch, args.seq)
        # Interleave engines so slow drifts of the shared machine hit all of them alike; keep the
        # best round of each (the least disturbed by other work on the machine).
        best = {}
        for _ in range(args.rounds):
            for name, session in sessions.items():
                r = time_runs(lambda f, s=session: s.run(None, f), [feed], args.seconds)
                best[name] = max(best.get(name, r), r, key=lambda x: x["seq_per_s"])
            for name in ["fp32", "int8", "int8-dynamic"]:
                r = kiln_fixed(args.kiln, plans[name], args.threads, args.batch, args.seq, args.seconds)
                best[f"Kiln {name}"] = max(best.get(f"Kiln {name}", r), r, key=lambda x: x["seq_per_s"])
        rows = list(best.items())
        tokenizer = args.tokenizer or os.path.join(os.path.dirname(args.model), "tokenizer.json")
        utterance_rows, utterance_title = [], ""
        if not args.no_utterances and os.path.exists(tokenizer):
            names = {i.name for i in sessions["ONNX Runtime fp32"].get_inputs()}
            lines, feeds = utterance_batches(tokenizer, args.texts, args.batch, 128, names)
            texts = os.path.join(workdir, "texts.txt")
            with open(texts, "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
            real = sum(int(f["attention_mask"].sum()) for f in feeds) if "attention_mask" in names else 0
            padded = sum(f["attention_mask"].size for f in feeds) if "attention_mask" in names else 0
            utterance_title = (f"### real utterances ({len(lines)} lines, batches of {args.batch} in file order, "
                               f"{real} real of {padded} padded tokens), {args.threads} threads")
            cells = [(name, lambda s=session: time_runs(lambda f: s.run(None, f), feeds, args.seconds)) for name, session in sessions.items()]
            for name in ["fp32", "int8", "int8-dynamic"]:
                cells.append((f"Kiln {name} padding-free", lambda n=name: kiln_utterances(
                    args.kiln, plans[n], args.threads, texts, tokenizer, args.batch, 128, args.seconds)))
            cells.append(("Kiln int8 padded (KILN_PACKED=0)", lambda: kiln_utterances(
                args.kiln, plans["int8"], args.threads, texts, tokenizer, args.batch, 128, args.seconds, packed=False)))
            best_u = {}
            for _ in range(args.rounds):
                for name, measure in cells:
                    r = measure()
                    best_u[name] = max(best_u.get(name, r), r, key=lambda x: x["seq_per_s"])
            utterance_rows = list(best_u.items())
    lines = [f"### batch {args.batch}, seq {args.seq}, {args.threads} threads, {os.path.basename(args.model)}", ""]
    lines += table(rows, "Kiln fp32", "ONNX Runtime int8 (dynamic)")
    if utterance_rows:
        lines += ["", utterance_title, ""] + table(utterance_rows, "Kiln fp32 padding-free", "ONNX Runtime int8 (dynamic)")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
