import KilnText

/// The tokenize stage: text to token ids with the model's tokenizer, truncated to the model's
/// `max_seq_length`, remembering whether anything was cut.
public struct TextEncoder: Sendable {
    /// The model's tokenizer.
    public let tokenizer: WordPieceTokenizer
    /// The longest encoding, special tokens included.
    public let maxLength: Int

    /// One encoded text.
    public struct Encoded: Sendable {
        /// The text as sent.
        public var text: String
        /// The tokens the model runs on.
        public var encoding: Encoding
        /// Whether the text was longer than the model's max length and its end was dropped.
        public var truncated: Bool

        /// The engine input for this text: one row.
        public var engineInput: EngineInput {
            EngineInput(
                rows: 1, length: encoding.count, inputIds: encoding.ids.map(Int64.init),
                attentionMask: encoding.attentionMask.map(Int64.init), tokenTypeIds: encoding.typeIds.map(Int64.init))
        }
    }

    /// Creates the stage for a model.
    public init(tokenizer: WordPieceTokenizer, maxLength: Int) {
        self.tokenizer = tokenizer
        self.maxLength = maxLength
    }

    /// Encodes one text.
    /// - Parameter text: the utterance.
    /// - Returns: its encoding and whether it was truncated.
    /// - Throws: ``ServeError/badRequest(_:)`` when the tokenizer cannot encode it.
    public func encode(_ text: String) throws -> Encoded {
        let encoding: Encoding
        do { encoding = try tokenizer.encode(text, maxLength: maxLength) } catch {
            throw ServeError.badRequest("the text cannot be tokenized: \(error)")
        }
        guard encoding.count > 0 else { throw ServeError.badRequest("the text has no tokens") }
        return Encoded(text: text, encoding: encoding, truncated: Self.wasTruncated(text, encoding: encoding, maxLength: maxLength))
    }

    /// Whether text remains after the last token that made it into the encoding (only possible
    /// when the encoding is at its max length).
    static func wasTruncated(_ text: String, encoding: Encoding, maxLength: Int) -> Bool {
        guard encoding.attentionMask.reduce(0, { $0 + Int($1) }) >= maxLength else { return false }
        var lastEnd = 0
        for (index, range) in encoding.offsets.enumerated() where encoding.sequenceIds[index] == 0 {
            lastEnd = max(lastEnd, range.upperBound)
        }
        var position = 0
        for scalar in text.unicodeScalars {
            if position >= lastEnd && !scalar.properties.isWhitespace { return true }
            position += 1
        }
        return false
    }
}
