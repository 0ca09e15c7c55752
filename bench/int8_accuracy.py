#!/usr/bin/env python3
"""INT8 accuracy table (issue 5): for each model, pure int8 (static, calibrated), int8-dynamic and
mixed precision (the sensitivity search) against Kiln fp32 on the test set, with `kiln verify`.

Protocol per model (calibration on training data, >= 1000 utterances, percentile method):
  snips      calibrate on train, search on dev (700),  verify on test (700)
  atis       calibrate on train, search on dev (500),  verify on test (893)
  support-en calibrate on folds 0-15, search on folds 16-17, verify on folds 18-19 (the held-out
             folds split in two, so the search never sees the rows it is judged on); pure int8 is
             also verified on all of 16-19 (the set of bench/INT8.md's earlier rows).

Usage (release kiln):
  python3 bench/int8_accuracy.py --kiln .build-int8-rel/release/kiln --out /tmp/int8-accuracy.md
Each `kiln` command is printed before it runs; JSON reports land in --workdir.
"""
import argparse
import json
import os
import subprocess
import sys

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")


def nlupp(folds):
    return [os.path.join(DATA, "nlupp", domain, f"fold{n}.json") for domain in ("banking", "hotels") for n in folds]


MODELS = {
    "snips": dict(model="models/snips/1/model.onnx", calibrate=[os.path.join(DATA, "snips/train")],
                  search=[os.path.join(DATA, "snips/dev")], tests={"test (700)": [os.path.join(DATA, "snips/test")]}),
    "atis": dict(model="training/runs/models/atis/1/model.onnx", calibrate=[os.path.join(DATA, "atis/train")],
                 search=[os.path.join(DATA, "atis/dev")], tests={"test (893)": [os.path.join(DATA, "atis/test")]}),
    "support-en": dict(model="models/support-en/1/model.onnx", calibrate=nlupp(range(16)), search=nlupp([16, 17]),
                       tests={"folds 18-19": nlupp([18, 19]), "folds 16-19": nlupp([16, 17, 18, 19])}),
}


def run(command):
    print("+ " + " ".join(command), flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode not in (0, 1):  # verify exits 1 past tolerance: still a result
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"failed: {' '.join(command)}")
    return result


def flags(name, paths):
    return [part for path in paths for part in (name, path)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiln", required=True)
    parser.add_argument("--models", default="snips,atis,support-en")
    parser.add_argument("--workdir", default="/tmp/kiln-int8-accuracy")
    parser.add_argument("--sensitivity-samples", type=int, default=1000)
    parser.add_argument("--out")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    lines = ["| model | test set | engine | intent | slot F1 | sentence | drop intent / slot | max-abs logit diff | agreement | gate (0.5 / 1.0) | GEMMs fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.models.split(","):
        spec = MODELS[name]
        work = lambda suffix: os.path.join(args.workdir, f"{name}.{suffix}")
        calibration = work("cal.json")
        if not os.path.exists(calibration):
            run([args.kiln, "calibrate", spec["model"], *flags("--data", spec["calibrate"]), "--samples", "1000",
                 "--method", "percentile", "-o", calibration])
        builds = {
            "pure int8 (static)": ["--precision", "int8", "--calibration", calibration],
            "int8-dynamic": ["--precision", "int8-dynamic"],
            "mixed (sensitivity search, int8 static)": [
                "--precision", "int8", "--calibration", calibration, "--max-intent-drop", "0.5", "--max-slot-f1-drop", "1.0",
                *flags("--sensitivity-data", spec["search"]), "--sensitivity-samples", str(args.sensitivity_samples)],
        }
        kept = {}
        for engine, extra in builds.items():
            plan = work(engine.split()[0] + ".kiln")
            result = run([args.kiln, "build", spec["model"], "-o", plan, "--no-verify", *extra])
            log = result.stdout + result.stderr
            with open(work(engine.split()[0] + ".build.log"), "w") as f:
                f.write(log)
            kept[engine] = "—"
            for line in log.splitlines():
                if "mixed precision:" in line:
                    kept[engine] = line.split("mixed precision:")[1].split("GEMMs")[0].strip()
                elif "all int8:" in line and engine.startswith("mixed") and kept[engine] == "—":
                    kept[engine] = "0"
            builds[engine] = plan
        first = True
        for test, paths in spec["tests"].items():
            for engine, plan in builds.items():
                report_path = work(f"{engine.split()[0]}.{test.split()[0]}{test.split()[-1]}.verify.json")
                run([args.kiln, "verify", plan, "--reference", spec["model"], *flags("--data", paths), "--json", report_path])
                with open(report_path) as f:
                    report = json.load(f)
                ref, eng, agree = report["reference"], report["engine"], report["agreement"]
                if first:
                    lines.append(f"| {name} | {test} | Kiln fp32 (reference) | {ref['intent']:.2f} | {ref['slotF1']:.2f} | "
                                 f"{ref['sentenceAccuracy']:.2f} | — | — | — | — | all |")
                    first = False
                drop_i, drop_s = ref["intent"] - eng["intent"], ref["slotF1"] - eng["slotF1"]
                gate = "PASS" if drop_i <= 0.5 and drop_s <= 1.0 else "FAIL"
                lines.append(f"| {name} | {test} | {engine} | {eng['intent']:.2f} | {eng['slotF1']:.2f} | {eng['sentenceAccuracy']:.2f} | "
                             f"{drop_i:.2f} / {drop_s:.2f} | {agree['maxAbsLogitDifference']:.3f} | {agree['agreement']:.2f} % | {gate} | "
                             f"{kept[engine] if engine.startswith('mixed') else ('0' if 'int8' in engine else 'all')} |")
            first = True
        print("\n".join(lines), flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
