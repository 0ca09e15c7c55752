"""Unit tests of the peers' decoding (nlu.py) against the rules of Sources/KilnText's decoders, and of
the load generator's summary. Run: bench/servers/.venv-runner/bin/python -m unittest bench/servers/test_nlu.py
(needs numpy and tokenizers; the tokenizer test uses the shipped snips tokenizer).
"""
import os
import sys
import unittest
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen  # noqa: E402
import nlu  # noqa: E402

LABELS = ["O", "B-city", "I-city", "B-date", "I-date"]


def encoding(text, pieces):
    """A fake tokenizers.Encoding: [CLS] pieces [SEP], pieces given as (start, end, word id)."""
    offsets = [(0, 0)] + [(s, e) for s, e, _ in pieces] + [(0, 0)]
    word_ids = [None] + [w for _, _, w in pieces] + [None]
    return SimpleNamespace(ids=list(range(len(offsets))), offsets=offsets, word_ids=word_ids,
                           sequence_ids=[None] + [0] * len(pieces) + [None], overflowing=[])


def logits_for(tags):
    rows = np.full((len(tags), len(LABELS)), -5.0, dtype=np.float32)
    for row, tag in enumerate(tags):
        rows[row, LABELS.index(tag)] = 5.0
    return rows


class SlotDecodingTests(unittest.TestCase):
    def test_word_tag_comes_from_first_subtoken_and_span_covers_the_word(self):
        text = "fly to parisville"
        enc = encoding(text, [(0, 3, 0), (4, 6, 1), (7, 12, 2), (12, 17, 2)])
        spans = nlu.decode_slots(logits_for(["O", "O", "O", "B-city", "I-date", "O"]), enc, text, LABELS)
        self.assertEqual([(s["name"], s["value"], s["start"], s["end"]) for s in spans], [("city", "parisville", 7, 17)])

    def test_punctuation_without_whitespace_stays_in_the_word(self):
        # "don't" is three tokenizer words but one whitespace word (SlotDecoder .whitespace).
        text = "don't go"
        enc = encoding(text, [(0, 3, 0), (3, 4, 1), (4, 5, 2), (6, 8, 3)])
        spans = nlu.decode_slots(logits_for(["O", "B-date", "O", "O", "O", "O"]), enc, text, LABELS)
        self.assertEqual([(s["value"], s["start"], s["end"]) for s in spans], [("don't", 0, 5)])

    def test_tokenizer_words_split_at_punctuation(self):
        # slot_positions first_subtoken (the shipped models): "don't" is three words, each tagged by its
        # own first token, as SlotDecoder .tokenizerWords; a span does not take the apostrophe's tag.
        text = "don't go"
        enc = encoding(text, [(0, 3, 0), (3, 4, 1), (4, 5, 2), (6, 8, 3)])
        spans = nlu.decode_slots(logits_for(["O", "B-date", "O", "O", "O", "O"]), enc, text, LABELS, "tokenizer_words")
        self.assertEqual([(s["value"], s["start"], s["end"]) for s in spans], [("don", 0, 3)])

    def test_tokenizer_words_keep_subtokens_of_one_word_together(self):
        text = "fly to parisville"
        enc = encoding(text, [(0, 3, 0), (4, 6, 1), (7, 12, 2), (12, 17, 2)])
        spans = nlu.decode_slots(logits_for(["O", "O", "O", "B-city", "O", "O"]), enc, text, LABELS, "tokenizer_words")
        self.assertEqual([(s["value"], s["start"], s["end"]) for s in spans], [("parisville", 7, 17)])

    def test_card_slot_positions_pick_the_segmentation(self):
        self.assertEqual(nlu.segmentation("first_subtoken"), "tokenizer_words")
        self.assertEqual(nlu.segmentation(None), "whitespace")
        self.assertEqual(nlu.segmentation("WHITESPACE_WORDS"), "whitespace")
        with self.assertRaises(ValueError):
            nlu.segmentation("per_character")
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.assertEqual(nlu.ModelCard(os.path.join(repo, "models", "snips", "1")).segmentation, "tokenizer_words")

    def test_inside_tag_without_begin_starts_a_span_and_type_change_splits(self):
        text = "new york today"
        enc = encoding(text, [(0, 3, 0), (4, 8, 1), (9, 14, 2)])
        spans = nlu.decode_slots(logits_for(["O", "I-city", "I-city", "I-date", "O"]), enc, text, LABELS)
        self.assertEqual([(s["name"], s["value"]) for s in spans], [("city", "new york"), ("date", "today")])
        self.assertAlmostEqual(spans[0]["confidence"], float(nlu.softmax(logits_for(["I-city"]))[0].max()), places=6)

    def test_intents_are_softmax_top_k_with_ties_in_label_order(self):
        intents = nlu.decode_intents(np.array([1.0, 3.0, 3.0, 0.0]), ["a", "b", "c", "d"], False, top_k=3)
        self.assertEqual([i["name"] for i in intents], ["b", "c", "a"])
        self.assertAlmostEqual(sum(nlu.softmax(np.array([1.0, 3.0, 3.0, 0.0]))), 1.0, places=6)

    def test_pipeline_on_the_shipped_tokenizer_pads_to_the_longest_text(self):
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        card = nlu.ModelCard(os.path.join(repo, "models", "snips", "1"))
        encodings, feeds = nlu.Encoder(card).encode(["hi", "play the song yesterday by the beatles"])
        self.assertEqual(feeds["input_ids"].shape, (2, len(encodings[1].ids)))
        self.assertEqual(int(feeds["attention_mask"][0].sum()), len(encodings[0].ids))


class LoadSummaryTests(unittest.TestCase):
    def test_percentiles_throughput_and_sla_attainment(self):
        latencies = [float(v) for v in range(1, 101)]  # 1..100 ms
        run = loadgen.summarize("closed", 4, None, latencies, errors=2, elapsed=10.0, sla_ms=50, keep_raw=False)
        self.assertEqual(run["throughput_rps"], 10.0)
        self.assertEqual(run["latency_ms"]["p50"], 51.0)
        self.assertEqual(run["latency_ms"]["p99"], 100.0)
        self.assertAlmostEqual(run["sla_attainment"], 50 / 102)  # errors count as misses
        self.assertNotIn("latencies_ms", run)


if __name__ == "__main__":
    unittest.main()
