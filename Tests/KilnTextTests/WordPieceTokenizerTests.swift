import Foundation
import Testing

@testable import KilnText

/// Unit tests that need no Python: a tiny vocabulary, and the committed fixtures with expected values
/// taken from Python `tokenizers` 0.23.3 (padding switched off there with `no_padding()`).
struct WordPieceTokenizerTests {
    static let vocabulary = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", ",", "!", "un", "##aff", "##able",
        "cafe", "x", "##x", "play", "我",
    ]

    func tinyTokenizer(_ options: BertVocabularyOptions = BertVocabularyOptions()) throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabulary: Self.vocabulary, options: options)
    }

    @Test func splitsOnWhitespaceAndPunctuation() throws {
        let encoding = try tinyTokenizer().encode("Hello, world!")
        #expect(encoding.tokens == ["[CLS]", "hello", ",", "world", "!", "[SEP]"])
        #expect(encoding.ids == [2, 5, 7, 6, 8, 3])
        #expect(encoding.typeIds == [0, 0, 0, 0, 0, 0])
        #expect(encoding.attentionMask == [1, 1, 1, 1, 1, 1])
        #expect(encoding.offsets == [0..<0, 0..<5, 5..<6, 7..<12, 12..<13, 0..<0])
        #expect(encoding.wordIds == [nil, 0, 1, 2, 3, nil])
    }

    @Test func splitsWordsIntoContinuationPieces() throws {
        let encoding = try tinyTokenizer().encode("unaffable")
        #expect(encoding.tokens == ["[CLS]", "un", "##aff", "##able", "[SEP]"])
        #expect(encoding.offsets == [0..<0, 0..<2, 2..<5, 5..<9, 0..<0])
        #expect(encoding.wordIds == [nil, 0, 0, 0, nil])
    }

    @Test func unknownWordBecomesOneUnknownToken() throws {
        // "unaffablez": no piece for the trailing "z", so the whole word is [UNK].
        let encoding = try tinyTokenizer().encode("hello unaffablez")
        #expect(encoding.tokens == ["[CLS]", "hello", "[UNK]", "[SEP]"])
        #expect(encoding.offsets == [0..<0, 0..<5, 6..<16, 0..<0])
    }

    @Test func wordsLongerThanTheLimitAreUnknown() throws {
        let tokenizer = try tinyTokenizer()
        let atLimit = try tokenizer.encode(String(repeating: "x", count: 100))
        #expect(atLimit.count == 102)
        #expect(atLimit.tokens[1] == "x" && atLimit.tokens[2] == "##x")
        let overLimit = try tokenizer.encode(String(repeating: "x", count: 101))
        #expect(overLimit.tokens == ["[CLS]", "[UNK]", "[SEP]"])
        #expect(overLimit.offsets[1] == 0..<101)
    }

    @Test func specialTokensInTextAreKeptWhole() throws {
        let encoding = try tinyTokenizer().encode("hello [MASK] world [mask]")
        // "[mask]" is not the special token (matched in the original text, case-sensitively), so it is
        // normalized and split like any text: "[", "mask", "]", none of them in this vocabulary.
        let expected = ["[CLS]", "hello", "[MASK]", "world", "[UNK]", "[UNK]", "[UNK]", "[SEP]"]
        #expect(encoding.tokens == expected)
        #expect(encoding.offsets[2] == 6..<12)
        #expect(encoding.wordIds[2] == 1)
    }

    @Test func pairsGetTypeIdsAndRestartWordIds() throws {
        let encoding = try tinyTokenizer().encode("hello world", pair: "play")
        #expect(encoding.tokens == ["[CLS]", "hello", "world", "[SEP]", "play", "[SEP]"])
        #expect(encoding.typeIds == [0, 0, 0, 0, 1, 1])
        #expect(encoding.wordIds == [nil, 0, 1, nil, 0, nil])
        #expect(encoding.offsets[4] == 0..<4)
        #expect(encoding.sequenceIds == [nil, 0, 0, nil, 1, nil])
    }

    @Test func truncatesToMaxLengthIncludingSpecialTokens() throws {
        let encoding = try tinyTokenizer().encode("hello world hello world", maxLength: 4)
        #expect(encoding.tokens == ["[CLS]", "hello", "world", "[SEP]"])
        let pair = try tinyTokenizer().encode("hello world hello", pair: "world hello world", maxLength: 7)
        // 4 tokens for the texts, shared longest-first: 2 + 2.
        #expect(pair.tokens == ["[CLS]", "hello", "world", "[SEP]", "world", "hello", "[SEP]"])
    }

    @Test func chineseCharactersAreSeparateWords() throws {
        let encoding = try tinyTokenizer().encode("我我play")
        #expect(encoding.tokens == ["[CLS]", "我", "我", "play", "[SEP]"])
        #expect(encoding.offsets == [0..<0, 0..<1, 1..<2, 2..<6, 0..<0])
        #expect(encoding.wordIds == [nil, 0, 1, 2, nil])
    }

    @Test func accentsAreStrippedWithOffsetsIntoTheOriginal() throws {
        let encoding = try tinyTokenizer().encode("Café cafe\u{301}")
        #expect(encoding.tokens == ["[CLS]", "cafe", "cafe", "[SEP]"])
        // The combining accent is dropped, and with it its place in the second word's range (as in HF).
        #expect(encoding.offsets == [0..<0, 0..<4, 5..<9, 0..<0])
        let cased = try tinyTokenizer(BertVocabularyOptions(lowercase: false)).encode("Café")
        #expect(cased.tokens == ["[CLS]", "[UNK]", "[SEP]"])
    }

    @Test func normalizerIsUsableOnItsOwn() {
        #expect(BertNormalizer().normalize("Crème Brûlée\u{200B}\t中文") == "creme brulee  中  文 ")
        #expect(BertNormalizer(lowercase: false).normalize("Crème") == "Crème")
        #expect(BertNormalizer(stripAccents: false).normalize("Crème") == "crème")
    }

    @Test func emptyAndWhitespaceOnlyTextGivesOnlySpecialTokens() throws {
        let tokenizer = try tinyTokenizer()
        for text in ["", " ", "\t\n ", "\u{200B}"] {
            #expect(try tokenizer.encode(text).tokens == ["[CLS]", "[SEP]"])
        }
    }

    @Test func accentedAndEmojiOffsetsMatchPython() throws {
        // Values from Python: Tokenizer.from_file("Tests/Fixtures/tokenizers/minilm-uncased.json").
        let tokenizer = try fixtureTokenizer("minilm-uncased")
        let text = "Crème brûlée 🍕 naïve"
        let encoding = try tokenizer.encode(text)
        let real = encoding.attentionMask.filter { $0 == 1 }.count
        #expect(encoding.count == 128)  // the file pads to 128
        #expect(Array(encoding.tokens[..<real]) == ["[CLS]", "cr", "##eme", "br", "##ule", "##e", "[UNK]", "naive", "[SEP]"])
        #expect(Array(encoding.ids[..<real]) == [101, 13675, 21382, 7987, 9307, 2063, 100, 15743, 102])
        #expect(Array(encoding.offsets[..<real]) == [0..<0, 0..<2, 2..<5, 6..<8, 8..<11, 11..<12, 13..<14, 15..<20, 0..<0])
        #expect(Array(encoding.wordIds[..<real]) == [nil, 0, 0, 1, 1, 1, 2, 3, nil])

        let family = try tokenizer.encode("I love 👨\u{200D}👩\u{200D}👧 and cafe\u{301}!")
        let familyReal = family.attentionMask.filter { $0 == 1 }.count
        #expect(Array(family.tokens[..<familyReal]) == ["[CLS]", "i", "love", "[UNK]", "and", "cafe", "!", "[SEP]"])
        #expect(Array(family.offsets[..<familyReal]) == [0..<0, 0..<1, 2..<6, 7..<12, 13..<16, 17..<21, 22..<23, 0..<0])
    }

    @Test func chineseFixtureSplitsCharacters() throws {
        let tokenizer = try fixtureTokenizer("bert-chinese")
        let encoding = try tokenizer.encode("我想听周杰伦 play [MASK]")
        #expect(encoding.count == 16)  // batch-longest padding rounds up to a multiple of 8
        #expect(Array(encoding.ids[..<10]) == [101, 1855, 31223, 30843, 30860, 31402, 30637, 2377, 103, 102])
        #expect(Array(encoding.offsets[..<10]) == [0..<0, 0..<1, 1..<2, 2..<3, 3..<4, 4..<5, 5..<6, 7..<11, 12..<18, 0..<0])
        #expect(Array(encoding.wordIds[..<10]) == [nil, 0, 1, 2, 3, 4, 5, 6, 7, nil])
    }

    @Test func batchPadsToTheLongest() throws {
        let json = try Data(contentsOf: tokenizerFixtures.appendingPathComponent("bert-chinese.json"))
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: json)
        let batch = try tokenizer.encodeBatch(["hello", "hello world hello world hello world hello world hello"])
        #expect(batch[0].count == batch[1].count)
        #expect(batch[0].count % 8 == 0)
        #expect(batch[0].attentionMask.filter { $0 == 1 }.count == 3)
    }

    @Test func unsupportedModelsAreExplained() throws {
        let json = #"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#
        #expect {
            try WordPieceTokenizer(tokenizerJSON: Data(json.utf8))
        } throws: { error in
            "\(error)".contains("Kiln supports WordPiece")
        }
    }

    @Test func vocabularyKeysAreComparedByScalars() throws {
        // "é" precomposed and decomposed are different vocabulary entries, as in HF.
        let vocabulary = ["[UNK]", "[CLS]", "[SEP]", "\u{E9}", "e\u{301}"]
        let tokenizer = try WordPieceTokenizer(
            vocabulary: vocabulary, options: BertVocabularyOptions(lowercase: false, stripAccents: false))
        #expect(try tokenizer.encode("\u{E9}").ids == [1, 3, 2])
        #expect(try tokenizer.encode("e\u{301}").ids == [1, 4, 2])
        #expect(tokenizer.id(forToken: "e\u{301}") == 4)
    }
}
