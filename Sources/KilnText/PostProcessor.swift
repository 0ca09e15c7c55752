/// Adds special tokens around the encoded sequences (HF `TemplateProcessing` / `BertProcessing`).
public struct PostProcessor: Sendable, Equatable {
    /// One element of a template.
    public enum Piece: Sendable, Equatable {
        /// The first (`A`, index 0) or second (`B`, index 1) sequence, with the type id it gets.
        case sequence(index: Int, typeId: Int32)
        /// A special token (by its name in `specialTokens`), with its type id.
        case specialToken(name: String, typeId: Int32)
    }

    /// A special token's ids and token strings (usually one of each).
    public struct SpecialToken: Sendable, Equatable {
        /// The token ids.
        public var ids: [Int32]
        /// The token strings.
        public var tokens: [String]

        /// Creates a special token entry.
        /// - Parameters:
        ///   - ids: the token ids.
        ///   - tokens: the token strings, one per id.
        public init(ids: [Int32], tokens: [String]) {
            self.ids = ids
            self.tokens = tokens
        }
    }

    /// The template for a single sequence, e.g. `[CLS] $A [SEP]`.
    public var single: [Piece]
    /// The template for a pair, e.g. `[CLS] $A [SEP] $B:1 [SEP]:1`.
    public var pair: [Piece]
    /// The special tokens the templates name.
    public var specialTokens: [String: SpecialToken]

    /// Creates a template post-processor.
    /// - Parameters:
    ///   - single: the template for one sequence.
    ///   - pair: the template for a pair.
    ///   - specialTokens: the special tokens the templates name.
    public init(single: [Piece], pair: [Piece], specialTokens: [String: SpecialToken]) {
        self.single = single
        self.pair = pair
        self.specialTokens = specialTokens
    }

    /// The BERT layout: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` with type ids 0, 0 and 1.
    /// - Parameters:
    ///   - cls: the classification token and its id.
    ///   - sep: the separator token and its id.
    /// - Returns: the equivalent of HF's `BertProcessing`.
    public static func bert(cls: (token: String, id: Int32), sep: (token: String, id: Int32)) -> PostProcessor {
        PostProcessor(
            single: [.specialToken(name: cls.token, typeId: 0), .sequence(index: 0, typeId: 0),
                .specialToken(name: sep.token, typeId: 0)],
            pair: [.specialToken(name: cls.token, typeId: 0), .sequence(index: 0, typeId: 0),
                .specialToken(name: sep.token, typeId: 0), .sequence(index: 1, typeId: 1),
                .specialToken(name: sep.token, typeId: 1)],
            specialTokens: [
                cls.token: SpecialToken(ids: [cls.id], tokens: [cls.token]),
                sep.token: SpecialToken(ids: [sep.id], tokens: [sep.token]),
            ])
    }

    /// How many special tokens the template adds.
    /// - Parameter isPair: whether the input is a pair.
    /// - Returns: the number of tokens that are not from the sequences.
    public func addedTokenCount(isPair: Bool) -> Int {
        (isPair ? pair : single).reduce(0) { count, piece in
            if case .specialToken(let name, _) = piece { return count + (specialTokens[name]?.ids.count ?? 0) }
            return count
        }
    }

    /// Assembles the final encoding from the sequences' encodings.
    func process(_ first: Encoding, _ second: Encoding?, addSpecialTokens: Bool) -> Encoding {
        let template = second == nil ? single : pair
        var result = Encoding()
        result.reserveCapacity(first.count + (second?.count ?? 0) + 4)
        for piece in template {
            switch piece {
            case .sequence(let index, let typeId):
                guard var sequence = index == 0 ? first : second else { continue }
                sequence.typeIds = Array(repeating: typeId, count: sequence.count)
                result.append(contentsOf: sequence)
            case .specialToken(let name, let typeId):
                guard addSpecialTokens, let special = specialTokens[name] else { continue }
                for (id, token) in zip(special.ids, special.tokens) {
                    result.append(
                        id: id, token: token, offsets: 0..<0, wordId: nil, typeId: typeId, sequenceId: nil,
                        special: true)
                }
            }
        }
        return result
    }
}
