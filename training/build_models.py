"""Reproduce the embedded models: train -> export (+ ORT verification) -> evaluate (ORT, dev + test).
`make models` runs this in training/.venv. The configurations below (layers, epochs) were chosen with
the size sweeps of sweep.py, which scored on the TEST splits (see README.md, "What was chosen on what");
checkpoints are now selected on the dev splits. All seeds are fixed (42).

  python build_models.py [--device cpu|cuda] [--only support-en,atis] [--skip-train] [--jobs N]
                         [--protocol dev|v1] [--out DIR] [--quick [STEPS]]

--protocol dev (default): train on train minus dev (banking77, NLU++ lose their dev part), keep the
  checkpoint with the best dev score. v1: what the shipped v1 models were trained with (dev folded back
  into train for banking77/NLU++, last epoch kept).
--out DIR: write runs/ and the model repository under DIR instead of runs/ + ../models.
--quick [STEPS]: the whole pipeline with STEPS (default 20) training steps per model, into
  runs/quick/ (never ../models): proves the pipeline runs end to end; its metrics mean nothing.
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
PROTOCOL_ARGS = {"dev": ["--train-split", "train", "--select", "best"],
                 "v1": ["--train-split", "train-full", "--select", "last"]}


def run(cmd, log=None):
    print("+", " ".join(cmd), flush=True)
    if log is None:
        subprocess.run(cmd, check=True, cwd=HERE)
        return
    with open(log, "w") as f:
        return subprocess.Popen(cmd, cwd=HERE, stdout=f, stderr=subprocess.STDOUT)


def train_all(names, a, runs, py):
    """Trains the models, a.jobs at a time (each process logs to <run>.log when jobs > 1)."""
    steps = ["--max-steps", str(a.quick)] if a.quick else []
    todo, procs, failed = list(names), [], []
    while todo or procs:
        while todo and len(procs) < a.jobs:
            n = todo.pop(0)
            ds, layers, epochs, extra, _ = MODELS[n]
            cmd = [py, "train.py", "--dataset", ds, "--layers", str(layers), "--epochs", str(epochs),
                   "--device", a.device, "--threads", a.threads, "--out", os.path.join(runs, n)]
            cmd += extra + PROTOCOL_ARGS[a.protocol] + steps
            if a.jobs == 1:
                t0 = time.time()
                run(cmd)
                print(f"[{n}] trained in {time.time() - t0:.0f}s", flush=True)
                continue
            procs.append((n, time.time(), run(cmd, os.path.join(runs, n + ".log"))))
        time.sleep(1)
        for n, t0, p in list(procs):
            if p.poll() is not None:
                procs.remove((n, t0, p))
                print(f"[{n}] exit {p.returncode} after {time.time() - t0:.0f}s", flush=True)
                if p.returncode:
                    failed.append(n)
    if failed:
        raise SystemExit(f"training failed: {failed} (logs in {runs}/<name>.log)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=os.environ.get("DEVICE", "cpu"))
    ap.add_argument("--threads", default=os.environ.get("THREADS", "2"))
    ap.add_argument("--only", default="")
    ap.add_argument("--skip-train", action="store_true", help="export/evaluate the runs already in runs/")
    ap.add_argument("--jobs", type=int, default=1, help="trainings at once (GPU: all five fit)")
    ap.add_argument("--protocol", default="dev", choices=sorted(PROTOCOL_ARGS))
    ap.add_argument("--out", default="", help="write runs + model repository here, not runs/ + ../models")
    ap.add_argument("--quick", type=int, nargs="?", const=20, default=0,
                    help="STEPS training steps per model, output in runs/quick/ (pipeline check)")
    a = ap.parse_args()
    if a.quick and not a.out:
        a.out = os.path.join(HERE, "runs", "quick")
    runs = os.path.join(a.out, "runs") if a.out else "runs"
    repo = os.path.join(a.out, "models") if a.out else os.path.join(HERE, "..", "models")
    extra_repo = os.path.join(a.out, "models-extra") if a.out else os.path.join("runs", "models")
    os.makedirs(runs, exist_ok=True)
    py = sys.executable
    names = [n for n in MODELS if not a.only or n in a.only.split(",")]
    t_all = time.time()
    if not a.skip_train:
        train_all(names, a, runs, py)
    for n in names:
        shipped = MODELS[n][4]
        run([py, "export.py", "--run", os.path.join(runs, n), "--name", n, "--version", "1",
             "--repo", repo if shipped else extra_repo] + ([] if shipped else ["--no-repository-json"]))
    run([py, "evaluate.py", "--write", "--threads", a.threads, "--repo", repo, "--extra", extra_repo]
        + (["--results", os.path.join(a.out, "RESULTS.md")] if a.out else []))
    print(f"build_models done in {time.time() - t_all:.0f}s (protocol {a.protocol}"
          f"{f', quick: {a.quick} steps per model' if a.quick else ''}; output {a.out or 'runs/ + ../models'})",
          flush=True)


if __name__ == "__main__":
    main()
