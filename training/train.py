"""Fine-tune a JointBERT-style model (shared MiniLM encoder, intent head on [CLS], BIO slot head
on the first sub-token of each word, joint loss) on one dataset of ../shared/data.

  python train.py --dataset snips --layers 4 --epochs 5 --out runs/snips
writes runs/snips/{model.pt (packed weights = exactly what ships, see common.pack_weights), meta.json (labels, vocab, config, metrics, time)}.

Model selection uses the dev split only (common.DATASETS[..].dev): dev is scored after every epoch and,
with --select best (default), the checkpoint with the best dev score (intent accuracy or micro-F1, plus
slot F1 where the data has slots) is the one stored; the test split is scored once, on that checkpoint.
--max-steps N caps the run (quick end-to-end check of the pipeline; the LR schedule spans the N steps).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import common as C  # noqa: E402


def featurize(tk, examples, intent_ids, slot_ids, multi, has_slots):
    feats = []
    for ex in examples:
        ids, offs, first = C.encode(tk, ex.text)
        tags = C.word_labels(offs, first, ex.spans) if has_slots else [None if not f else "O" for f in first]
        sl = [slot_ids.get(t, 0) if t is not None else -100 for t in tags]
        if multi:
            y = [0.0] * len(intent_ids)
            for it in ex.intents:
                if it in intent_ids:
                    y[intent_ids[it]] = 1.0
        else:
            y = intent_ids.get(ex.intents[0], -1)
        feats.append((ids, sl, y, tags))
    return feats


def batches(feats, bs, shuffle, rng):
    idx = list(range(len(feats)))
    if shuffle:
        rng.shuffle(idx)
        # sort-by-length bucketing inside chunks of 50 batches, then shuffle the batches
        chunk = bs * 50
        idx = sum((sorted(idx[i:i + chunk], key=lambda j: len(feats[j][0])) for i in range(0, len(idx), chunk)), [])
        bl = [idx[i:i + bs] for i in range(0, len(idx), bs)]
        rng.shuffle(bl)
    else:
        idx.sort(key=lambda j: len(feats[j][0]))
        bl = [idx[i:i + bs] for i in range(0, len(idx), bs)]
    return bl


def collate(feats, b, multi, device):
    T = max(len(feats[j][0]) for j in b)
    ids = torch.zeros(len(b), T, dtype=torch.long)
    mask = torch.zeros(len(b), T, dtype=torch.long)
    slots = torch.full((len(b), T), -100, dtype=torch.long)
    for r, j in enumerate(b):
        n = len(feats[j][0])
        ids[r, :n] = torch.tensor(feats[j][0]); mask[r, :n] = 1
        slots[r, :n] = torch.tensor(feats[j][1])
    y = torch.tensor([feats[j][2] for j in b], dtype=torch.float if multi else torch.long)
    return ids.to(device), mask.to(device), torch.zeros_like(ids).to(device), slots.to(device), y.to(device)


def score(intent_logits_list, slot_logits_list, feats, intent_labels, slot_labels, multi, has_slots,
          threshold=0.5):
    """Metrics from per-example logits (numpy). Intent: accuracy (single) / micro-F1 (multi);
    slots: entity-level F1 on words (conlleval); sentence: intent(s) and all slot tags right."""
    n_ok_int = n_ok_sent = 0
    tp = fp = fn = 0
    gold_seqs, pred_seqs = [], []
    for il, sl, f in zip(intent_logits_list, slot_logits_list, feats):
        ids, _, y, tags = f
        if multi:
            pred = set(np.nonzero(il > np.log(threshold / (1 - threshold)))[0].tolist())
            gold = set(np.nonzero(np.array(y) > 0.5)[0].tolist())
            tp += len(pred & gold); fp += len(pred - gold); fn += len(gold - pred)
            int_ok = pred == gold
        else:
            int_ok = int(il.argmax()) == y
        n_ok_int += int_ok
        pos = [i for i, t in enumerate(tags) if t is not None]
        g = [tags[i] for i in pos]
        p = [slot_labels[int(sl[i].argmax())] for i in pos]
        gold_seqs.append(g); pred_seqs.append(p)
        n_ok_sent += int_ok and (g == p or not has_slots)
    n = len(feats)
    m = {}
    if multi:
        pr = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        m["intent_micro_f1"] = round(100 * (2 * pr * rc / (pr + rc) if pr + rc else 0.0), 2)
        m["intent_exact_match"] = round(100 * n_ok_int / n, 2)
    else:
        m["intent_accuracy"] = round(100 * n_ok_int / n, 2)
    if has_slots:
        m["slot_f1"] = round(100 * C.slot_prf(gold_seqs, pred_seqs), 2)
        m["sentence_accuracy"] = round(100 * n_ok_sent / n, 2)
    m["n"] = n
    return m


@torch.no_grad()
def evaluate_torch(model, feats, multi, has_slots, intent_labels, slot_labels, device, bs=128):
    model.eval()
    ils, sls = [None] * len(feats), [None] * len(feats)
    for b in batches(feats, bs, False, None):
        ids, mask, tt, _, _ = collate(feats, b, multi, device)
        il, sl = model(ids, mask, tt)
        il, sl = il.float().cpu().numpy(), sl.float().cpu().numpy()
        for r, j in enumerate(b):
            ils[j] = il[r]; sls[j] = sl[r, :len(feats[j][0])]
    return score(ils, sls, feats, intent_labels, slot_labels, multi, has_slots)


def dev_score(m):
    """The single number checkpoints are selected on: intent metric + slot F1 (where there are slots)."""
    return m.get("intent_accuracy", m.get("intent_micro_f1", 0.0)) + m.get("slot_f1", 0.0)


def round_fp16_(model):
    """What the shipped model stores: every float weight rounded to fp16 (computed in fp32)."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True, choices=sorted(C.DATASETS))
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--epochs", type=float, default=5)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--min-freq", type=int, default=1, help="drop WordPieces seen fewer times in train")
    ap.add_argument("--full-vocab", action="store_true", help="keep the whole 30,522-token vocabulary")
    ap.add_argument("--keep-top", type=int, default=0,
                    help="also keep the first N whole-word tokens of the base vocabulary (fewer test-time splits)")
    ap.add_argument("--store", default="int8", choices=["fp32", "fp16", "int8"], help="weight storage of model.pt")
    ap.add_argument("--limit", type=int, default=0, help="train/test on the first N examples (smoke test)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after N optimizer steps (quick pipeline check)")
    ap.add_argument("--select", default="best", choices=["best", "last"],
                    help="store the checkpoint with the best dev score (default) or the last one")
    ap.add_argument("--train-split", default="train", choices=["train", "train-full"],
                    help="train-full = train + the dev carved out of it (banking77, nlupp): the v1 protocol")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(a.threads)
    C.set_seed(a.seed)
    t0 = time.time()
    spec = C.DATASETS[a.dataset]
    multi, has_slots, lang, licence = spec.multi_label, spec.has_slots, spec.language, spec.licence
    train, dev, test = spec.load(a.train_split), spec.load("dev"), spec.load("test")
    dev_held_out = a.train_split == "train" or spec.train_full is None
    if a.limit:
        train, dev, test = train[: a.limit], dev[: max(50, a.limit // 4)], test[: max(50, a.limit // 4)]
    if a.full_vocab:
        from tokenizers import Tokenizer
        base = json.load(open(os.path.join(C.base_model_dir(), "tokenizer.json")))
        vocab = sorted(base["model"]["vocab"], key=base["model"]["vocab"].get)
        src = list(range(len(vocab)))
    else:
        vocab, src = C.build_vocab([e.text for e in train], a.min_freq, a.keep_top)
    tok_json = C.make_tokenizer_json(vocab)
    tk = C.load_tokenizer(tok_json)
    intent_labels = sorted({i for e in train for i in e.intents})
    types = sorted({s[2] for e in train for s in e.spans})
    slot_labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    iid = {l: i for i, l in enumerate(intent_labels)}
    sid = {l: i for i, l in enumerate(slot_labels)}
    ftr = featurize(tk, train, iid, sid, multi, has_slots)
    fte = featurize(tk, test, iid, sid, multi, has_slots)
    fdev = featurize(tk, dev, iid, sid, multi, has_slots)
    n_new = sum(1 for s in src if s < 0)
    print(f"[{a.dataset}] train {len(train)} dev {len(dev)} test {len(test)} vocab {len(vocab)} (new rows {n_new}) "
          f"intents {len(intent_labels)} slots {len(slot_labels)} layers {a.layers} "
          f"max_len {max(len(f[0]) for f in ftr)}", flush=True)

    model = C.JointBert(len(vocab), len(intent_labels), len(slot_labels), layers=a.layers)
    C.init_from_base(model, src, a.layers)
    model.to(a.device)
    rng = random.Random(a.seed)
    steps_per_epoch = (len(ftr) + a.batch - 1) // a.batch
    total = int(steps_per_epoch * a.epochs)
    if a.max_steps:
        total = min(total, a.max_steps)
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr)
    warm = max(1, int(0.1 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / (total - warm))))
    step, epoch, curve, best = 0, 0, [], None
    t_train, t_dev = time.time(), 0.0
    while step < total:
        model.train()
        run = 0.0
        epoch += 1
        for b in batches(ftr, a.batch, True, rng):
            if step >= total:
                break
            ids, mask, tt, slots, y = collate(ftr, b, multi, a.device)
            il, sl = model(ids, mask, tt)
            if multi:
                li = F.binary_cross_entropy_with_logits(il, y)
                li = li * il.size(1) / 8.0  # sum-ish over labels so the intent loss is not swamped
            else:
                li = F.cross_entropy(il, y)
            loss = li + (F.cross_entropy(sl.reshape(-1, sl.size(-1)), slots.reshape(-1), ignore_index=-100)
                         if has_slots else 0.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); step += 1
            run += loss.item()
            if step % 100 == 0:
                print(f"  step {step}/{total} loss {run / 100:.4f} {time.time() - t_train:.0f}s", flush=True)
                run = 0.0
        # end of an epoch (or of a --max-steps run): score dev, keep the best checkpoint
        t0_dev = time.time()
        md = evaluate_torch(model, fdev, multi, has_slots, intent_labels, slot_labels, a.device)
        t_dev += time.time() - t0_dev
        curve.append({"epoch": epoch, "step": step, **{k: v for k, v in md.items() if k != "n"}})
        better = best is None or dev_score(md) > best[0] or a.select == "last"
        if better:
            best = (dev_score(md), epoch, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
        print(f"  epoch {epoch} step {step} dev {md}{'  *' if better else ''}", flush=True)
    train_s = time.time() - t_train - t_dev
    model.cpu()
    sd32 = best[2]
    model.load_state_dict(sd32)
    print(f"[{a.dataset}] selected epoch {best[1]} of {epoch} ({a.select} on dev)", flush=True)
    res, res_dev = {}, {}
    for scheme in ("fp32", "fp16", "int8"):
        pk = C.pack_weights(sd32, scheme)
        model.load_state_dict(C.unpack_weights(pk) if scheme != "fp32" else sd32)
        res[scheme] = evaluate_torch(model, fte, multi, has_slots, intent_labels, slot_labels, "cpu")
        if scheme in ("fp32", a.store):
            res_dev[scheme] = evaluate_torch(model, fdev, multi, has_slots, intent_labels, slot_labels, "cpu")
        if scheme == a.store:
            torch.save(pk, os.path.join(a.out, "model.pt"))
    for k, v in res.items():
        print(f"[{a.dataset}] test {k} weights: {v}", flush=True)
    for k, v in res_dev.items():
        print(f"[{a.dataset}] dev {k} weights: {v}", flush=True)
    print(f"[{a.dataset}] train {train_s:.0f}s (+ dev scoring {t_dev:.0f}s)", flush=True)
    os.makedirs(a.out, exist_ok=True)
    meta = dict(dataset=a.dataset, language=lang, licence=licence, multi_label=multi, has_slots=has_slots,
                intent_labels=intent_labels, slot_labels=slot_labels, vocab=vocab, layers=a.layers,
                epochs=a.epochs, lr=a.lr, batch=a.batch, seed=a.seed, min_freq=a.min_freq,
                full_vocab=a.full_vocab, n_train=len(train), n_dev=len(dev), n_test=len(test), new_vocab_rows=n_new,
                train_split=a.train_split, dev_protocol=spec.dev_protocol if dev_held_out else
                "none held out (" + spec.dev_protocol.split(",")[0] + " is inside the training data)",
                dev_held_out=dev_held_out, select=a.select, selected_epoch=best[1], epochs_run=epoch,
                max_steps=a.max_steps, steps=step, dev_curve=curve, dev_torch=res_dev, dev_seconds=round(t_dev, 1),
                device=a.device + (f" ({torch.cuda.get_device_name()})" if a.device.startswith("cuda") else
                                   f" ({a.threads} threads)"),
                train_seconds=round(train_s, 1), total_seconds=round(time.time() - t0, 1),
                test_torch=res, store=a.store, keep_top=a.keep_top, torch=torch.__version__)
    json.dump(meta, open(os.path.join(a.out, "meta.json"), "w"), indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
