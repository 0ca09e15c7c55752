/// Which end of a sequence truncation removes tokens from.
public enum TruncationDirection: String, Sendable, Equatable {
    /// Keep the beginning, drop the end (HF "Right", the default).
    case right = "Right"
    /// Keep the end, drop the beginning (HF "Left").
    case left = "Left"
}

/// How a pair of sequences shares the length budget (HF `TruncationStrategy`).
public enum TruncationStrategy: String, Sendable, Equatable {
    /// Take tokens from the longer sequence first (HF "LongestFirst", the default).
    case longestFirst = "LongestFirst"
    /// Truncate only the first sequence.
    case onlyFirst = "OnlyFirst"
    /// Truncate only the second sequence.
    case onlySecond = "OnlySecond"
}

/// Truncation settings (the `truncation` section of tokenizer.json).
public struct TruncationConfiguration: Sendable, Equatable {
    /// The maximum number of tokens, special tokens included.
    public var maxLength: Int
    /// How a pair shares `maxLength`.
    public var strategy: TruncationStrategy
    /// Which end to drop tokens from.
    public var direction: TruncationDirection
    /// Overlap for overflowing windows; Kiln keeps only the first window, so this has no effect on
    /// the returned encoding.
    public var stride: Int

    /// Creates truncation settings.
    /// - Parameters:
    ///   - maxLength: the maximum number of tokens, special tokens included.
    ///   - strategy: how a pair shares the budget.
    ///   - direction: which end to drop tokens from.
    ///   - stride: overlap of overflowing windows (not used by Kiln's output).
    public init(
        maxLength: Int, strategy: TruncationStrategy = .longestFirst, direction: TruncationDirection = .right,
        stride: Int = 0
    ) {
        self.maxLength = maxLength
        self.strategy = strategy
        self.direction = direction
        self.stride = stride
    }
}

/// How long padded encodings are.
public enum PaddingStrategy: Sendable, Equatable {
    /// Pad every encoding of a batch to the batch's longest (HF "BatchLongest").
    case batchLongest
    /// Pad every encoding to this many tokens (HF `{"Fixed": n}`).
    case fixed(Int)
}

/// Which side padding goes on.
public enum PaddingDirection: String, Sendable, Equatable {
    /// Pad after the tokens (HF "Right", the default).
    case right = "Right"
    /// Pad before the tokens (HF "Left").
    case left = "Left"
}

/// Padding settings (the `padding` section of tokenizer.json).
public struct PaddingConfiguration: Sendable, Equatable {
    /// Target length.
    public var strategy: PaddingStrategy
    /// Which side padding goes on.
    public var direction: PaddingDirection
    /// Round the target length up to a multiple of this.
    public var padToMultipleOf: Int?
    /// The padding token's id.
    public var padId: Int32
    /// The padding token's type id.
    public var padTypeId: Int32
    /// The padding token's text.
    public var padToken: String

    /// Creates padding settings.
    /// - Parameters:
    ///   - strategy: target length.
    ///   - direction: which side padding goes on.
    ///   - padToMultipleOf: round the target length up to a multiple of this.
    ///   - padId: the padding token's id.
    ///   - padTypeId: the padding token's type id.
    ///   - padToken: the padding token's text.
    public init(
        strategy: PaddingStrategy = .batchLongest, direction: PaddingDirection = .right, padToMultipleOf: Int? = nil,
        padId: Int32 = 0, padTypeId: Int32 = 0, padToken: String = "[PAD]"
    ) {
        self.strategy = strategy
        self.direction = direction
        self.padToMultipleOf = padToMultipleOf
        self.padId = padId
        self.padTypeId = padTypeId
        self.padToken = padToken
    }

    /// The padded length for encodings whose longest is `longest` tokens.
    func targetLength(longest: Int) -> Int {
        var length: Int
        switch strategy {
        case .batchLongest: length = longest
        case .fixed(let fixed): length = fixed
        }
        if let multiple = padToMultipleOf, multiple > 0, length % multiple != 0 {
            length += multiple - length % multiple
        }
        return length
    }
}

/// HF's `truncate_encodings`: shortens one sequence or a pair (before special tokens are added) so
/// that together they have at most `maxLength` tokens.
func truncate(
    _ first: inout Encoding, _ second: inout Encoding?, maxLength: Int, strategy: TruncationStrategy,
    direction: TruncationDirection
) throws(TokenizerError) {
    if maxLength == 0 {
        first.truncate(to: 0, direction: direction)
        second?.truncate(to: 0, direction: direction)
        return
    }
    let total = first.count + (second?.count ?? 0)
    guard total > maxLength else { return }
    let toRemove = total - maxLength
    switch strategy {
    case .longestFirst:
        guard var other = second else {
            first.truncate(to: maxLength, direction: direction)
            return
        }
        var n1 = first.count
        var n2 = other.count
        let swapped = n1 > n2
        if swapped { swap(&n1, &n2) }
        n2 = n1 > maxLength ? n1 : max(n1, maxLength - n1)
        if n1 + n2 > maxLength {
            n1 = maxLength / 2
            n2 = n1 + maxLength % 2
        }
        if swapped { swap(&n1, &n2) }
        first.truncate(to: n1, direction: direction)
        other.truncate(to: n2, direction: direction)
        second = other
    case .onlyFirst, .onlySecond:
        if strategy == .onlySecond && second == nil {
            throw .truncationImpossible(reason: "the only_second strategy needs a pair of sequences")
        }
        let targetLength = strategy == .onlyFirst ? first.count : second!.count
        guard targetLength > toRemove else {
            throw .truncationImpossible(
                reason: "the sequence to truncate has \(targetLength) tokens but \(toRemove) must go")
        }
        if strategy == .onlyFirst {
            first.truncate(to: targetLength - toRemove, direction: direction)
        } else {
            second!.truncate(to: targetLength - toRemove, direction: direction)
        }
    }
}
