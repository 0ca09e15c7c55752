"""Evaluate the EXPORTED models (model.onnx + tokenizer.json + model.json) with onnxruntime on each
dataset's dev and test splits and print a table beside the published numbers of ../shared/data/README.md.

  python evaluate.py [--repo ../models] [--extra runs/models] [--write] [--results RESULTS.md]

--write stores the metrics into each model.json ("metrics": test, "metrics_dev": dev) and writes
the table to --results (default RESULTS.md; --results alone writes the table, no model.json). Dev scores of a model whose training data contained the dev split
(the v1 banking77 and support-en models) are marked "(in train)": they are not held-out scores.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import numpy as np  # noqa: E402

import common as C  # noqa: E402
from train import featurize, score  # noqa: E402

PUBLISHED = {  # ../shared/data/README.md
    "snips": ("JointBERT (BERT-base)", {"intent_accuracy": 98.6, "slot_f1": 97.0, "sentence_accuracy": 92.8}),
    "atis": ("JointBERT (BERT-base)", {"intent_accuracy": 97.5, "slot_f1": 96.1, "sentence_accuracy": 88.2}),
    "banking77": ("Casanueva et al. 2020, best, full data", {"intent_accuracy": 93.0}),
    "nlupp": ("no number in the data README (NLU++ paper uses other fold protocols)", {}),
    "cais": ("no number in the data README", {}),
}
TARGETS = {"snips": {"intent_accuracy": 98.0, "slot_f1": 95.0}, "atis": {"intent_accuracy": 97.0, "slot_f1": 94.5},
           "banking77": {"intent_accuracy": 92.0}}


def evaluate_model(d, threads=2, bs=64, split="test"):
    import onnxruntime as ort
    card = json.load(open(os.path.join(d, "model.json"), encoding="utf-8"))
    ds = card["training"]["dataset"]
    tk = C.load_tokenizer(os.path.join(d, "tokenizer.json"))
    multi, has_slots = C.DATASETS[ds].multi_label, C.DATASETS[ds].has_slots
    test = C.DATASETS[ds].load(split)
    iid = {l: i for i, l in enumerate(card["intent_labels"])}
    sid = {l: i for i, l in enumerate(card["slot_labels"])}
    feats = featurize(tk, test, iid, sid, multi, has_slots)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), so, providers=["CPUExecutionProvider"])
    order = sorted(range(len(feats)), key=lambda j: len(feats[j][0]))
    ils, sls = [None] * len(feats), [None] * len(feats)
    t0 = time.time()
    for i in range(0, len(order), bs):
        b = order[i:i + bs]
        T = max(len(feats[j][0]) for j in b)
        ids = np.zeros((len(b), T), np.int64)
        mask = np.zeros((len(b), T), np.int64)
        for r, j in enumerate(b):
            ids[r, :len(feats[j][0])] = feats[j][0]; mask[r, :len(feats[j][0])] = 1
        il, sl = sess.run(["intent_logits", "slot_logits"],
                          {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        for r, j in enumerate(b):
            ils[j] = il[r]; sls[j] = sl[r, :len(feats[j][0])]
    m = score(ils, sls, feats, card["intent_labels"], card["slot_labels"], multi, has_slots,
              card.get("intent_threshold") or 0.5)
    m["onnxruntime_seconds"] = round(time.time() - t0, 2)
    return card, m


def size_mb(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", default=os.path.join(HERE, "..", "models"))
    ap.add_argument("--extra", default=os.path.join(HERE, "runs", "models"), help="models not shipped (atis)")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", default="", help="write the table here (with --write: default RESULTS.md)")
    a = ap.parse_args()
    if a.write and not a.results:
        a.results = os.path.join(HERE, "RESULTS.md")
    dirs = []
    for root, shipped in ((a.repo, True), (a.extra, False)):
        if not os.path.isdir(root):
            continue
        for name in sorted(os.listdir(root)):
            if not os.path.isdir(os.path.join(root, name)):
                continue
            vs = sorted((v for v in os.listdir(os.path.join(root, name)) if v.isdigit()), key=int)
            if vs:
                dirs.append((os.path.join(root, name, vs[-1]), shipped))
    rows, fails = [], []
    for d, shipped in dirs:
        card, m = evaluate_model(d, a.threads)
        _, md = evaluate_model(d, a.threads, split="dev")
        ds = card["training"]["dataset"]
        md["held_out"] = card["training"].get("dev_held_out", ds in ("snips", "atis", "cais"))
        if a.write:
            card["metrics"] = {k: v for k, v in m.items() if k != "onnxruntime_seconds"}
            card["metrics_dev"] = {k: v for k, v in md.items() if k != "onnxruntime_seconds"}
            card["metrics_source"] = ("onnxruntime (CPU) on this model.onnx + tokenizer.json, test split "
                                      "(metrics_dev: dev split), training/evaluate.py")
            json.dump(card, open(os.path.join(d, "model.json"), "w", encoding="utf-8"), indent=2, ensure_ascii=False)
        pub_src, pub = PUBLISHED[ds]
        for k, tgt in TARGETS.get(ds, {}).items():
            if m.get(k, 0) < tgt:
                fails.append(f"{card['name']}: {k} {m.get(k)} < target {tgt}")
        rows.append((card, m, md, shipped, size_mb(d), pub_src, pub))
    hdr = ("| model | data | shipped | layers | size MB | dev intent | dev slot F1 | test intent acc / micro-F1 | "
           "test slot F1 | test sentence acc | published (intent / slot / sentence) |")
    lines = [hdr, "|" + "---|" * 11]
    for card, m, md, shipped, mb, pub_src, pub in rows:
        intent = m.get("intent_accuracy", m.get("intent_micro_f1"))
        kind = "acc" if "intent_accuracy" in m else "micro-F1"
        tag = "" if md["held_out"] else " (in train)"
        dev_i = f"{md.get('intent_accuracy', md.get('intent_micro_f1'))}{tag} (n={md['n']})"
        dev_s = f"{md['slot_f1']}{tag}" if "slot_f1" in md else "—"
        p = " / ".join(str(pub.get(k, "—")) for k in ("intent_accuracy", "slot_f1", "sentence_accuracy")) if pub else "—"
        lines.append(f"| {card['name']} | {card['training']['dataset']} (n={m['n']}) | {'yes' if shipped else 'no'} | "
                     f"{card['architecture']['layers']} | {mb:.2f} | {dev_i} | {dev_s} | {intent} ({kind}) | "
                     f"{m.get('slot_f1', '—')} | {m.get('sentence_accuracy', '—')} | {p} ({pub_src}) |")
    total = sum(mb for _, _, _, s, mb, _, _ in rows if s)
    lines.append("")
    lines.append(f"Shipped total (models/*/*/): {total:.2f} MB")
    text = "\n".join(lines)
    print(text)
    if fails:
        print("\nBelow target:\n  " + "\n  ".join(fails))
    if a.results:
        with open(a.results, "w", encoding="utf-8") as f:
            f.write("# Dev and test results of the exported models (onnxruntime, CPU)\n\nGenerated by `training/evaluate.py --write` (or `--results`)."
                    " NLU++ (support-en): intent micro-F1 over the 62-label multi-label space at threshold 0.5; "
                    "exact-match of the intent set: " + ", ".join(
                        f"{c['name']} {m['intent_exact_match']}" for c, m, *_ in rows if "intent_exact_match" in m)
                    + ". Dev splits: snips/atis official dev, CAIS valid, banking77 a seeded stratified 10% of "
                    "train.csv, NLU++ folds 14-15; \"(in train)\" marks a dev split the model was trained on"
                    + ".\n\n" + text + "\n" + ("\nBelow target:\n- " + "\n- ".join(fails) + "\n" if fails else ""))


if __name__ == "__main__":
    main()
