/// The tokenizer's output for one input (or one pair of inputs): what the model needs, plus the
/// alignment back to the text that slot decoding needs. Field for field what Hugging Face
/// `tokenizers`' `Encoding` reports.
public struct Encoding: Sendable, Equatable {
    /// Token ids (`input_ids`).
    public var ids: [Int32]
    /// Segment ids (`token_type_ids`): 0 for the first sequence, 1 for the second of a pair.
    public var typeIds: [Int32]
    /// 1 for real tokens (special tokens included), 0 for padding.
    public var attentionMask: [Int32]
    /// Each token's range in the original text, in Unicode scalars (what Python's
    /// `Encoding.offsets` reports); `0..<0` for special and padding tokens. For a pair, offsets of
    /// the second sequence's tokens are into the second text.
    public var offsets: [Range<Int>]
    /// Token strings (`##` marks a word continuation).
    public var tokens: [String]
    /// The index of the word each token belongs to (within its own sequence), nil for special and
    /// padding tokens. Added tokens found in the text (e.g. `[MASK]`) count as words.
    public var wordIds: [Int?]
    /// Which input each token came from: 0, 1 for the second of a pair, nil for special/padding tokens.
    public var sequenceIds: [Int?]
    /// 1 for special and padding tokens, 0 for tokens of the text.
    public var specialTokensMask: [Int32]

    /// Creates an empty encoding.
    public init() {
        ids = []
        typeIds = []
        attentionMask = []
        offsets = []
        tokens = []
        wordIds = []
        sequenceIds = []
        specialTokensMask = []
    }

    /// The number of tokens, padding included.
    public var count: Int { ids.count }

    mutating func reserveCapacity(_ capacity: Int) {
        ids.reserveCapacity(capacity)
        typeIds.reserveCapacity(capacity)
        attentionMask.reserveCapacity(capacity)
        offsets.reserveCapacity(capacity)
        tokens.reserveCapacity(capacity)
        wordIds.reserveCapacity(capacity)
        sequenceIds.reserveCapacity(capacity)
        specialTokensMask.reserveCapacity(capacity)
    }

    mutating func append(
        id: Int32, token: String, offsets range: Range<Int>, wordId: Int?, typeId: Int32, sequenceId: Int?,
        special: Bool, attention: Int32 = 1
    ) {
        ids.append(id)
        tokens.append(token)
        offsets.append(range)
        wordIds.append(wordId)
        typeIds.append(typeId)
        sequenceIds.append(sequenceId)
        specialTokensMask.append(special ? 1 : 0)
        attentionMask.append(attention)
    }

    mutating func append(contentsOf other: Encoding) {
        ids += other.ids
        typeIds += other.typeIds
        attentionMask += other.attentionMask
        offsets += other.offsets
        tokens += other.tokens
        wordIds += other.wordIds
        sequenceIds += other.sequenceIds
        specialTokensMask += other.specialTokensMask
    }

    /// Keeps `range` of the tokens and drops the rest.
    mutating func keep(_ range: Range<Int>) {
        ids = Array(ids[range])
        typeIds = Array(typeIds[range])
        attentionMask = Array(attentionMask[range])
        offsets = Array(offsets[range])
        tokens = Array(tokens[range])
        wordIds = Array(wordIds[range])
        sequenceIds = Array(sequenceIds[range])
        specialTokensMask = Array(specialTokensMask[range])
    }

    /// Truncates to `maxLength` tokens, dropping from the end (`.right`) or the start (`.left`).
    mutating func truncate(to maxLength: Int, direction: TruncationDirection) {
        guard maxLength < count else { return }
        switch direction {
        case .right: keep(0..<maxLength)
        case .left: keep((count - maxLength)..<count)
        }
    }

    /// Pads to `length` tokens with `padding`'s token; an encoding already that long is unchanged.
    mutating func pad(to length: Int, with padding: PaddingConfiguration) {
        guard length > count else { return }
        let extra = length - count
        var pad = Encoding()
        pad.ids = Array(repeating: padding.padId, count: extra)
        pad.typeIds = Array(repeating: padding.padTypeId, count: extra)
        pad.attentionMask = Array(repeating: 0, count: extra)
        pad.offsets = Array(repeating: 0..<0, count: extra)
        pad.tokens = Array(repeating: padding.padToken, count: extra)
        pad.wordIds = Array(repeating: nil, count: extra)
        pad.sequenceIds = Array(repeating: nil, count: extra)
        pad.specialTokensMask = Array(repeating: 1, count: extra)
        switch padding.direction {
        case .right:
            append(contentsOf: pad)
        case .left:
            pad.append(contentsOf: self)
            self = pad
        }
    }
}
