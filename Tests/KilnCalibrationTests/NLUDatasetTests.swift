import Foundation
import KilnCalibration
import KilnCore
import Testing

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
