"""Reproduce the embedded models: train -> export (+ ORT verification) -> evaluate (ORT).
`make models` runs this in training/.venv. The configurations below were chosen with the size
sweeps of sweep.py (see README.md); all seeds are fixed (42).

  python build_models.py [--device cpu|cuda] [--only support-en,atis] [--skip-train]
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# name: (dataset, layers, epochs, extra train args, shipped)
MODELS = {
    "support-en": ("nlupp", 6, 60, [], True),
    "banking77": ("banking77", 4, 15, [], True),
    "snips": ("snips", 6, 15, [], True),
    "support-zh": ("cais", 2, 20, [], True),
    "atis": ("atis", 6, 20, ["--keep-top", "3000"], False),
}


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=os.environ.get("DEVICE", "cpu"))
    ap.add_argument("--threads", default=os.environ.get("THREADS", "2"))
    ap.add_argument("--only", default="")
    ap.add_argument("--skip-train", action="store_true", help="export/evaluate the runs already in runs/")
    a = ap.parse_args()
    py = sys.executable
    names = [n for n in MODELS if not a.only or n in a.only.split(",")]
    for n in names:
        ds, layers, epochs, extra, shipped = MODELS[n]
        out = os.path.join("runs", n)
        if not a.skip_train:
            t0 = time.time()
            run([py, "train.py", "--dataset", ds, "--layers", str(layers), "--epochs", str(epochs),
                 "--device", a.device, "--threads", a.threads, "--out", out] + extra)
            print(f"[{n}] trained in {time.time() - t0:.0f}s", flush=True)
        repo = os.path.join(HERE, "..", "models") if shipped else os.path.join("runs", "models")
        run([py, "export.py", "--run", out, "--name", n, "--version", "1", "--repo", repo]
            + ([] if shipped else ["--no-repository-json"]))
    run([py, "evaluate.py", "--write", "--threads", a.threads])


if __name__ == "__main__":
    main()
