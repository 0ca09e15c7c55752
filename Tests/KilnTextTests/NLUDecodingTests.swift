import Testing

@testable import KilnText

struct IntentDecoderTests {
    @Test func softmaxRanksTopK() throws {
        let decoder = IntentDecoder(labels: ["book_flight", "play_music", "get_weather"])
        let top = try decoder.decode(logits: [1, 3, 2], topK: 2)
        #expect(top.map(\.label) == ["play_music", "get_weather"])
        #expect(top.map(\.index) == [1, 2])
        let all = try decoder.decode(logits: [1, 3, 2], topK: 10)
        #expect(all.count == 3)
        #expect(abs(all.map(\.score).reduce(0, +) - 1) < 1e-6)
        #expect(abs(all[0].score - 0.66524096) < 1e-6)
    }

    @Test func softmaxIsStableForLargeLogits() throws {
        let top = try IntentDecoder(labels: ["a", "b"]).decode(logits: [1000, 999], topK: 1)
        #expect(top.first?.label == "a")
        #expect(abs(top[0].score - 0.7310586) < 1e-6)
    }

    @Test func sigmoidKeepsEveryIntentAboveTheThreshold() throws {
        let decoder = IntentDecoder(labels: ["card", "lost", "fees"], activation: .sigmoid(threshold: 0.5))
        let predicted = try decoder.decode(logits: [2, -1, 0.5])
        #expect(predicted.map(\.label) == ["card", "fees"])
        #expect(abs(predicted[0].score - 0.8807971) < 1e-6)
        #expect(try decoder.decode(logits: [-3, -2, -1]).isEmpty)
        #expect(try decoder.decode(logits: [3, 2, 1], topK: 1).map(\.label) == ["card"])
    }

    @Test func wrongNumberOfLogitsIsAnError() {
        #expect(throws: NLUDecodingError.labelCountMismatch(scores: 2, labels: 3, head: "intent")) {
            try IntentDecoder(labels: ["a", "b", "c"]).decode(logits: [1, 2])
        }
    }
}

