#!/usr/bin/env python3
"""Writes the expected Hugging Face `tokenizers` output that KilnText's parity tests compare against.

For every fixture tokenizer in Tests/Fixtures/tokenizers/*.json and every utterance set, writes
  OUT/tokenizer/<tokenizer>/<set>.jsonl
one JSON object per encoded input:
  {"text", ["pair"], ["max_length"], ["add_special_tokens"], "ids", "type_ids", "attention_mask", "offsets", "word_ids", ["tokens"],
   ["padding"]}
(`tokens` only for the small hand-written sets). Padding is written losslessly as a run:
"padding": {"side", "count", "id", "type_id", "token"} stands for `count` identical padding entries
(attention 0, offsets [0, 0], word null) at that end of every list. Offsets are character (Unicode scalar) offsets, as
the Python `Encoding.offsets` reports them. Lines of `<set>_batch.jsonl` were encoded together with
`encode_batch` and must be encoded together.

Also writes OUT/tokenizer/unicode_classes.tsv: for every code point, what HF's BERT normalizer pieces
(clean_text, handle_chinese_chars, strip_accents, lowercase) and BERT pre-tokenizer do to it, one line
per code point that is not left unchanged: `HEX<TAB>kind<TAB>result`.

Utterance sets (all of ../shared/data, resolved relative to this repository):
  snips, atis        every split's seq.in
  banking77          train.csv and test.csv, column `text`
  nlupp_banking, nlupp_hotels   every fold's `text`
  cais               every split's ch.SPLIT, characters joined into the utterance
  edge               hand-written edge cases (empty, whitespace, emoji, controls, accents, CJK, ...)
  truncation         utterances at max_length 8 and 16, singles and pairs
  fuzz               3000 random mixtures of risky characters (fixed seed), singles, pairs, truncated
  edge_batch         the edge cases encoded as one batch (batch padding)
A line with "error" instead of ids records that HF refused the input; Kiln must throw for it.

Usage: python tools/tokenizer_reference.py --out .reference   (scripts/test does this)
"""
import argparse
import csv
import random
import glob
import json
import os
import sys

from tokenizers import Tokenizer, normalizers, pre_tokenizers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "Tests", "Fixtures", "tokenizers")
DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def read_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        return [line[:-1] if line.endswith("\n") else line for line in f]


def load_snips_atis(name):
    texts = []
    for split in ("train", "dev", "test"):
        texts += read_lines(os.path.join(DATA, name, split, "seq.in"))
    return texts


def load_banking77():
    texts = []
    for split in ("train", "test"):
        with open(os.path.join(DATA, "banking77", f"{split}.csv"), encoding="utf-8", newline="") as f:
            texts += [row["text"] for row in csv.DictReader(f)]
    return texts


def load_nlupp(domain):
    texts = []
    for fold in range(20):
        with open(os.path.join(DATA, "nlupp", domain, f"fold{fold}.json"), encoding="utf-8") as f:
            texts += [example["text"] for example in json.load(f)]
    return texts


def load_cais():
    texts = []
    for split in ("train", "valid", "test"):
        chars = []
        for line in read_lines(os.path.join(DATA, "cais", split, f"ch.{split}")):
            if line == "":
                if chars:
                    texts.append("".join(chars))
                chars = []
            else:
                chars.append(line.rsplit(" ", 1)[0])
        if chars:
            texts.append("".join(chars))
    return texts


