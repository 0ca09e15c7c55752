#!/usr/bin/env python3
"""INT8 engines side by side, one run: Kiln fp32, Kiln int8 (static, calibrated), Kiln int8-dynamic,
ONNX Runtime fp32 and ONNX Runtime int8 (dynamic quantization, QInt8 weights), the same model,
the same synthetic batch (default 16 x 32), the same thread count.

Ratios are against Kiln fp32 and ONNX Runtime int8 measured in the same run (the machine is
shared and noisy; absolute numbers from different runs mean little).

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
from engine_peers import kiln_fixed, ort_session, synthetic_inputs, time_runs  # noqa: E402


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
    by_name = dict(rows)
    kiln_fp32 = by_name["Kiln fp32"]["seq_per_s"]
    ort_int8 = by_name["ONNX Runtime int8 (dynamic)"]["seq_per_s"]
    lines = [f"### batch {args.batch}, seq {args.seq}, {args.threads} threads, {os.path.basename(args.model)}", "",
             "| engine | seq/s | p50 ms | p99 ms | vs Kiln fp32 | vs ORT int8 | CPU ms/seq | CPU-time ratio vs Kiln fp32 / ORT int8 |",
             "|---|---|---|---|---|---|---|---|"]
    cpu_fp32, cpu_ort = by_name["Kiln fp32"].get("cpu_ms_per_seq"), by_name["ONNX Runtime int8 (dynamic)"].get("cpu_ms_per_seq")
    for name, r in rows:
        cpu = r.get("cpu_ms_per_seq")
        cpu_text = f"{cpu:.2f} | {cpu_fp32 / cpu:.2f}x / {cpu_ort / cpu:.2f}x" if cpu and cpu_fp32 and cpu_ort else "- | -"
        lines.append(f"| {name} | {r['seq_per_s']:.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['seq_per_s'] / kiln_fp32:.2f}x | {r['seq_per_s'] / ort_int8:.2f}x | {cpu_text} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)


if __name__ == "__main__":
    main()