struct SlotDecoderTests {
    static let vocabulary = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "play", "un", "##aff", "##able", "world", "hello", "我", "cafe",
        "don", "'", "t", "like", "new", "york",
    ]

    func tokenizer() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabulary: Self.vocabulary)
    }

    @Test func bioSpansUseTheFirstSubTokenOfEachWord() throws {
        let text = "play unaffable world hello"
        let encoding = try tokenizer().encode(text)
        #expect(encoding.tokens == ["[CLS]", "play", "un", "##aff", "##able", "world", "hello", "[SEP]"])
        // Tags on ##aff/##able are ignored: a word's tag is its first sub-token's.
        let tags = ["O", "O", "B-adj", "O", "B-noise", "I-adj", "O", "O"]
        let spans = try SlotDecoder(labels: []).decode(tags: tags, encoding: encoding, text: text)
        #expect(spans == [SlotSpan(label: "adj", start: 5, end: 20, value: "unaffable world")])
    }

    @Test func spansCarryOffsetsAndTextOfTheOriginal() throws {
        let text = "Café  unaffable!"
        let encoding = try tokenizer().encode(text)
        let labels = ["O", "B-food", "I-food"]
        // [CLS] cafe un ##aff ##able [UNK] [SEP]
        let tags = [0, 1, 2, 0, 0, 0, 0]
        // By whitespace, "unaffable!" is one word; by the tokenizer's words, "!" is a word of its own.
        let byWhitespace = try SlotDecoder(labels: labels).decode(tagIndices: tags, encoding: encoding, text: text)
        #expect(byWhitespace == [SlotSpan(label: "food", start: 0, end: 16, value: "Café  unaffable!")])
        let byTokenizer = try SlotDecoder(labels: labels, segmentation: .tokenizerWords).decode(
            tagIndices: tags, encoding: encoding, text: text)
        #expect(byTokenizer == [SlotSpan(label: "food", start: 0, end: 15, value: "Café  unaffable")])
    }

    @Test func punctuationInsideAWordFollowsTheSegmentation() throws {
        let text = "don't like new york"
        let encoding = try tokenizer().encode(text)
        #expect(encoding.tokens == ["[CLS]", "don", "'", "t", "like", "new", "york", "[SEP]"])
        let tags = ["O", "B-negation", "B-junk", "I-junk", "O", "B-city", "I-city", "O"]
        let byWhitespace = try SlotDecoder(labels: []).decode(tags: tags, encoding: encoding, text: text)
        #expect(byWhitespace == [
            SlotSpan(label: "negation", start: 0, end: 5, value: "don't"),
            SlotSpan(label: "city", start: 11, end: 19, value: "new york"),
        ])
        let byTokenizer = try SlotDecoder(labels: [], segmentation: .tokenizerWords).decode(
            tags: tags, encoding: encoding, text: text)
        #expect(byTokenizer.map(\.value) == ["don", "'t", "new york"])
    }

    @Test func bioesSpansOverChineseCharacters() throws {
        let text = "我我我 play"
        let encoding = try tokenizer().encode(text)
        let labels = ["O", "B-singer", "E-singer", "S-song", "I-singer"]
        let spans = try SlotDecoder(labels: labels, scheme: .bioes, segmentation: .everyToken).decode(
            tagIndices: [0, 1, 2, 3, 0, 0], encoding: encoding, text: text)
        #expect(spans == [
            SlotSpan(label: "singer", start: 0, end: 2, value: "我我"),
            SlotSpan(label: "song", start: 2, end: 3, value: "我"),
        ])
    }

    @Test func chineseCharactersAreWordsOfTheirOwnByTheTokenizer() throws {
        // What a support-zh card (slot_positions "first_subtoken") needs: each ideograph carries a tag.
        let text = "我我我"
        let encoding = try tokenizer().encode(text)
        let labels = ["O", "B-singer", "I-singer"]
        let tags = [0, 0, 1, 2, 0]
        let byTokenizer = try SlotDecoder(labels: labels, segmentation: .tokenizerWords).decode(
            tagIndices: tags, encoding: encoding, text: text)
        #expect(byTokenizer == [SlotSpan(label: "singer", start: 1, end: 3, value: "我我")])
        // By whitespace the whole sentence is one word tagged O: no slot at all.
        #expect(try SlotDecoder(labels: labels).decode(tagIndices: tags, encoding: encoding, text: text).isEmpty)
    }

    @Test func modelCardSlotPositionsNameTheSegmentation() {
        #expect(SlotDecoder.WordSegmentation(slotPositions: "first_subtoken") == .tokenizerWords)
        #expect(SlotDecoder.WordSegmentation(slotPositions: "EVERY_TOKEN") == .everyToken)
        #expect(SlotDecoder.WordSegmentation(slotPositions: "whitespace_words") == .whitespace)
        #expect(SlotDecoder.WordSegmentation(slotPositions: nil) == .whitespace)
        #expect(SlotDecoder.WordSegmentation(slotPositions: "last_subtoken") == nil)
    }

    @Test func wordRangesGiveTheFirstTokenAndTheWholeWord() throws {
        let text = "Café  unaffable!"
        let encoding = try tokenizer().encode(text)
        let words = SlotDecoder(labels: [], segmentation: .tokenizerWords).wordRanges(of: encoding, text: text)
        #expect(words == [
            SlotDecoder.WordRange(firstToken: 0..<4, word: 0..<4),
            SlotDecoder.WordRange(firstToken: 6..<8, word: 6..<15),
            SlotDecoder.WordRange(firstToken: 15..<16, word: 15..<16),
        ])
        #expect(SlotDecoder(labels: []).wordRanges(of: encoding, text: text).map(\.word) == [0..<4, 6..<16])
    }

    @Test func insideWithoutBeginStartsASpan() throws {
        let text = "hello world play"
        let encoding = try tokenizer().encode(text)
        let tags = ["O", "I-a", "I-b", "I-b", "O"]
        let spans = try SlotDecoder(labels: []).decode(tags: tags, encoding: encoding, text: text)
        #expect(spans.map(\.label) == ["a", "b"])
        #expect(spans.map(\.value) == ["hello", "world play"])
    }

    @Test func logitsDecodeWithScoresAndIgnorePadding() throws {
        let tokenizer = try fixtureTokenizer("bert-chinese")
        let text = "play hello"
        let encoding = try tokenizer.encode(text)
        #expect(encoding.count == 8)  // padded to a multiple of 8
        let labels = ["O", "B-x", "I-x"]
        var logits = [Float](repeating: 0, count: encoding.count * labels.count)
        func set(_ token: Int, _ label: Int) { logits[token * labels.count + label] = 5 }
        for token in 0..<encoding.count { set(token, 0) }
        set(1, 1)
        logits[1 * labels.count] = 0
        set(2, 2)
        logits[2 * labels.count] = 0
        set(5, 1)  // a padding token tagged B-x: ignored
        logits[5 * labels.count] = 0
        let spans = try SlotDecoder(labels: labels).decode(logits: logits, encoding: encoding, text: text)
        #expect(spans.count == 1)
        #expect(spans[0].value == "play hello")
        #expect(spans[0].start == 0 && spans[0].end == 10)
        #expect(abs((spans[0].score ?? 0) - 0.9867033) < 1e-5)
    }

    @Test func tagCountMustMatchTheEncoding() throws {
        let encoding = try tokenizer().encode("hello")
        #expect(throws: NLUDecodingError.tokenCountMismatch(tags: 2, tokens: 3)) {
            try SlotDecoder(labels: ["O"]).decode(tagIndices: [0, 0], encoding: encoding, text: "hello")
        }
    }
}