EDGE_TEXTS = [
    "",
    " ",
    "   \t\n  ",
    "\u3000\u00a0\u2003",
    "hello world",
    "Hello, World!!! (really?) $100.50 #1 @user 50% a&b <tag> ^_^ ~tilde~ `code` {x} [y] |z| \\ /",
    "!!!",
    "...",
    "e-mail: john.doe@example.com, url: https://example.com/a?b=1&c=2",
    "1,000,000.00 and 3.14159 and 10:30pm",
    # emoji, including ZWJ sequences, skin tones, flags, variation selectors, newer emoji
    "I love 🍕 and 😀!",
    "👨\u200d👩\u200d👧\u200d👦 family",
    "🏳️\u200d🌈 flag and 🇫🇷 France",
    "👍🏽 thumbs up",
    "🥺 please 🫠 melting",
    "❤️ heart ❤ plain",
    "😀😃😄",
    # control and zero-width characters
    "hello\u200bworld",
    "a\u0000b\u0007c\u001bd",
    "zero\u200dwidth\u200cnon\u2060joiner",
    "\ufeffbyte order mark",
    "soft\u00adhyphen",
    "tab\tnew\nline\rcarriage",
    "\u0085next line \u2028 line sep \u2029 para sep",
    "replacement \ufffd char",
    "\u202eright to left override\u202c",
    "private \ue000 use \U000f0000 plane",
    "noncharacter \ufdd0 \uffff",
    "\u0007",
    # combining accents
    "cafe\u0301",
    "caf\u00e9",
    "e\u0301\u0301\u0301",
    "\u0301leading combining mark",
    "\u1ec7 vi\u1ec7t",
    "A\u0302\u0323 reorder",
    "x\u0308y\u0308z",
    "\u0915\u093c\u094d\u0937 devanagari nukta",
    "ñandú Ångström",
    "\ufb01anc\u00e9 ligature",
    "İstanbul İİ",
    "ΣΑΣ σας ΌΛΟΙ",
    "Straße STRASSE",
    "ǅemal ǈ ǋ",
    "ﬀ ﬃ ẞ",
    "Ⅻ ⅻ ① ㎏",
    # full-width forms
    "ＡＢＣ１２３！？",
    "Ｈｅｌｌｏ，ｗｏｒｌｄ．",
    # CJK and mixed
    "我想听周杰伦的歌 please play Jay Chou",
    "中文English混合123",
    "東京タワーに行きたい",
    "ひらがな カタカナ ｶﾀｶﾅ",
    "한국어 텍스트입니다",
    "\U00020000\U0002a700 ext \U0002b820\U0002b920 gap",
    "\uf900\ufa0e compat",
    "（全角括号）【方括号】《书名号》，。！？",
    # other scripts
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "שלום עולם",
    "Привет, мир! ЁЖИК",
    "Γειά σου Κόσμε",
    # accented Latin
    "Crème brûlée à la française",
    "São Paulo, Curaçao, Zürich, Kraków",
    "naïve coöperation façade",
    "Dvořák Škoda Łódź Ørsted",
    # long words around max_input_chars_per_word (100)
    "x" * 99,
    "x" * 100,
    "y" * 101,
    "a" * 300,
    "supercalifragilistic" * 15,
    "é" * 100 + " " + "é" * 101,
    # special tokens inline
    "[MASK]",
    "hello [MASK] world",
    "[CLS] already has [SEP] tokens",
    "[mask] lowercase is not special",
    "[MASK][MASK]x[MASK]",
    "[UNK] [PAD] [SEP]",
    "[MASK",
    "[SLOT] kiln Kiln KILN kilns",
    "the Kiln-server [SLOT]city[SLOT]",
    "find <ent> here",
    "a  <ent>  b <ent><ent>",
    "xyzzy plugh xyzzy. axyzzy xyzzyb XYZZY",
    # long text for the tokenizer's own truncation
    "word " * 200,
    "book a flight from new york to san francisco on the fifth of july " * 12,
]

EDGE_PAIRS = [
    ("what is my balance", "checking account"),
    ("", "second only"),
    ("first only", ""),
    ("I love 🍕", "[MASK] café"),
    ("中文句子", "English sentence"),
]

TRUNCATION_TEXTS = [
    "book a flight from new york to san francisco on the fifth of july please",
    "short",
    "Crème brûlée à la française is délicieuse",
    "我想听周杰伦的歌曲青花瓷",
    "[MASK] " * 20,
    "one two three four five six",
]


FUZZ_POOLS = [
    ["hello", "World", "a", "I", "book", "flight", "PLAY", "don't", "e-mail", "123", "3.5", "unaffable", "naïve"],
    [" ", "  ", "\t", "\n", "\r\n", "\u3000", "\u00a0", "\u2009", "\u1680"],
    [",", ".", "!", "?", "'", '"', "(", ")", "$", "%", "#", "@", "&", "-", "_", "~", "^", "`", "|", "+", "<", "=",
     "«", "»", "¿", "—", "…", "、", "。", "，", "\u2e43", "\u166d", "\U000111c9"],
    ["é", "È", "ñ", "ü", "Å", "ø", "ß", "ç", "ă", "ő", "ẞ", "ǅ", "İ", "ı", "Σ", "ς", "ǰ", "ΐ", "ﬁ", "Ǆ", "ῼ"],
    ["\u0301", "\u0300", "\u0323", "\u0302", "\u0308", "\u0327", "\u031b", "\u0345", "\u05b0", "\u0e31",
     "\u093c", "\u094d", "\u0f71", "\u0f72", "\u1dc0", "\u20d0", "\u302a", "\U0001d165", "\U0001d16d",
     "\u1734", "\u1885", "\ua9bd", "\u0f39", "\ufe0f", "\u0e48"],
    ["中", "国", "我", "想", "東", "京", "\U00020000", "豈", "㐀", "\U0002b820", "\U0002f800", "\u9fff"],
    ["ひ", "カ", "ｶ", "ﾞ", "한", "국", "\u1100", "\u1161", "\u11a8", "가"],
    ["😀", "👍", "🏽", "\u200d", "👨", "👩", "🇫", "🇷", "❤", "🥺", "🫠", "\U0001f9d1"],
    ["\u0000", "\u0007", "\u200b", "\u200c", "\ufeff", "\u00ad", "\ufffd", "\u202e", "\ue000", "\u0085",
     "\u2028", "\u08e2", "\ufdd0", "\U000e0041", "\u061c", "\u180e"],
    ["Ａ", "ｂ", "１", "！", "Ⅻ", "①", "㎏"],
    ["مرحبا", "नमस्ते", "สวัสดี", "Привет", "Ωμέγα", "שָׁלוֹם", "ᏣᎳᎩ"],
    ["[MASK]", "[CLS]", "[mask]", "[SEP]", "[UNK]", "kiln", "Kiln", "[SLOT]", "<ent>", "xyzzy", "[", "MASK]", "##"],
]


