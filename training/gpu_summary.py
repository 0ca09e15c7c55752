"""Tables from a gpu_repro.sh result (the unpacked gpu-repro.tgz): every trained run with its split,
selected epoch and dev/test scores (PyTorch, int8 weights as shipped), dev scores at quarter points of
training, and the onnxruntime table of the dev-protocol models.

  python gpu_summary.py DIR > results/gpu-<date>.md
"""
import glob
import json
import os
import sys


def intent(m):
    return m.get("intent_accuracy", m.get("intent_micro_f1"))


def fmt(m):
    return f"{intent(m)} / {m['slot_f1']}" if "slot_f1" in m else f"{intent(m)}"


def main():
    d = sys.argv[1]
    metas = [("make models (dev)", p) for p in sorted(glob.glob(f"{d}/dev/runs/*/meta.json"))]
    metas += [("sweep --plan dev", p) for p in sorted(glob.glob(f"{d}/sweep-dev/*/meta.json"))]
    metas += [("make models PROTOCOL=v1", p) for p in sorted(glob.glob(f"{d}/v1/runs/*/meta.json"))]
    print("| source | data | layers | train split (n) | epochs | selected epoch | dev (int8) | test (int8) | "
          "test sentence acc | train s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    curves = []
    for src, p in metas:
        m = json.load(open(p))
        dv, te = m["dev_torch"]["int8"], m["test_torch"]["int8"]
        dev_note = "" if m["dev_held_out"] else " (in train)"
        print(f"| {src} | {m['dataset']} | {m['layers']} | {m['train_split']} ({m['n_train']}) | {m['epochs']:g} | "
              f"{m['selected_epoch']} | {fmt(dv)}{dev_note} | {fmt(te)} | {te.get('sentence_accuracy', '—')} | "
              f"{m['train_seconds']:.0f} |")
        c, n = m["dev_curve"], len(m["dev_curve"])
        pts = sorted({max(1, n // 4), n // 2, 3 * n // 4, n})
        curves.append(f"| {src} | {m['dataset']} L{m['layers']} | " + " | ".join(
            f"e{e}: {fmt(c[e - 1])}" for e in pts) + " |")
    print("\nDev score (fp32, during training) at quarter points of the run:\n")
    print("| source | run | 1/4 | 1/2 | 3/4 | end |\n|---|---|---|---|---|---|")
    print("\n".join(curves))
    res = os.path.join(d, "dev", "RESULTS.md")
    if os.path.exists(res):
        print("\nonnxruntime on the exported dev-protocol models (evaluate.py):\n")
        print("\n".join(ln for ln in open(res).read().splitlines() if ln.startswith("|") or ln.startswith("Shipped")))


if __name__ == "__main__":
    main()
