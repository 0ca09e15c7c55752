import Foundation

/// A filled slot: its type, where it is in the original text and what it says.
public struct SlotSpan: Sendable, Equatable {
    /// The slot type, e.g. `city` for tags `B-city`/`I-city`.
    public var label: String
    /// Start offset in the original text, in Unicode scalars (as `Encoding.offsets`).
    public var start: Int
    /// End offset (exclusive) in the original text, in Unicode scalars.
    public var end: Int
    /// The text the span covers, exactly as it appears in the original text.
    public var value: String
    /// Mean probability of the span's word tags, when decoded from logits; nil from plain tags.
    public var score: Float?

    /// Creates a span.
    /// - Parameters:
    ///   - label: the slot type.
    ///   - start: start offset in Unicode scalars.
    ///   - end: end offset (exclusive) in Unicode scalars.
    ///   - value: the covered text.
    ///   - score: mean tag probability, if known.
    public init(label: String, start: Int, end: Int, value: String, score: Float? = nil) {
        self.label = label
        self.start = start
        self.end = end
        self.value = value
        self.score = score
    }
}

/// Turns per-token slot tags into slot spans over words of the original text.
///
/// Tags are read per word from the word's first sub-token (the labelling JointBERT and most BERT
/// slot fillers train with); the word's range runs from its first to its last token. Words are then
/// grouped into spans by the tagging scheme. Malformed sequences are read leniently, as conlleval
/// does: an `I-x` (or `E-x`) that does not continue an `x` span starts a new one.
///
/// What a "word" is must match how the training data was labelled; see `WordSegmentation`.
public struct SlotDecoder: Sendable, Equatable {
    /// How tags mark span boundaries.
    public enum Scheme: Sendable, Equatable {
        /// `B-x` begins, `I-x` continues, `O` is outside.
        case bio
        /// BIO plus `E-x` ends a span and `S-x` is a one-word span.
        case bioes
    }

    /// Which tokens form one labelled word: this must match how the model's training data was
    /// labelled.
    public enum WordSegmentation: Sendable, Equatable {
        /// Words are the whitespace-separated pieces of the text, and a word's tag is its first
        /// sub-token's. This is how SNIPS and ATIS are labelled (one tag per space-separated word)
        /// and what `is_split_into_words` training produces: in "don't", only `don` carries the tag.
        case whitespace
        /// Words are the tokenizer's words (`Encoding.wordIds`): the BERT pre-tokenizer also splits at
        /// every punctuation character (so "don't" is three words) and around every CJK ideograph.
        case tokenizerWords
        /// Every token carries its own tag, as when a character-labelled set like CAIS is aligned by
        /// giving each token the tag of the character it starts with.
        case everyToken
    }

    /// Tag names, in the slot head's output order (e.g. `O`, `B-city`, `I-city`). Tags that are not
    /// `B-`/`I-`/`E-`/`S-` prefixed (`O`, `PAD`, `UNK`) mean "outside".
    public var labels: [String]
    /// The tagging scheme.
    public var scheme: Scheme
    /// Which tokens form one labelled word.
    public var segmentation: WordSegmentation

    /// Creates a slot decoder.
    /// - Parameters:
    ///   - labels: tag names in the slot head's output order.
    ///   - scheme: `.bio` (SNIPS, ATIS) or `.bioes` (CAIS).
    ///   - segmentation: which tokens form a labelled word: `.whitespace` (the default) for
    ///     word-labelled data such as SNIPS and ATIS, `.everyToken` for character-labelled data such
    ///     as CAIS.
    public init(labels: [String], scheme: Scheme = .bio, segmentation: WordSegmentation = .whitespace) {
        self.labels = labels
        self.scheme = scheme
        self.segmentation = segmentation
    }