def fuzz_texts(count, seed=20261125):
    """Random mixtures of the characters most likely to break parity; fixed seed, so stable."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 14)):
            if rng.random() < 0.02:
                parts.append("x" * rng.randint(95, 105))
            else:
                parts.append(rng.choice(rng.choice(FUZZ_POOLS)))
            if rng.random() < 0.4:
                parts.append(" ")
        texts.append("".join(parts))
    return texts


def fuzz_records(tokenizer, texts):
    """Singles, pairs (each text with the next) and truncation at 8 or 16, in a fixed pattern."""
    records = []
    truncating = {n: with_max_length(tokenizer, n) for n in (8, 16)}
    for index, text in enumerate(texts):
        pair = texts[(index + 1) % len(texts)] if index % 3 == 1 else None
        max_length = (None, None, 8, None, 16)[index % 5]
        chosen = truncating[max_length] if max_length else tokenizer
        records.append(safe_record(chosen, text, pair, max_length))
    return records


def safe_record(tokenizer, text, pair=None, max_length=None, with_tokens=True, add_special_tokens=True):
    """Encodes, or records that HF refused (e.g. a truncation strategy that cannot fit)."""
    try:
        encoding = tokenizer.encode(text, pair, add_special_tokens=add_special_tokens)
    except Exception as error:  # HF raises for impossible truncation; Kiln must throw too
        record = {"text": text}
        if pair is not None:
            record["pair"] = pair
        if max_length is not None:
            record["max_length"] = max_length
        record["error"] = str(error)
    else:
        record = encode_record(encoding, text, pair, max_length, with_tokens)
    if not add_special_tokens:
        record["add_special_tokens"] = False
    return record


def encode_record(encoding, text, pair=None, max_length=None, with_tokens=False):
    record = {"text": text}
    if pair is not None:
        record["pair"] = pair
    if max_length is not None:
        record["max_length"] = max_length
    fields = {
        "ids": list(encoding.ids),
        "type_ids": list(encoding.type_ids),
        "attention_mask": list(encoding.attention_mask),
        "offsets": [list(o) for o in encoding.offsets],
        "word_ids": list(encoding.word_ids),
        "tokens": list(encoding.tokens),
    }
    record.update(compress_padding(fields))
    if not with_tokens:
        del record["tokens"]
    return record


def compress_padding(fields):
    """Losslessly shortens padded encodings: a run of identical padding entries at either end is
    written once as "padding": {"side", "count", "id", "type_id", "token"} and left out of the lists.
    A run only counts if every entry in it is exactly the same (attention 0, offsets [0, 0], no word),
    so expanding it gives back HF's output entry for entry."""
    n = len(fields["ids"])

    def entry(i):
        return (fields["ids"][i], fields["type_ids"][i], fields["attention_mask"][i], tuple(fields["offsets"][i]),
                fields["word_ids"][i], fields["tokens"][i])

    for side, indices in (("right", range(n - 1, -1, -1)), ("left", range(n))):
        run = 0
        first = None
        for i in indices:
            e = entry(i)
            if e[2] != 0 or e[3] != (0, 0) or e[4] is not None or (first is not None and e != first):
                break
            first = e
            run += 1
        if run > 0:
            keep = slice(0, n - run) if side == "right" else slice(run, n)
            out = {k: v[keep] for k, v in fields.items()}
            out["padding"] = {"side": side, "count": run, "id": first[0], "type_id": first[1], "token": first[5]}
            return out
    return fields


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def with_max_length(tokenizer, max_length):
    """A copy of `tokenizer` that truncates at max_length, keeping the file's strategy/direction."""
    copy = Tokenizer.from_str(tokenizer.to_str())
    current = tokenizer.truncation
    if current is None:
        copy.enable_truncation(max_length)
    else:
        copy.enable_truncation(
            max_length, stride=current["stride"], strategy=current["strategy"], direction=current["direction"]
        )
    return copy


