import Foundation

/// A BERT-family WordPiece tokenizer that produces exactly what Hugging Face `tokenizers` produces
/// for the same `tokenizer.json`: ids, type ids, attention mask, offsets and word ids.
///
/// The pipeline, as in HF: added tokens that match the original text (special tokens such as
/// `[MASK]`) are split out first; each remaining piece is normalized (`BertNormalizer`), added tokens
/// that match normalized text are split out, the rest is split into words (`BertPreTokenizer`) and
/// words into pieces (WordPiece); then truncation, special tokens (`[CLS] … [SEP]`) and padding.
///
/// A tokenizer is immutable once made and safe to share between tasks.
public struct WordPieceTokenizer: Sendable {
    /// The normalizer, or nil for none.
    public let normalizer: BertNormalizer?
    /// Whether text is split into words with the BERT pre-tokenizer (whitespace and punctuation);
    /// when false, each piece of text is one word.
    public let splitsWords: Bool
    /// Tokens added on top of the vocabulary, in id order.
    public let addedTokens: [AddedToken]
    /// The special-token template, or nil to add none.
    public let postProcessor: PostProcessor?
    /// The file's truncation settings (`encode`'s `maxLength` overrides the length).
    public let truncation: TruncationConfiguration?
    /// The file's padding settings.
    public let padding: PaddingConfiguration?

    let model: WordPieceModel
    private let originalTextMatcher: AddedTokenMatcher
    private let normalizedTextMatcher: AddedTokenMatcher
    private let addedTokensByID: [Int32: String]

    /// Assembles a tokenizer from its parts.
    init(
        model: WordPieceModel, normalizer: BertNormalizer?, splitsWords: Bool, addedTokens: [AddedToken],
        postProcessor: PostProcessor?, truncation: TruncationConfiguration?, padding: PaddingConfiguration?
    ) {
        self.model = model
        self.normalizer = normalizer
        self.splitsWords = splitsWords
        self.addedTokens = addedTokens
        self.postProcessor = postProcessor
        self.truncation = truncation
        self.padding = padding
        originalTextMatcher = AddedTokenMatcher(tokens: addedTokens.filter { !$0.normalized }) {
            Array($0.unicodeScalars)
        }
        normalizedTextMatcher = AddedTokenMatcher(tokens: addedTokens.filter(\.normalized)) { content in
            normalizer?.normalizedScalars(content) ?? Array(content.unicodeScalars)
        }
        addedTokensByID = Dictionary(addedTokens.map { ($0.id, $0.content) }, uniquingKeysWith: { _, last in last })
    }

    /// The number of ids the tokenizer can produce (vocabulary plus added tokens).
    public var vocabularySize: Int {
        max(model.tokens.count, (addedTokens.map { Int($0.id) }.max() ?? -1) + 1)
    }

    /// The id of a token, looking at added tokens first, then the vocabulary.
    /// - Parameter token: the token's exact text (e.g. `"[CLS]"`, `"##ing"`).
    /// - Returns: its id, or nil if the tokenizer has no such token.
    public func id(forToken token: String) -> Int32? {
        let scalars = Array(token.unicodeScalars)
        if let added = addedTokens.first(where: { $0.content.unicodeScalars.elementsEqual(scalars) }) {
            return added.id
        }
        return model.id(of: token)
    }

    /// The text of the token with this id.
    /// - Parameter id: a token id.
    /// - Returns: the token's text, or nil if the id is out of range.
    public func token(forId id: Int32) -> String? {
        if let added = addedTokensByID[id] { return added }
        guard id >= 0, Int(id) < model.tokens.count else { return nil }
        return model.tokens[Int(id)]
    }

    /// Encodes one text, or a pair of texts, like HF `Tokenizer.encode(text, pair)`.
    /// - Parameters:
    ///   - text: the (first) text.
    ///   - pair: an optional second text; its tokens get type id 1 (per the template).
    ///   - addSpecialTokens: add `[CLS]`/`[SEP]` (per the post-processor).
    ///   - maxLength: truncate to this many tokens, special tokens included. It replaces the file's
    ///     `max_length` and keeps its strategy and direction (longest_first, right when the file has no
    ///     truncation section). Nil: truncate as the file says, if at all.
    /// - Returns: the encoding, padded as the file's padding section says.
    /// - Throws: `TokenizerError.truncationImpossible` if the file's only_first/only_second strategy
    ///   cannot reach `maxLength`.
    public func encode(_ text: String, pair: String? = nil, addSpecialTokens: Bool = true, maxLength: Int? = nil)
        throws(TokenizerError) -> Encoding
    {
        var encoding = try encodeUnpadded(text, pair: pair, addSpecialTokens: addSpecialTokens, maxLength: maxLength)
        if let padding {
            encoding.pad(to: padding.targetLength(longest: encoding.count), with: padding)
        }
        return encoding
    }

    /// Encodes many texts, like HF `Tokenizer.encode_batch`: each is encoded as by `encode`, then,
    /// with batch-longest padding, all are padded to the longest.
    /// - Parameters:
    ///   - texts: the texts.
    ///   - addSpecialTokens: add `[CLS]`/`[SEP]`.
    ///   - maxLength: truncate each to this many tokens (see `encode`).
    /// - Returns: one encoding per text, in order.
    public func encodeBatch(_ texts: [String], addSpecialTokens: Bool = true, maxLength: Int? = nil)
        throws(TokenizerError) -> [Encoding]
    {
        var encodings: [Encoding] = []
        encodings.reserveCapacity(texts.count)
        for text in texts {
            encodings.append(try encode(text, addSpecialTokens: addSpecialTokens, maxLength: maxLength))
        }
        padBatch(&encodings)
        return encodings
    }