    /// Decodes spans from the slot head's logits.
    /// - Parameters:
    ///   - logits: row-major `[tokens, labels]` scores for the encoding's tokens.
    ///   - encoding: the encoding the model ran on.
    ///   - text: the text that was encoded (the first text, for a pair).
    /// - Returns: the spans of the first sequence, in text order, each with its mean tag probability.
    /// - Throws: `NLUDecodingError` if `logits` doesn't have one row of `labels.count` scores per token.
    public func decode(logits: [Float], encoding: Encoding, text: String) throws(NLUDecodingError) -> [SlotSpan] {
        guard !labels.isEmpty, logits.count % labels.count == 0 else {
            throw .labelCountMismatch(scores: logits.count, labels: labels.count, head: "slot")
        }
        let tokenCount = logits.count / labels.count
        guard tokenCount == encoding.count else { throw .tokenCountMismatch(tags: tokenCount, tokens: encoding.count) }
        var tags: [Int] = []
        var probabilities: [Float] = []
        tags.reserveCapacity(tokenCount)
        probabilities.reserveCapacity(tokenCount)
        for token in 0..<tokenCount {
            let row = Array(logits[(token * labels.count)..<((token + 1) * labels.count)])
            let softmax = IntentDecoder.softmax(row)
            var best = 0
            for index in softmax.indices where softmax[index] > softmax[best] { best = index }
            tags.append(best)
            probabilities.append(softmax[best])
        }
        return try decode(tagIndices: tags, probabilities: probabilities, encoding: encoding, text: text)
    }

    /// Decodes spans from per-token tag indices (the argmax of the slot head).
    /// - Parameters:
    ///   - tagIndices: one index into `labels` per token of `encoding`.
    ///   - encoding: the encoding the model ran on.
    ///   - text: the text that was encoded (the first text, for a pair).
    /// - Returns: the spans of the first sequence, in text order.
    /// - Throws: `NLUDecodingError.tokenCountMismatch` if there isn't one tag per token.
    public func decode(tagIndices: [Int], encoding: Encoding, text: String) throws(NLUDecodingError) -> [SlotSpan] {
        try decode(tagIndices: tagIndices, probabilities: nil, encoding: encoding, text: text)
    }

    /// Decodes spans from per-token tag names.
    /// - Parameters:
    ///   - tags: one tag name per token of `encoding` (names need not be in `labels`).
    ///   - encoding: the encoding the model ran on.
    ///   - text: the text that was encoded.
    /// - Returns: the spans of the first sequence, in text order.
    /// - Throws: `NLUDecodingError.tokenCountMismatch` if there isn't one tag per token.
    public func decode(tags: [String], encoding: Encoding, text: String) throws(NLUDecodingError) -> [SlotSpan] {
        guard tags.count == encoding.count else { throw .tokenCountMismatch(tags: tags.count, tokens: encoding.count) }
        let words = words(of: encoding, text: text)
        let wordTags = words.map { Tag(tags[$0.firstToken]) }
        return spans(words: words, tags: wordTags, probabilities: nil, text: text)
    }

    private func decode(tagIndices: [Int], probabilities: [Float]?, encoding: Encoding, text: String)
        throws(NLUDecodingError) -> [SlotSpan]
    {
        guard tagIndices.count == encoding.count else {
            throw .tokenCountMismatch(tags: tagIndices.count, tokens: encoding.count)
        }
        let words = words(of: encoding, text: text)
        let wordTags = words.map { word -> Tag in
            let index = tagIndices[word.firstToken]
            return labels.indices.contains(index) ? Tag(labels[index]) : Tag("O")
        }
        let wordProbabilities = probabilities.map { probabilities in words.map { probabilities[$0.firstToken] } }
        return spans(words: words, tags: wordTags, probabilities: wordProbabilities, text: text)
    }

    /// A labelled word's place in the text, in Unicode scalars: the range of its first token (whose
    /// tag the word takes) and the range of the whole word. Scoring uses it to project gold spans
    /// onto the words a model tags, as training did.
    public struct WordRange: Sendable, Equatable {
        public var firstToken: Range<Int>
        public var word: Range<Int>

        public init(firstToken: Range<Int>, word: Range<Int>) {
            self.firstToken = firstToken
            self.word = word
        }
    }

    /// The labelled words of the encoding's first sequence, in text order, under this decoder's
    /// segmentation.
    public func wordRanges(of encoding: Encoding, text: String) -> [WordRange] {
        words(of: encoding, text: text).map { word in
            let first = encoding.offsets[word.firstToken]
            return WordRange(firstToken: first, word: word.start..<max(word.start, word.end))
        }
    }

    /// A word of the first sequence: its first token and its range in the original text.
    struct Word: Equatable {
        var firstToken: Int
        var start: Int
        var end: Int
    }

