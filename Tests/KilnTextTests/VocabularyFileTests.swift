import Foundation
import Testing

@testable import KilnText

/// A tokenizer built from `vocab.txt` + options must encode like the tokenizer.json it came from
/// (HF's `BertWordPieceTokenizer` and all-MiniLM-L6-v2's tokenizer.json share normalizer,
/// pre-tokenizer, model and template; only the json's truncation and padding differ).
struct VocabularyFileTests {
    static let texts = [
        "", "Hello, World!", "book a flight from new york to san francisco", "Crème brûlée 🍕 naïve",
        "I love 👨\u{200D}👩\u{200D}👧 and cafe\u{301}!", "我想听周杰伦 play [MASK]", "[CLS] x [SEP] [mask]",
        "İstanbul ΣΑΣ Straße", "ＡＢＣ１２３！？", String(repeating: "a", count: 150), "tab\tnew\nline\u{200B}zero",
    ]

    @Test func vocabTxtEncodesLikeTheTokenizerJSON() throws {
        let json = try fixtureTokenizer("minilm-uncased")
        // Write the json's vocabulary as vocab.txt (one token per line, line number = id).
        let count = json.vocabularySize
        let lines = (0..<count).map { json.token(forId: Int32($0)) ?? "" }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-vocab-\(UUID().uuidString).txt")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let fromVocabulary = try WordPieceTokenizer(vocabularyFile: url)
        #expect(fromVocabulary.vocabularySize == count)
        for text in Self.texts {
            let expected = try json.encode(text)
            let real = expected.attentionMask.filter { $0 == 1 }.count
            let got = try fromVocabulary.encode(text)
            #expect(got.ids == Array(expected.ids[..<real]), "\(text.debugDescription)")
            #expect(got.offsets == Array(expected.offsets[..<real]), "\(text.debugDescription)")
            #expect(got.wordIds == Array(expected.wordIds[..<real]), "\(text.debugDescription)")
            #expect(got.typeIds == Array(expected.typeIds[..<real]))
        }
        let pair = try fromVocabulary.encode("what is my balance", pair: "checking account")
        #expect(pair.typeIds == [0, 0, 0, 0, 0, 0, 1, 1, 1])
    }

    @Test func missingUnknownTokenIsExplained() {
        #expect {
            try WordPieceTokenizer(vocabulary: ["[CLS]", "[SEP]", "hello"])
        } throws: { error in
            "\(error)".contains("[UNK]") && "\(error)".contains("not in the vocabulary")
        }
    }
}
