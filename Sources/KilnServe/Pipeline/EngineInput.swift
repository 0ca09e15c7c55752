import KilnCore

/// One request's rows for the engine: `input_ids`, `attention_mask` and `token_type_ids`, each
/// `[rows, length]` row-major. A `/v1/parse` text is one row; a v2 request may carry several.
public struct EngineInput: Sendable, Equatable {
    /// How many rows (utterances).
    public var rows: Int
    /// Tokens per row.
    public var length: Int
    /// `input_ids`, row-major.
    public var inputIds: [Int64]
    /// `attention_mask`, row-major.
    public var attentionMask: [Int64]
    /// `token_type_ids`, row-major.
    public var tokenTypeIds: [Int64]

    /// Creates an input; the three arrays must each hold `rows * length` values.
    public init(rows: Int, length: Int, inputIds: [Int64], attentionMask: [Int64], tokenTypeIds: [Int64]) {
        self.rows = rows
        self.length = length
        self.inputIds = inputIds
        self.attentionMask = attentionMask
        self.tokenTypeIds = tokenTypeIds
    }

    /// Real tokens over all rows (attention mask set), the padding inside a multi-row request not
    /// counted: what the request costs a padding-free engine call.
    public var tokens: Int { attentionMask.reduce(0) { $0 + ($1 != 0 ? 1 : 0) } }

    /// Names of the three inputs, as the model declares them.
    public static let inputIdsName = "input_ids"
    public static let attentionMaskName = "attention_mask"
    public static let tokenTypeIdsName = "token_type_ids"
}
