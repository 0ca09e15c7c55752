"""Estimate the CPU training time of the shipped configurations: times N training steps on real
length-bucketed batches and extrapolates to the full run. Reports wall time here (shared, noisy) and
process CPU time (≈ wall on an otherwise idle machine x the threads used)."""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import common as C  # noqa: E402
from build_models import MODELS  # noqa: E402
from train import batches, collate, featurize  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=12)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
for name, (ds, layers, epochs, extra, _) in MODELS.items():
    C.set_seed(42)
    spec = C.DATASETS[ds]
    multi, has_slots = spec.multi_label, spec.has_slots
    train = spec.train()
    vocab, src = C.build_vocab([e.text for e in train], 1, 3000 if "--keep-top" in extra else 0)
    tk = C.load_tokenizer(C.make_tokenizer_json(vocab))
    intents = sorted({i for e in train for i in e.intents})
    types = sorted({s[2] for e in train for s in e.spans})
    slots = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    feats = featurize(tk, train, {l: i for i, l in enumerate(intents)}, {l: i for i, l in enumerate(slots)}, multi, has_slots)
    model = C.JointBert(len(vocab), len(intents), len(slots), layers=layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    bl = batches(feats, 32, True, random.Random(42))
    model.train()
    w0, c0 = time.time(), time.process_time()
    for b in bl[: a.steps]:
        ids, mask, tt, sl, y = collate(feats, b, multi, "cpu")
        il, so = model(ids, mask, tt)
        loss = (F.binary_cross_entropy_with_logits(il, y) if multi else F.cross_entropy(il, y))
        if has_slots:
            loss = loss + F.cross_entropy(so.reshape(-1, so.size(-1)), sl.reshape(-1), ignore_index=-100)
        opt.zero_grad(); loss.backward(); opt.step()
    w, c = (time.time() - w0) / a.steps, (time.process_time() - c0) / a.steps
    total = int(len(bl) * epochs)
    print(f"{name}: {total} steps; per step wall {w:.2f}s cpu {c:.2f}s -> full run wall-here {total * w / 3600:.2f} h, "
          f"cpu {total * c / 3600:.2f} core-h (~{total * c / a.threads / 3600:.2f} h on {a.threads} idle cores)", flush=True)