    /// Encodes many pairs of texts, like HF `Tokenizer.encode_batch` with pairs.
    /// - Parameters:
    ///   - pairs: (first, second) texts.
    ///   - addSpecialTokens: add `[CLS]`/`[SEP]`.
    ///   - maxLength: truncate each pair to this many tokens (see `encode`).
    /// - Returns: one encoding per pair, in order.
    public func encodeBatch(pairs: [(String, String)], addSpecialTokens: Bool = true, maxLength: Int? = nil)
        throws(TokenizerError) -> [Encoding]
    {
        var encodings: [Encoding] = []
        encodings.reserveCapacity(pairs.count)
        for (first, second) in pairs {
            encodings.append(try encode(first, pair: second, addSpecialTokens: addSpecialTokens, maxLength: maxLength))
        }
        padBatch(&encodings)
        return encodings
    }

    private func padBatch(_ encodings: inout [Encoding]) {
        guard let padding, !encodings.isEmpty else { return }
        let target = padding.targetLength(longest: encodings.map(\.count).max() ?? 0)
        for index in encodings.indices { encodings[index].pad(to: target, with: padding) }
    }

    /// The truncation that applies to one call.
    private func effectiveTruncation(maxLength: Int?) -> TruncationConfiguration? {
        guard let maxLength else { return truncation }
        var configuration = truncation ?? TruncationConfiguration(maxLength: maxLength)
        configuration.maxLength = maxLength
        return configuration
    }

    private func encodeUnpadded(_ text: String, pair: String?, addSpecialTokens: Bool, maxLength: Int?)
        throws(TokenizerError) -> Encoding
    {
        var first = encodeSequence(text, typeId: 0, sequenceId: 0)
        var second = pair.map { encodeSequence($0, typeId: 1, sequenceId: 1) }
        if let truncation = effectiveTruncation(maxLength: maxLength) {
            let added = addSpecialTokens ? (postProcessor?.addedTokenCount(isPair: pair != nil) ?? 0) : 0
            guard truncation.maxLength >= added else {
                throw .truncationImpossible(
                    reason: "max length \(truncation.maxLength) is shorter than the \(added) special tokens")
            }
            try truncate(
                &first, &second, maxLength: truncation.maxLength - added, strategy: truncation.strategy,
                direction: truncation.direction)
        }
        if let postProcessor {
            return postProcessor.process(first, second, addSpecialTokens: addSpecialTokens)
        }
        if let second { first.append(contentsOf: second) }
        return first
    }

    /// Tokenizes one text without special tokens, truncation or padding.
    func encodeSequence(_ text: String, typeId: Int32, sequenceId: Int) -> Encoding {
        let original = Array(text.unicodeScalars)
        var encoding = Encoding()
        encoding.reserveCapacity(original.count / 3 + 4)
        var wordIndex = 0
        for piece in originalTextMatcher.split(original[...]) {
            if let token = piece.token {
                encoding.append(
                    id: token.id, token: String(String.UnicodeScalarView(original[piece.range])),
                    offsets: piece.range, wordId: wordIndex, typeId: typeId, sequenceId: sequenceId, special: false)
                wordIndex += 1
                continue
            }
            guard !piece.range.isEmpty else { continue }
            var normalized = NormalizedText(original: original[piece.range])
            normalizer?.normalize(&normalized)
            let shift = piece.range.lowerBound
            for subpiece in normalizedTextMatcher.split(normalized.scalars[...]) where !subpiece.range.isEmpty {
                if let token = subpiece.token {
                    let range = normalized.originalRange(of: subpiece.range)
                    encoding.append(
                        id: token.id, token: String(String.UnicodeScalarView(normalized.scalars[subpiece.range])),
                        offsets: (range.lowerBound + shift)..<(range.upperBound + shift), wordId: wordIndex,
                        typeId: typeId, sequenceId: sequenceId, special: false)
                    wordIndex += 1
                    continue
                }
                forEachWord(in: normalized.scalars, range: subpiece.range) { word in
                    model.tokenize(normalized.scalars[word]) { id, pieceRange in
                        let range = normalized.originalRange(
                            of: (word.lowerBound + pieceRange.lowerBound)..<(word.lowerBound + pieceRange.upperBound))
                        encoding.append(
                            id: id, token: model.tokens[Int(id)],
                            offsets: (range.lowerBound + shift)..<(range.upperBound + shift), wordId: wordIndex,
                            typeId: typeId, sequenceId: sequenceId, special: false)
                    }
                    wordIndex += 1
                }
            }
        }
        return encoding
    }

    /// Calls `body` with each word's range: the BERT pre-tokenizer removes whitespace and isolates
    /// each punctuation character.
    @inline(__always)
    private func forEachWord(in scalars: [Unicode.Scalar], range: Range<Int>, _ body: (Range<Int>) -> Void) {
        guard splitsWords else {
            body(range)
            return
        }
        var wordStart = range.lowerBound
        for index in range {
            let scalar = scalars[index]
            if BertCharacterClasses.isRustWhitespace(scalar) {
                if wordStart < index { body(wordStart..<index) }
                wordStart = index + 1
            } else if BertCharacterClasses.isPunctuation(scalar) {
                if wordStart < index { body(wordStart..<index) }
                body(index..<(index + 1))
                wordStart = index + 1
            }
        }
        if wordStart < range.upperBound { body(wordStart..<range.upperBound) }
    }
}
