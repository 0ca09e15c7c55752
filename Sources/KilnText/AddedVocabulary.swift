/// A token added on top of the model's vocabulary (HF `AddedToken`), such as `[MASK]`.
public struct AddedToken: Sendable, Equatable {
    /// The token's text.
    public var content: String
    /// The token's id.
    public var id: Int32
    /// Special tokens (`[CLS]`, `[MASK]`, ...) are the ones a decoder may skip.
    public var special: Bool
    /// Match only when not part of a longer word.
    public var singleWord: Bool
    /// Absorb whitespace on the left of a match.
    public var leftStrip: Bool
    /// Absorb whitespace on the right of a match.
    public var rightStrip: Bool
    /// Match in the normalized text (true) or in the original text, before normalization (false).
    public var normalized: Bool

    /// Creates an added token.
    /// - Parameters:
    ///   - content: the token's text.
    ///   - id: the token's id.
    ///   - special: whether it is a special token.
    ///   - singleWord: match only as a whole word.
    ///   - leftStrip: absorb whitespace to the left.
    ///   - rightStrip: absorb whitespace to the right.
    ///   - normalized: match after normalization (HF's default is `!special`).
    public init(
        content: String, id: Int32, special: Bool, singleWord: Bool = false, leftStrip: Bool = false,
        rightStrip: Bool = false, normalized: Bool? = nil
    ) {
        self.content = content
        self.id = id
        self.special = special
        self.singleWord = singleWord
        self.leftStrip = leftStrip
        self.rightStrip = rightStrip
        self.normalized = normalized ?? !special
    }
}

/// Finds added tokens in text, as HF's `AddedVocabulary::find_matches` (Aho-Corasick, leftmost-longest).
struct AddedTokenMatcher: Sendable {
    private struct Pattern: Sendable {
        var scalars: [Unicode.Scalar]
        var token: AddedToken
    }

    /// Patterns by first scalar, longest first.
    private let patternsByFirstScalar: [UInt32: [Pattern]]

    var isEmpty: Bool { patternsByFirstScalar.isEmpty }

    /// - Parameters:
    ///   - tokens: the tokens this matcher finds.
    ///   - normalize: how each token's content is spelled in the text it is matched against.
    init(tokens: [AddedToken], normalize: (String) -> [Unicode.Scalar]) {
        var table: [UInt32: [Pattern]] = [:]
        for token in tokens {
            let scalars = normalize(token.content)
            guard let first = scalars.first else { continue }
            table[first.value, default: []].append(Pattern(scalars: scalars, token: token))
        }
        for key in table.keys {
            // Longest first; among equal lengths, the first added wins (Aho-Corasick pattern order).
            table[key] = table[key]!.enumerated().sorted {
                $0.element.scalars.count != $1.element.scalars.count
                    ? $0.element.scalars.count > $1.element.scalars.count : $0.offset < $1.offset
            }.map(\.element)
        }
        patternsByFirstScalar = table
    }

    /// A piece of text: either plain text to tokenize further, or a matched added token.
    struct Piece {
        var range: Range<Int>
        var token: AddedToken?
    }

    /// Splits `text` into plain pieces and added-token pieces, covering it without gaps.
    func split(_ text: ArraySlice<Unicode.Scalar>) -> [Piece] {
        let base = text.startIndex
        let count = text.count
        if count == 0 { return [Piece(range: 0..<0, token: nil)] }
        if isEmpty { return [Piece(range: 0..<count, token: nil)] }
        var pieces: [Piece] = []
        var startOffset = 0
        var position = 0
        while position < count {
            guard let candidates = patternsByFirstScalar[text[base + position].value],
                let pattern = candidates.first(where: { matches($0.scalars, text, at: position) })
            else {
                position += 1
                continue
            }
            var start = position
            var stop = position + pattern.scalars.count
            let token = pattern.token
            if token.singleWord {
                let startSpace = start == 0 || !isWordCharacter(text[base + start - 1])
                let stopSpace = stop == count || !isWordCharacter(text[base + stop])
                if !startSpace || !stopSpace {
                    // Discarded, but the matcher still resumes after it (non-overlapping search).
                    position = stop
                    continue
                }
            }
            if token.leftStrip {
                var newStart = start
                while newStart > 0, text[base + newStart - 1].properties.isWhitespace { newStart -= 1 }
                start = max(newStart, startOffset)
            }
            if token.rightStrip {
                while stop < count, text[base + stop].properties.isWhitespace { stop += 1 }
            }
            if startOffset < start { pieces.append(Piece(range: startOffset..<start, token: nil)) }
            pieces.append(Piece(range: start..<stop, token: token))
            startOffset = stop
            position = stop
        }
        if startOffset != count { pieces.append(Piece(range: startOffset..<count, token: nil)) }
        return pieces
    }

    @inline(__always)
    private func matches(_ pattern: [Unicode.Scalar], _ text: ArraySlice<Unicode.Scalar>, at position: Int) -> Bool {
        let base = text.startIndex
        guard position + pattern.count <= text.count else { return false }
        for index in 0..<pattern.count where text[base + position + index] != pattern[index] { return false }
        return true
    }

    /// The regex `\w` class HF uses for `single_word` checks.
    private func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        switch properties.generalCategory {
        case .decimalNumber, .connectorPunctuation, .nonspacingMark, .spacingMark, .enclosingMark:
            return true
        default:
            return properties.isAlphabetic || properties.isJoinControl
        }
    }
}