    /// The words of the encoding's first sequence, in order.
    func words(of encoding: Encoding, text: String) -> [Word] {
        let scalars = Array(text.unicodeScalars)
        var words: [Word] = []
        var lastWordID: Int?
        for token in 0..<encoding.count {
            guard let wordID = encoding.wordIds[token], encoding.sequenceIds[token] ?? 0 == 0 else { continue }
            let range = encoding.offsets[token]
            var continuesWord = false
            if let previous = words.last {
                switch segmentation {
                case .tokenizerWords:
                    continuesWord = wordID == lastWordID
                case .everyToken:
                    continuesWord = false
                case .whitespace:
                    let gapStart = min(previous.end, scalars.count)
                    let gapEnd = min(max(previous.end, range.lowerBound), scalars.count)
                    continuesWord = !scalars[gapStart..<gapEnd].contains(where: BertCharacterClasses.isWhitespace)
                }
            }
            if continuesWord, var word = words.popLast() {
                word.start = min(word.start, range.lowerBound)
                word.end = max(word.end, range.upperBound)
                words.append(word)
            } else {
                words.append(Word(firstToken: token, start: range.lowerBound, end: range.upperBound))
            }
            lastWordID = wordID
        }
        return words
    }

    /// A parsed tag: its boundary marker and slot type.
    struct Tag: Equatable {
        enum Marker { case begin, inside, end, single, outside }
        var marker: Marker
        var type: String

        init(_ name: String) {
            let scalars = Array(name.unicodeScalars)
            guard scalars.count > 2, scalars[1] == "-" || scalars[1] == "_" else {
                marker = .outside
                type = ""
                return
            }
            type = String(String.UnicodeScalarView(scalars[2...]))
            switch scalars[0] {
            case "B": marker = .begin
            case "I": marker = .inside
            case "E", "L": marker = .end
            case "S", "U": marker = .single
            default:
                marker = .outside
                type = ""
            }
        }
    }

    private func spans(words: [Word], tags: [Tag], probabilities: [Float]?, text: String) -> [SlotSpan] {
        let scalars = Array(text.unicodeScalars)
        var spans: [SlotSpan] = []
        var open: (type: String, first: Int, last: Int)?

        func close() {
            guard let current = open else { return }
            open = nil
            let start = words[current.first].start
            let end = words[current.last].end
            let clampedStart = min(max(0, start), scalars.count)
            let clampedEnd = min(max(clampedStart, end), scalars.count)
            var score: Float?
            if let probabilities {
                let values = probabilities[current.first...current.last]
                score = values.reduce(0, +) / Float(values.count)
            }
            spans.append(
                SlotSpan(
                    label: current.type, start: start, end: end,
                    value: String(String.UnicodeScalarView(scalars[clampedStart..<clampedEnd])), score: score))
        }

        for (index, tag) in tags.enumerated() {
            var marker = tag.marker
            if scheme == .bio {
                // BIO has no E/S: read them as I/B so BIOES tags still decode sensibly.
                if marker == .end { marker = .inside }
                if marker == .single { marker = .begin }
            }
            switch marker {
            case .outside:
                close()
            case .begin:
                close()
                open = (tag.type, index, index)
            case .single:
                close()
                open = (tag.type, index, index)
                close()
            case .inside, .end:
                if let current = open, current.type == tag.type {
                    open = (current.type, current.first, index)
                } else {
                    close()
                    open = (tag.type, index, index)
                }
                if marker == .end { close() }
            }
        }
        close()
        return spans
    }
}

extension SlotDecoder.WordSegmentation {
    /// The `slot_positions` values a model card may name, with the segmentation each one means.
    public static let slotPositionNames: [String: SlotDecoder.WordSegmentation] = [
        // Kiln's training pipeline (training/common.py `encode`): every token that is not a `##`
        // continuation starts a word, i.e. the BERT pre-tokenizer's words (punctuation and each CJK
        // ideograph apart) carry the tags.
        "first_subtoken": .tokenizerWords,
        "tokenizer_words": .tokenizerWords,
        // Tags on the first sub-token of each whitespace-separated word (`is_split_into_words`).
        "whitespace_words": .whitespace,
        "every_token": .everyToken,
    ]

    /// The accepted `slot_positions` names, for error messages.
    public static var knownSlotPositions: String {
        slotPositionNames.keys.sorted().joined(separator: ", ")
    }

    /// The segmentation a model card's `slot_positions` names; `.whitespace` when the card has none
    /// (word-labelled JointBERT exports). Nil for a name Kiln does not know.
    public init?(slotPositions: String?) {
        guard let slotPositions else {
            self = .whitespace
            return
        }
        guard let segmentation = Self.slotPositionNames[slotPositions.lowercased()] else { return nil }
        self = segmentation
    }
}
