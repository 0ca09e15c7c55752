"""Write a BERT-base-shaped JointBERT (random weights) as a Kiln model-repository folder for benchmarks.

  /work/venv-torch/bin/python bench/make_bert_base.py [--out bench/.models] [--seed 0]

writes bench/.models/bert-base-snips/1/{model.onnx, tokenizer.json, model.json} (outside git):
12 layers, hidden 768, 12 heads, FFN 3072, vocabulary 30522 rows, snips' intent/slot label counts and
tokenizer. Why random weights: the issue-7 targets need the BERT-base *shape* (work per request), not its
accuracy, and no BERT-base checkpoint is available offline here. The weights are drawn like BERT's
initialisation (normal, std 0.02) with a fixed seed; biases and LayerNorm parameters get small random
offsets so that no two initializers are equal (the exporter may merge equal initializers, and
bench/servers/torch_bert.py names each Linear by its own bias).

Export is exactly training/export.py's: the same JointBert module (training/common.py), the same weight
storage (encoder matrices and word embeddings int8 with a per-channel scale, heads and position/type
embeddings fp16, behind Cast/Mul), opset 17, legacy exporter, the same input/output names and dynamic
axes, and the same onnxruntime-vs-PyTorch check on a ragged batch of snips test texts.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "training"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import onnx  # noqa: E402
import torch  # noqa: E402

import common as C  # noqa: E402
import export as E  # noqa: E402

SHAPE = {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072, "vocab": 30522}
SNIPS = os.path.join(ROOT, "models", "snips", "1")


def random_model(num_intents: int, num_slots: int, seed: int) -> C.JointBert:
    """JointBert with BERT-like random weights; every parameter distinct (see the module doc)."""
    torch.manual_seed(seed)
    model = C.JointBert(SHAPE["vocab"], num_intents, num_slots, layers=SHAPE["layers"], hidden=SHAPE["hidden"],
                        heads=SHAPE["heads"], ffn=SHAPE["ffn"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
            elif "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.01 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.02)
    return model.eval()


def export(model: C.JointBert, pk, out: str, tk) -> tuple[onnx.ModelProto, int]:
    """torch.onnx.export with training/export.py's settings, then its compact weight storage."""
    m, n = E.export_onnx(model, tk, pk, "kiln-bench",
                         "BERT-base-shaped JointBERT with random weights (bench/make_bert_base.py): benchmarks only")
    onnx.save(m, os.path.join(out, "model.onnx"))
    return m, n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, ".models"), help="model repository root")
    ap.add_argument("--name", default="bert-base-snips")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.time()
    card_in = json.load(open(os.path.join(SNIPS, "model.json"), encoding="utf-8"))
    out = os.path.join(a.out, a.name, "1")
    os.makedirs(out, exist_ok=True)
    shutil.copyfile(os.path.join(SNIPS, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    tk = C.load_tokenizer(os.path.join(out, "tokenizer.json"))

    model = random_model(len(card_in["intent_labels"]), len(card_in["slot_labels"]), a.seed)
    pk = C.pack_weights(model.state_dict(), "int8")
    model.load_state_dict(C.unpack_weights(pk))  # PyTorch computes with exactly the stored weights
    m, n = export(model, pk, out, tk)
    texts = sorted({e.text for e in C.DATASETS["snips"].test()}, key=len)
    worst = E.verify(os.path.join(out, "model.onnx"), model,
                     tk, [texts[-1], texts[0], texts[len(texts) // 2], texts[len(texts) // 3], texts[5]])

    ops = sorted({nd.op_type for nd in m.graph.node})
    card = {k: card_in[k] for k in ("task", "language", "intent_labels", "multi_label", "intent_activation",
                                     "slot_labels", "slot_scheme", "slot_positions", "max_seq_length",
                                     "inputs", "outputs", "tokenizer") if k in card_in}
    card.update({
        "name": a.name, "version": "1",
        "architecture": {"type": "bert", "layers": SHAPE["layers"], "hidden": SHAPE["hidden"],
                         "heads": SHAPE["heads"], "ffn": SHAPE["ffn"], "vocab_rows": SHAPE["vocab"],
                         "max_position": C.MAX_SEQ, "intent_head": "linear on [CLS]",
                         "slot_head": "linear per token"},
        "weights": f"random, BERT-like init (normal std 0.02), torch seed {a.seed}: predictions are meaningless; "
                   "for benchmarks of the BERT-base shape only (snips tokenizer: ids < "
                   f"{card_in['tokenizer']['vocab_size']} of the {SHAPE['vocab']} embedding rows are used)",
        "weights_storage": {"scheme": "int8", "compacted_initializers": n,
                            "note": "as training/export.py: encoder matrices + word embeddings int8 per-channel "
                                    "scale, heads/position/type embeddings fp16; the graph computes in fp32"},
        "onnx": {"opset": 17, "exporter": "torch.onnx.export(dynamo=False)", "ops": ops,
                 "verified_max_abs_vs_torch": worst},
        "metrics": {},
    })
    json.dump(card, open(os.path.join(out, "model.json"), "w", encoding="utf-8"), indent=2, ensure_ascii=False)
    size = os.path.getsize(os.path.join(out, "model.onnx")) / 1e6
    print(f"wrote {out}: model.onnx {size:.1f} MB, {len(m.graph.node)} nodes, verified max-abs {worst:.2e} "
          f"vs PyTorch, {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
