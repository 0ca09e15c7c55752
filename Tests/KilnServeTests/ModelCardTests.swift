import Foundation
import KilnText
import Testing

@testable import KilnServe

/// The model card's decoding fields: what the server reads from `model.json`.
struct ModelCardTests {
    func card(_ json: String) throws -> ModelCard {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-card-\(UUID().uuidString).json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        return try ModelCard.load(from: url)
    }

    @Test func slotPositionsChooseTheWordsThatCarryTags() throws {
        let trained = try card(#"{"name": "m", "intent_labels": ["a"], "slot_labels": ["O", "B-x", "I-x"], "slot_positions": "first_subtoken", "max_seq_length": 64}"#)
        #expect(NLUResultDecoder(card: trained).slotDecoder.segmentation == .tokenizerWords)
        let plain = try card(#"{"name": "m", "intent_labels": ["a"], "max_seq_length": 64}"#)
        #expect(NLUResultDecoder(card: plain).slotDecoder.segmentation == .whitespace)
    }

    @Test func anUnknownSlotPositionsIsRefusedWithTheKnownNames() throws {
        do {
            _ = try card(#"{"name": "m", "intent_labels": ["a"], "slot_positions": "last_subtoken", "max_seq_length": 64}"#)
            Issue.record("an unknown slot_positions was accepted")
        } catch let error as ServeError {
            #expect(String(describing: error).contains("first_subtoken"))
        }
    }
}
