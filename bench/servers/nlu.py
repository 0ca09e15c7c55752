"""The per-request work every Python peer does, identical to Kiln's /v1/parse pipeline: tokenize with
the model's tokenizer.json (Hugging Face `tokenizers`, which Kiln's tokenizer matches id for id),
pad a batch to its longest text, and decode intent + slots the way Sources/KilnText does
(IntentDecoder: softmax, top-k, ties keep label order; SlotDecoder: per-token softmax argmax, the tag
of a word's first sub-token, words as the model card's slot_positions says (first_subtoken /
tokenizer_words: the tokenizer's words; whitespace_words or no card entry: whitespace words;
every_token), lenient BIO spans with mean tag probability).

The model call itself is left to each peer (PyTorch eager, ONNX Runtime); this module only needs numpy.
"""
from __future__ import annotations

import json
import os
import unicodedata

import numpy as np
from tokenizers import Tokenizer


class ModelCard:
    """model.json of a model version: labels, max length, input names."""

    def __init__(self, version_dir: str):
        with open(os.path.join(version_dir, "model.json"), encoding="utf-8") as f:
            card = json.load(f)
        self.directory = version_dir
        self.name = card["name"]
        self.version = str(card["version"])
        self.intent_labels = card["intent_labels"]
        self.slot_labels = card.get("slot_labels") or []
        self.multi_label = bool(card.get("multi_label", False))
        self.max_length = int(card.get("max_seq_length", 128))
        self.input_names = [i["name"] for i in card["inputs"]]
        self.onnx_path = os.path.join(version_dir, "model.onnx")
        self.tokenizer_path = os.path.join(version_dir, card.get("tokenizer", {}).get("file", "tokenizer.json"))
        self.segmentation = segmentation(card.get("slot_positions"))


# WordSegmentation.slotPositionNames in Sources/KilnText/SlotDecoder.swift.
SLOT_POSITIONS = {"first_subtoken": "tokenizer_words", "tokenizer_words": "tokenizer_words",
                  "whitespace_words": "whitespace", "every_token": "every_token"}


def segmentation(slot_positions: str | None) -> str:
    """The word segmentation a card's slot_positions names (whitespace when the card has none)."""
    if slot_positions is None:
        return "whitespace"
    try:
        return SLOT_POSITIONS[slot_positions.lower()]
    except KeyError:
        raise ValueError(f"unknown slot_positions '{slot_positions}' (known: {', '.join(SLOT_POSITIONS)})") from None


class Encoder:
    """Text -> padded int64 batches, with the encodings kept for slot decoding."""

    def __init__(self, card: ModelCard):
        self.card = card
        self.tokenizer = Tokenizer.from_file(card.tokenizer_path)
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(card.max_length)

    def encode(self, texts: list[str]):
        """-> (encodings, {input name: [batch, longest] int64 array})."""
        encodings = self.tokenizer.encode_batch(texts)
        longest = max(len(e.ids) for e in encodings)

        def matrix(field):
            return np.array([getattr(e, field) + [0] * (longest - len(e.ids)) for e in encodings], dtype=np.int64)

        feeds = {"input_ids": matrix("ids"), "attention_mask": matrix("attention_mask"),
                 "token_type_ids": matrix("type_ids")}
        return encodings, {name: feeds[name] for name in self.card.input_names}


def softmax(values: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _is_whitespace(ch: str) -> bool:
    # BertCharacterClasses.isWhitespace: space, tab, newline, carriage return, Unicode Zs.
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _words(encoding, text: str, segmentation: str = "whitespace"):
    """Words of the first sequence: [first token, start, end] (SlotDecoder.words)."""
    words, last_word_id = [], None
    for token, word_id in enumerate(encoding.word_ids):
        if word_id is None or (encoding.sequence_ids[token] or 0) != 0:
            continue
        start, end = encoding.offsets[token]
        continues = False
        if words:
            if segmentation == "tokenizer_words":
                continues = word_id == last_word_id
            elif segmentation == "whitespace":
                previous_end = words[-1][2]
                gap = text[min(previous_end, len(text)):min(max(previous_end, start), len(text))]
                continues = not any(_is_whitespace(ch) for ch in gap)
        last_word_id = word_id
        if continues:
            words[-1][1] = min(words[-1][1], start)
            words[-1][2] = max(words[-1][2], end)
            continue
        words.append([token, start, end])
    return words


def _parse_tag(name: str):
    if len(name) > 2 and name[1] in "-_" and name[0] in "BIELSU":
        marker = {"B": "begin", "I": "inside", "E": "inside", "L": "inside", "S": "begin", "U": "begin"}[name[0]]
        return marker, name[2:]
    return "outside", ""


def decode_slots(slot_logits: np.ndarray, encoding, text: str, labels: list[str], segmentation: str = "whitespace"):
    """BIO spans over words, as SlotDecoder.decode(logits:encoding:text:) with .bio."""
    tokens = len(encoding.ids)
    probabilities = softmax(slot_logits[:tokens])
    tag_index = probabilities.argmax(axis=-1)
    tag_probability = probabilities[np.arange(tokens), tag_index]
    spans, current = [], None  # current: [type, first word, last word]
    words = _words(encoding, text, segmentation)

    def close():
        nonlocal current
        if current is None:
            return
        kind, first, last = current
        start, end = words[first][1], words[last][2]
        score = float(np.mean([tag_probability[words[w][0]] for w in range(first, last + 1)]))
        spans.append({"name": kind, "value": text[start:end], "start": start, "end": end, "confidence": score})
        current = None

    for index, (first_token, _, _) in enumerate(words):
        marker, kind = _parse_tag(labels[tag_index[first_token]])
        if marker == "outside":
            close()
        elif marker == "begin":
            close()
            current = [kind, index, index]
        elif current is not None and current[0] == kind:
            current[2] = index
        else:
            close()
            current = [kind, index, index]
    close()
    return spans


def decode_intents(intent_logits: np.ndarray, labels: list[str], multi_label: bool, top_k: int = 5):
    """Top-k intents, most probable first, ties in label order (IntentDecoder.decode)."""
    if multi_label:
        scores = 1.0 / (1.0 + np.exp(-intent_logits))
        ranked = [i for i in range(len(labels)) if scores[i] >= 0.5]
    else:
        scores = softmax(intent_logits)
        ranked = list(range(len(labels)))
    ranked.sort(key=lambda i: (-scores[i], i))
    return [{"name": labels[i], "confidence": float(scores[i])} for i in ranked[:top_k]]


class Pipeline:
    """Texts in, /v1/parse-shaped answers out; `run_model(feeds) -> (intent_logits, slot_logits)`."""

    def __init__(self, card: ModelCard, run_model):
        self.card = card
        self.encoder = Encoder(card)
        self.run_model = run_model

    def parse(self, texts: list[str]) -> list[dict]:
        encodings, feeds = self.encoder.encode(texts)
        intent_logits, slot_logits = self.run_model(feeds)
        results = []
        for row, (text, encoding) in enumerate(zip(texts, encodings)):
            intents = decode_intents(intent_logits[row], self.card.intent_labels, self.card.multi_label)
            slots = (decode_slots(slot_logits[row], encoding, text, self.card.slot_labels, self.card.segmentation)
                     if self.card.slot_labels else [])
            results.append({"model": self.card.name, "version": self.card.version,
                            "intent": intents[0] if intents else None, "intents": intents, "slots": slots,
                            "truncated": len(encoding.overflowing) > 0})
        return results


def default_model_dir() -> str:
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.environ.get("KILN_BENCH_MODEL_DIR", os.path.join(repo, "models", "snips", "1"))
