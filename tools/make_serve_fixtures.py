"""Build the tiny model repository the `kiln serve` tests run against.

  /work/venv-torch/bin/python tools/make_serve_fixtures.py [--out Tests/Fixtures/serve/models]

writes, under --out:
  repository.json                         {"default": "tiny-nlu", "models": [...]}
  tiny-nlu/1/{model.onnx, tokenizer.json, model.json}   random-weight joint BERT (hidden 32, 2 layers)
  tiny-nlu/2/...                          the same weights: a "good" candidate that agrees with version 1
  tiny-nlu/3/...                          the same weights with shuffled intent and slot labels: a "bad"
                                          candidate the roll-out manager must roll back
  kiln-serve.json (next to models/)       a config that pins tiny-nlu to version 1

The model has the layout the training pipeline exports (training/export.py): inputs int64 input_ids,
attention_mask, token_type_ids [batch, sequence]; outputs intent_logits [batch, num_intents] and
slot_logits [batch, sequence, num_slots]; opset 17, legacy exporter, dynamic batch and sequence axes.
Weights are random (seeded) and the heads are scaled up so different texts get different intents
and some slots: the tests check plumbing (the server answers what the engine answers), not accuracy.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_SEQ = 64
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
INTENTS = ["greeting", "check_balance", "transfer_money", "book_hotel", "cancel_booking", "goodbye"]
SLOTS = ["O", "B-amount", "I-amount", "B-city", "I-city", "B-date", "I-date"]
CORPUS = [
    "hello there how are you today",
    "what is my account balance please",
    "transfer 50 dollars to my savings account",
    "book a hotel in new york for next friday",
    "cancel my booking in paris on monday",
    "goodbye and thanks for the help",
    "send money to john tomorrow morning",
    "i need a room in london from june 3 to june 5",
    "how much money do i have left",
    "please move 200 euros to checking",
    "i want to stay in san francisco this weekend",
    "thank you bye",
]


def build_vocab():
    words = sorted({w for line in CORPUS for w in line.split()})
    pieces = ["##s", "##ing", "##ed", "##er", "##ly", "##0", "##5"]
    chars = sorted({c for line in CORPUS for c in line if not c.isspace()})
    punctuation = list(".,!?'-$€:;/()\"&%")
    subchars = ["##" + c for c in chars]
    vocab = SPECIALS + words + pieces + chars + punctuation + subchars
    seen, unique = set(), []
    for token in vocab:
        if token not in seen:
            seen.add(token)
            unique.append(token)
    return unique


def make_tokenizer(vocab):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    ids = {token: index for index, token in enumerate(vocab)}
    tokenizer = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                      strip_accents=None, lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    tokenizer.add_special_tokens(SPECIALS)
    return tokenizer


class Layer(nn.Module):
    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.attention_output = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, ffn)
        self.output = nn.Linear(ffn, hidden)
        self.output_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.heads, self.head_size = heads, hidden // heads

    def forward(self, x, bias):
        batch, length = x.size(0), x.size(1)

        def split(t):
            return t.view(batch, length, self.heads, self.head_size).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size) + bias
        context = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(batch, length, -1)
        x = self.attention_norm(x + self.attention_output(context))
        return self.output_norm(x + self.output(F.gelu(self.intermediate(x))))


class TinyJointBert(nn.Module):
    def __init__(self, vocab_size, num_intents, num_slots, hidden=32, heads=2, ffn=64, layers=2):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden)
        self.position_embeddings = nn.Embedding(MAX_SEQ, hidden)
        self.token_type_embeddings = nn.Embedding(2, hidden)
        self.embedding_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList([Layer(hidden, heads, ffn) for _ in range(layers)])
        self.intent_head = nn.Linear(hidden, num_intents)
        self.slot_head = nn.Linear(hidden, num_slots)
        self.register_buffer("position_ids", torch.arange(MAX_SEQ).unsqueeze(0), persistent=False)

    def forward(self, input_ids, attention_mask, token_type_ids):
        length = input_ids.size(1)
        x = (self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids[:, :length])
             + self.token_type_embeddings(token_type_ids))
        x = self.embedding_norm(x)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return self.intent_head(x[:, 0]), self.slot_head(x)


def export(model, tokenizer, path):
    encoding = tokenizer.encode(CORPUS[3])
    ids = torch.tensor([encoding.ids, encoding.ids], dtype=torch.int64)
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    torch.onnx.export(
        model, (ids, mask, types), path, dynamo=False, opset_version=17,
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["intent_logits", "slot_logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                      "token_type_ids": {0: "batch", 1: "sequence"}, "intent_logits": {0: "batch"},
                      "slot_logits": {0: "batch", 1: "sequence"}})


def card(version, intents, slots, vocab_size, note):
    return {
        "name": "tiny-nlu", "version": version, "task": "joint-intent-slot", "language": "en",
        "intent_labels": intents, "multi_label": False, "intent_activation": "softmax",
        "slot_labels": slots, "slot_scheme": "BIO", "slot_positions": "first_subtoken",
        "max_seq_length": MAX_SEQ,
        "inputs": [{"name": k, "dtype": "int64", "shape": ["batch", "sequence"]}
                   for k in ("input_ids", "attention_mask", "token_type_ids")],
        "outputs": [{"name": "intent_logits", "dtype": "float32", "shape": ["batch", len(intents)]},
                    {"name": "slot_logits", "dtype": "float32", "shape": ["batch", "sequence", len(slots)]}],
        "tokenizer": {"file": "tokenizer.json", "type": "WordPiece", "lowercase": True, "vocab_size": vocab_size},
        "metrics": {}, "license": "CC0-1.0 (random weights, test fixture)",
        "note": note,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(HERE, "..", "Tests", "Fixtures", "serve", "models"))
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(7)
    random.seed(7)

    vocab = build_vocab()
    tokenizer = make_tokenizer(vocab)
    model = TinyJointBert(len(vocab), len(INTENTS), len(SLOTS)).eval()
    with torch.no_grad():  # bigger head weights so the argmax varies from text to text
        for layer in model.layers:  # sharper attention: [CLS] depends on the words, not just itself
            layer.query.weight.mul_(4.0)
            layer.key.weight.mul_(4.0)
            layer.value.weight.mul_(3.0)
        model.intent_head.weight.mul_(40.0)
        model.intent_head.bias.zero_()
        model.slot_head.weight.mul_(3.0)
        model.slot_head.bias.zero_()
        model.slot_head.bias[0] = 2.0  # mostly "O", with a few slots

    shuffled_intents = INTENTS[1:] + INTENTS[:1]
    shuffled_slots = ["O"] + SLOTS[3:] + SLOTS[1:3]
    versions = {
        1: (INTENTS, SLOTS, "version 1: the serving version"),
        2: (INTENTS, SLOTS, "version 2: same weights as 1, a good candidate"),
        3: (shuffled_intents, shuffled_slots, "version 3: same weights, shuffled labels: a bad candidate"),
    }
    for version, (intents, slots, note) in versions.items():
        directory = os.path.join(out, "tiny-nlu", str(version))
        os.makedirs(directory)
        export(model, tokenizer, os.path.join(directory, "model.onnx"))
        tokenizer.save(os.path.join(directory, "tokenizer.json"))
        with open(os.path.join(directory, "model.json"), "w") as f:
            json.dump(card(version, intents, slots, len(vocab), note), f, indent=2)
    with open(os.path.join(out, "repository.json"), "w") as f:
        json.dump({"default": "tiny-nlu", "models": [{"name": "tiny-nlu", "versions": ["1", "2", "3"],
                                                      "latest": "3", "task": "joint-intent-slot",
                                                      "language": "en", "multi_label": False}]}, f, indent=2)
    with open(os.path.join(out, "..", "kiln-serve.json"), "w") as f:
        json.dump({"models": {"tiny-nlu": {"version_policy": {"specific": 1}}}}, f, indent=2)

    # Print what the model says for a few texts so a reader can see the fixture is not degenerate.
    with torch.no_grad():
        for text in CORPUS[:6]:
            encoding = tokenizer.encode(text)
            ids = torch.tensor([encoding.ids])
            intent_logits, slot_logits = model(ids, torch.ones_like(ids), torch.zeros_like(ids))
            tags = [SLOTS[i] for i in slot_logits[0].argmax(-1).tolist()]
            print(f"{text!r}: {INTENTS[intent_logits[0].argmax().item()]} {tags}")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print(f"wrote {out} ({total / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
