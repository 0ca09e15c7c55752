#!/usr/bin/env python3
"""Checks `kiln tokenize` against Python `tokenizers` on every utterance of ../shared/data.

Usage: python tools/tokenize_cli_parity.py --kiln .build/debug/kiln [--tokenizer Tests/Fixtures/tokenizers/minilm-uncased.json]
Exits non-zero if any line differs. Needs the `tokenizers` package (scripts/setup puts it in .venv).
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenizer_reference as reference  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiln", required=True, help="path to the kiln executable")
    parser.add_argument("--tokenizer", default=os.path.join(reference.FIXTURES, "minilm-uncased.json"))
    parser.add_argument("--max-length", type=int)
    args = parser.parse_args()
    tokenizer = Tokenizer.from_file(args.tokenizer)
    if args.max_length is not None:
        tokenizer = reference.with_max_length(tokenizer, args.max_length)
    datasets = {
        "snips": reference.load_snips_atis("snips"),
        "atis": reference.load_snips_atis("atis"),
        "banking77": reference.load_banking77(),
        "nlupp_banking": reference.load_nlupp("banking"),
        "nlupp_hotels": reference.load_nlupp("hotels"),
        "cais": reference.load_cais(),
    }
    command = [args.kiln, "tokenize", "--tokenizer", args.tokenizer]
    if args.max_length is not None:
        command += ["--max-length", str(args.max_length)]
    failed = 0
    for name, texts in datasets.items():
        texts = [t for t in texts if "\n" not in t and "\r" not in t]  # one text per line
        output = subprocess.run(command, input="\n".join(texts) + "\n", capture_output=True, text=True, check=True)
        lines = output.stdout.splitlines()
        same = 0
        for text, line in zip(texts, lines):
            e = tokenizer.encode(text)
            expected = {"ids": e.ids, "type_ids": e.type_ids, "attention_mask": e.attention_mask,
                        "offsets": [list(o) for o in e.offsets]}
            same += json.loads(line) == expected
        print(f"kiln tokenize {name}: {same}/{len(texts)} identical")
        failed += len(texts) - same
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
