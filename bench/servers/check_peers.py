"""Checks that the peers do the same work as Kiln, before anything is timed.

1. The PyTorch eager model (torch_bert.py, what TorchServe serves) against ONNX Runtime on the
   same ONNX file: intent and slot logits within --tolerance (1e-3) max-abs, on real utterances in
   ragged padded batches.
2. The shared decoding (nlu.py, what TorchServe and MLServer answer with) against Kiln's own
   /v1/parse on the same utterances, when --kiln-url is given: same intent, same slots (name, value,
   offsets), confidences within 1e-3.

Exits non-zero on any mismatch. Run with bench/servers/.venv-torchserve/bin/python (torch + ORT).
"""
import argparse
import json
import os
import sys
import urllib.request

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nlu  # noqa: E402


def read_texts(path, limit):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()][:limit]


def check_eager(card, texts, tolerance, batch=16):
    import onnxruntime as ort
    import torch
    import torch_bert
    torch.set_num_threads(2)
    model = torch_bert.load_from_onnx(card.onnx_path)
    session = ort.InferenceSession(card.onnx_path, providers=["CPUExecutionProvider"])
    encoder = nlu.Encoder(card)
    worst = 0.0
    for start in range(0, len(texts), batch):
        _, feeds = encoder.encode(texts[start:start + batch])
        expected = session.run(["intent_logits", "slot_logits"], feeds)
        with torch.inference_mode():
            got = model(*[torch.from_numpy(feeds[n]) for n in ("input_ids", "attention_mask", "token_type_ids")])
        worst = max(worst, *(float(np.abs(e - g.numpy()).max()) for e, g in zip(expected, got)))
    print(f"eager PyTorch vs ONNX Runtime, {len(texts)} utterances: max-abs logit difference {worst:.2e} "
          f"(tolerance {tolerance:g})")
    return worst <= tolerance


def check_decoding(card, texts, kiln_url, tolerance=1e-3):
    import onnxruntime as ort
    session = ort.InferenceSession(card.onnx_path, providers=["CPUExecutionProvider"])
    pipeline = nlu.Pipeline(card, lambda feeds: session.run(["intent_logits", "slot_logits"], feeds))
    mismatches = 0
    for text in texts:
        ours = pipeline.parse([text])[0]
        request = urllib.request.Request(kiln_url.rstrip("/") + "/v1/parse", json.dumps({"text": text, "model": card.name}).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            theirs = json.load(reply)
        same = ours["intent"]["name"] == theirs["intent"]["name"]
        same &= abs(ours["intent"]["confidence"] - theirs["intent"]["confidence"]) <= tolerance
        same &= [(s["name"], s["value"], s["start"], s["end"]) for s in ours["slots"]] == \
                [(s["name"], s["value"], s["start"], s["end"]) for s in theirs["slots"]]
        if not same:
            mismatches += 1
            if mismatches <= 3:
                print(f"  differs on {text!r}:\n    peers {ours}\n    kiln  {theirs}")
    print(f"peer decoding vs kiln /v1/parse, {len(texts)} utterances: {mismatches} differ")
    return mismatches == 0


def main():
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=os.path.join(repo, "models", "snips", "1"))
    parser.add_argument("--texts", default=os.path.join(repo, "..", "shared", "data", "snips", "test", "seq.in"))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--kiln-url", help="a running kiln serve of the same model, to compare answers with")
    parser.add_argument("--skip-eager", action="store_true", help="only the decoding check (no torch needed)")
    args = parser.parse_args()
    card = nlu.ModelCard(args.model_dir)
    texts = read_texts(args.texts, args.limit)
    ok = True
    if not args.skip_eager:
        ok &= check_eager(card, texts, args.tolerance)
    if args.kiln_url:
        ok &= check_decoding(card, texts, args.kiln_url)
    print("peer checks:", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