def truncation_records(tokenizer, texts):
    records = []
    for max_length in (8, 16):
        truncating = with_max_length(tokenizer, max_length)
        for text in texts:
            records.append(safe_record(truncating, text, None, max_length))
        for first, second in zip(texts, texts[1:] + texts[:1]):
            records.append(safe_record(truncating, first, second, max_length))
    return records


def unicode_classes(path):
    bert = normalizers.BertNormalizer
    steps = {
        "clean": bert(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False),
        "cjk": bert(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False),
        "strip": bert(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False),
        "lower": bert(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True),
    }
    pre = pre_tokenizers.BertPreTokenizer()
    with open(path, "w", encoding="utf-8") as out:
        for code in range(0x110000):
            if 0xD800 <= code <= 0xDFFF:
                continue
            char = chr(code)
            for kind, normalizer in steps.items():
                result = normalizer.normalize_str(char)
                if result != char:
                    out.write(f"{code:X}\t{kind}\t{' '.join('%X' % ord(c) for c in result)}\n")
            pieces = len(pre.pre_tokenize_str("a" + char + "b"))
            if pieces != 1:
                out.write(f"{code:X}\tpre\t{ {2: 'space', 3: 'punct'}.get(pieces, pieces) }\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output directory (files go under OUT/tokenizer/)")
    parser.add_argument("--skip-unicode", action="store_true", help="don't write unicode_classes.tsv")
    args = parser.parse_args()
    root = os.path.join(args.out, "tokenizer")
    os.makedirs(root, exist_ok=True)

    if not os.path.isdir(DATA):
        sys.exit(f"data folder not found: {DATA} (expected ../shared/data beside the repository)")
    datasets = {
        "snips": load_snips_atis("snips"),
        "atis": load_snips_atis("atis"),
        "banking77": load_banking77(),
        "nlupp_banking": load_nlupp("banking"),
        "nlupp_hotels": load_nlupp("hotels"),
        "cais": load_cais(),
    }
    fuzz = fuzz_texts(3000)
    manifest = {"tokenizers": {}, "datasets": {name: len(texts) for name, texts in datasets.items()}}

    for fixture in sorted(glob.glob(os.path.join(FIXTURES, "*.json"))):
        name = os.path.splitext(os.path.basename(fixture))[0]
        tokenizer = Tokenizer.from_file(fixture)
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        counts = {}
        for set_name, texts in datasets.items():
            # One request at a time, as the server encodes them (batch padding is tested by edge_batch).
            encodings = [tokenizer.encode(text) for text in texts]
            write_jsonl(
                os.path.join(folder, f"{set_name}.jsonl"),
                (encode_record(e, t) for e, t in zip(encodings, texts)),
            )
            counts[set_name] = len(texts)
        edge = [safe_record(tokenizer, t) for t in EDGE_TEXTS]
        edge += [safe_record(tokenizer, a, b) for a, b in EDGE_PAIRS]
        edge += [safe_record(tokenizer, t, add_special_tokens=False) for t in EDGE_TEXTS[:12] + EDGE_TEXTS[-6:]]
        edge += [safe_record(tokenizer, a, b, add_special_tokens=False) for a, b in EDGE_PAIRS]
        edge += [safe_record(with_max_length(tokenizer, 8), t, None, 8, add_special_tokens=False) for t in TRUNCATION_TEXTS]
        write_jsonl(os.path.join(folder, "edge.jsonl"), edge)
        counts["edge"] = len(edge)
        records = truncation_records(tokenizer, TRUNCATION_TEXTS)
        write_jsonl(os.path.join(folder, "truncation.jsonl"), records)
        counts["truncation"] = len(records)
        records = fuzz_records(tokenizer, fuzz)
        write_jsonl(os.path.join(folder, "fuzz.jsonl"), records)
        counts["fuzz"] = len(records)
        batch = tokenizer.encode_batch(EDGE_TEXTS)
        write_jsonl(
            os.path.join(folder, "edge_batch.jsonl"),
            (encode_record(e, t, with_tokens=True) for e, t in zip(batch, EDGE_TEXTS)),
        )
        counts["edge_batch"] = len(EDGE_TEXTS)
        manifest["tokenizers"][name] = {
            "file": os.path.relpath(fixture, REPO),
            "sets": counts,
        }
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    if not args.skip_unicode:
        unicode_classes(os.path.join(root, "unicode_classes.tsv"))
        print("unicode_classes.tsv written")
    with open(os.path.join(root, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)


if __name__ == "__main__":
    main()
