import Foundation
import KilnCore
import KilnText
import Testing

@testable import KilnCalibration

/// Dataset readers, scoring rules, and the calibration cache's model check.
@Suite struct NLUDatasetTests {
    func temporary(_ name: String, _ contents: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-int8-\(UUID().uuidString)-\(name)")
        try contents.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test("NLU++ folds: multi-label intents and character spans")
    func nluPlusPlus() throws {
        let path = try temporary("fold0.json", #"[{"text": "book for 2 adults", "intents": ["booking", "make_open"], "slots": {"adults": {"text": "2", "span": [9, 10], "value": 2}}}]"#)
        let examples = try NLUDataset.load(path)
        #expect(examples == [NLUExample(text: "book for 2 adults", intents: ["booking", "make_open"], slots: [GoldSlot(label: "adults", start: 9, end: 10)])])
    }

    @Test("CAIS split folder: characters with BIOES tags, intents beside them")
    func cais() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-cais-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try "来 O\n张 B-singer\n信 I-singer\n哲 E-singer\n的 O\n歌 S-song\n\n今 B-date\n天 E-date\n冷 O\n\n".write(
            to: folder.appendingPathComponent("ch.test"), atomically: true, encoding: .utf8)
        try "PlayMusic\nWeather\n".write(to: folder.appendingPathComponent("ch.test.intent"), atomically: true, encoding: .utf8)
        #expect(try NLUDataset.load(folder.path) == [
            NLUExample(text: "来张信哲的歌", intents: ["PlayMusic"], slots: [GoldSlot(label: "singer", start: 1, end: 4), GoldSlot(label: "song", start: 5, end: 6)]),
            NLUExample(text: "今天冷", intents: ["Weather"], slots: [GoldSlot(label: "date", start: 0, end: 2)]),
        ])
        try "PlayMusic\n".write(to: folder.appendingPathComponent("ch.test.intent"), atomically: true, encoding: .utf8)
        #expect(throws: KilnError.self) { try NLUDataset.load(folder.path) }
    }

    @Test("BANKING77 csv with quoted commas")
    func csv() throws {
        let path = try temporary("test.csv", "text,category\n\"Hi, where is my card?\",card_arrival\nplain text,lost_card\n")
        let examples = try NLUDataset.load(path)
        #expect(examples.map(\.text) == ["Hi, where is my card?", "plain text"])
        #expect(examples.map(\.intents) == [["card_arrival"], ["lost_card"]])
    }

    @Test("plain text: one unlabelled utterance a line, blank lines skipped")
    func plain() throws {
        let examples = try NLUDataset.load(try temporary("u.txt", "hello there\n\nplay jazz\n"))
        #expect(examples == [NLUExample(text: "hello there"), NLUExample(text: "play jazz")])
    }

    @Test("entity-level slot F1 needs type and whole span; multi-label intent is micro-F1")
    func scoring() throws {
        let card = try NLUModelCard(json: Data(#"{"intent_labels": ["a", "b", "c"], "slot_labels": ["O", "B-x", "I-x"], "multi_label": true}"#.utf8))
        let scorer = NLUScorer(card: card)
        let gold = [NLUExample(text: "aa bb cc", intents: ["a", "b"], slots: [GoldSlot(label: "x", start: 0, end: 5)])]
        let partial = NLUPrediction(intents: ["a"], slots: [GoldSlot(label: "x", start: 0, end: 2)])
        let scores = scorer.score([partial], gold)
        #expect(abs(scores.intent - 100 * 2.0 / 3.0) < 1e-9)  // tp 1, predicted 1, gold 2
        #expect(scores.slotF1 == 0)
        #expect(scores.sentenceAccuracy == 0)
        let exact = scorer.score([NLUPrediction(intents: ["a", "b"], slots: [GoldSlot(label: "x", start: 0, end: 5)])], gold)
        #expect(exact.intent == 100 && exact.slotF1 == 100 && exact.sentenceAccuracy == 100)
    }

    @Test("gold spans are projected onto the model's words before scoring, as training/evaluate.py scores")
    func projectedGold() throws {
        let card = try NLUModelCard(json: Data(#"{"intent_labels": ["a"], "slot_labels": ["O", "B-day", "I-day"], "slot_positions": "first_subtoken"}"#.utf8))
        #expect(card.slotSegmentation == .tokenizerWords)
        let scorer = NLUScorer(card: card)
        // "on Friday, thanks": tokenizer words on, Friday, ",", thanks (Friday = fri ##day).
        let words = [
            SlotDecoder.WordRange(firstToken: 0..<2, word: 0..<2), SlotDecoder.WordRange(firstToken: 3..<6, word: 3..<9),
            SlotDecoder.WordRange(firstToken: 9..<10, word: 9..<10), SlotDecoder.WordRange(firstToken: 11..<17, word: 11..<17),
        ]
        let predicted = NLUPrediction(intents: ["a"], slots: [GoldSlot(label: "day", start: 3, end: 9)], words: words)
        // A gold span cut inside a word ("Frid") still means the word; one that also takes the comma does not match.
        for (gold, f1) in [(GoldSlot(label: "day", start: 3, end: 7), 100.0), (GoldSlot(label: "day", start: 3, end: 10), 0)] {
            let scores = scorer.score([predicted], [NLUExample(text: "on Friday, thanks", intents: ["a"], slots: [gold])])
            #expect(scores.slotF1 == f1)
        }
        // Overlapping gold spans: the later one is dropped (BIO cannot hold both); a span inside a
        // word's continuation tokens ("day") touches no first token and is gone.
        let gold = [GoldSlot(label: "day", start: 3, end: 9), GoldSlot(label: "day", start: 5, end: 17), GoldSlot(label: "day", start: 6, end: 9)]
        #expect(NLUScorer.projected(gold, onto: words) == [GoldSlot(label: "day", start: 3, end: 9)])
    }

    @Test("a single-label model's combined ATIS intent matches the gold label it was trained on")
    func combinedIntent() throws {
        let card = try NLUModelCard(json: Data(#"{"intent_labels": ["atis_flight#atis_airfare", "atis_flight"]}"#.utf8))
        let scorer = NLUScorer(card: card)
        let prediction = try scorer.predict(NLUOutput(intentLogits: [3, 1], slotLogits: [], encoding: Encoding()), text: "fares")
        #expect(prediction.intents == ["atis_flight", "atis_airfare"])
        let gold = [NLUExample(text: "fares", intents: ["atis_flight", "atis_airfare"], slots: [])]
        #expect(scorer.score([prediction], gold).intent == 100)
        #expect(throws: KilnError.self) { try NLUModelCard(json: Data(#"{"intent_labels": ["a"], "slot_positions": "nope"}"#.utf8)) }
    }

    @Test("a calibration cache for another model is refused with a message to recalibrate")
    func staleCache() throws {
        let table = CalibrationTable(
            kilnVersion: "test", model: "m.onnx", modelSHA256: "aaaa", method: .minmax, samples: 1, data: [], createdAt: "", tensors: [:])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-int8-\(UUID().uuidString).json")
        try table.write(to: url)
        #expect(try CalibrationTable.read(url, expectingModelSHA256: "aaaa") == table)
        #expect(throws: KilnError.self) { try CalibrationTable.read(url, expectingModelSHA256: "bbbb") }
    }
}
