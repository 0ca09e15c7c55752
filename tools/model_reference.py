#!/usr/bin/env python3
"""Writes ONNX Runtime reference outputs for every shipped model in models/, so the Swift tests
can check that Kiln's reference executor and compiled engine give the same outputs.

For each models/<name>/<version>/ it tokenizes a few real utterances (Hugging Face `tokenizers`,
the model's own tokenizer.json, padded to the longest) and writes
  OUT/models/<name>-<version>/inputs/<input>.npy   and   outputs/<output>.npy
computed by onnxruntime with graph optimizations disabled (the graph as exported).

Usage: python tools/model_reference.py --out .reference   (scripts/test does this)
"""
import argparse
import json
import os

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UTTERANCES = {
    "en": ["I lost my card in Zürich yesterday, can you block it?", "book a table for two at 7pm",
           "what's the weather like in Berlin tomorrow"],
    "zh": ["我想听周杰伦的歌", "明天北京天气怎么样", "导航到最近的加油站"],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    root = os.path.join(REPO, "models")
    count = 0
    for name in sorted(os.listdir(root)):
        model_dir = os.path.join(root, name)
        if not os.path.isdir(model_dir):
            continue
        for version in sorted(os.listdir(model_dir)):
            version_dir = os.path.join(model_dir, version)
            if not os.path.exists(os.path.join(version_dir, "model.onnx")):
                continue
            with open(os.path.join(version_dir, "model.json"), encoding="utf-8") as f:
                card = json.load(f)
            tokenizer = Tokenizer.from_file(os.path.join(version_dir, "tokenizer.json"))
            tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0)
            encodings = tokenizer.encode_batch(UTTERANCES["zh" if card.get("language", "en").startswith("zh") else "en"])
            feeds = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            session = ort.InferenceSession(os.path.join(version_dir, "model.onnx"), options, providers=["CPUExecutionProvider"])
            feeds = {i.name: feeds[i.name] for i in session.get_inputs()}
            outputs = session.run(None, feeds)
            target = os.path.join(args.out, "models", f"{name}-{version}")
            os.makedirs(os.path.join(target, "inputs"), exist_ok=True)
            os.makedirs(os.path.join(target, "outputs"), exist_ok=True)
            for key, value in feeds.items():
                np.save(os.path.join(target, "inputs", f"{key}.npy"), value)
            for info, value in zip(session.get_outputs(), outputs):
                np.save(os.path.join(target, "outputs", f"{info.name}.npy"), value)
            with open(os.path.join(target, "manifest.json"), "w", encoding="utf-8") as f:
                json.dump({"model": os.path.relpath(os.path.join(version_dir, "model.onnx"), REPO), "tolerance": 1e-4}, f)
            count += 1
    print(f"model references: {count} shipped model versions")


if __name__ == "__main__":
    main()
