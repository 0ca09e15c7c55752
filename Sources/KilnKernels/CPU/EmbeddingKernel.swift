import KilnCore

/// The tables of BERT's embedding layer, borrowed from the caller (plan weights); the caller
/// keeps them alive while kernels run.
public struct EmbeddingTables: @unchecked Sendable {
    /// `[vocabularySize, hiddenSize]`.
    public let wordEmbeddings: UnsafeBufferPointer<Float>
    /// `[maxPositions, hiddenSize]`.
    public let positionEmbeddings: UnsafeBufferPointer<Float>
    /// `[typeVocabularySize, hiddenSize]`, or nil (models without segment embeddings).
    public let tokenTypeEmbeddings: UnsafeBufferPointer<Float>?
    /// LayerNorm scale, `hiddenSize`.
    public let gamma: UnsafeBufferPointer<Float>
    /// LayerNorm shift, `hiddenSize`.
    public let beta: UnsafeBufferPointer<Float>
    /// LayerNorm epsilon (BERT: 1e-12).
    public let epsilon: Float
    /// `H`.
    public let hiddenSize: Int

    /// Bundles the tables; sizes are checked against `hiddenSize`.
    public init(
        wordEmbeddings: UnsafeBufferPointer<Float>, positionEmbeddings: UnsafeBufferPointer<Float>,
        tokenTypeEmbeddings: UnsafeBufferPointer<Float>?, gamma: UnsafeBufferPointer<Float>,
        beta: UnsafeBufferPointer<Float>, epsilon: Float, hiddenSize: Int
    ) throws {
        guard hiddenSize > 0,
              wordEmbeddings.count % hiddenSize == 0, positionEmbeddings.count % hiddenSize == 0,
              (tokenTypeEmbeddings?.count ?? 0) % hiddenSize == 0,
              gamma.count == hiddenSize, beta.count == hiddenSize
        else {
            throw KilnError.invalidInput("embedding tables do not match hiddenSize \(hiddenSize)")
        }
        self.wordEmbeddings = wordEmbeddings
        self.positionEmbeddings = positionEmbeddings
        self.tokenTypeEmbeddings = tokenTypeEmbeddings
        self.gamma = gamma
        self.beta = beta
        self.epsilon = epsilon
        self.hiddenSize = hiddenSize
    }

    /// Rows of the word table.
    public var vocabularySize: Int { wordEmbeddings.count / hiddenSize }
    /// Rows of the position table.
    public var maxPositions: Int { positionEmbeddings.count / hiddenSize }
    /// Rows of the token-type table (0 without one).
    public var typeVocabularySize: Int { (tokenTypeEmbeddings?.count ?? 0) / hiddenSize }
}

/// BERT's embedding layer: `LayerNorm(word[inputIds] + position[positionIds] + tokenType[tokenTypeIds])`
/// for a packed batch of `tokenCount` tokens.
public enum EmbeddingKernel {
    /// Gathers, sums and normalizes one row per token.
    /// - Parameters:
    ///   - inputIds: `tokenCount` word ids.
    ///   - tokenTypeIds: `tokenCount` segment ids, or nil for segment 0 (or no table).
    ///   - positionIds: `tokenCount` positions (for a packed batch: 0..<length per sequence,
    ///     see ``packedPositionIds(sequenceOffsets:into:)``).
    ///   - tables: the embedding and LayerNorm weights.
    ///   - output: `tokenCount × hiddenSize` floats.
    ///   - width: parallel chunks.
    ///   - isa: baseline Swift or AVX2 kernels (default: the best this CPU runs).
    /// - Throws: ``KilnError/invalidInput(_:)`` when an id is outside its table (checked before
    ///   any row is written).
    public static func run(
        inputIds: UnsafeBufferPointer<Int64>, tokenTypeIds: UnsafeBufferPointer<Int64>?,
        positionIds: UnsafeBufferPointer<Int64>, tables: EmbeddingTables, output: UnsafeMutablePointer<Float>,
        width: Int = CPUThreading.threadCount, isa: KernelISA = .detected
    ) throws {
        let tokenCount = inputIds.count
        guard positionIds.count == tokenCount, tokenTypeIds == nil || tokenTypeIds!.count == tokenCount else {
            throw KilnError.invalidInput("inputIds, positionIds and tokenTypeIds must have one entry per token (\(tokenCount))")
        }
        try validate(inputIds, below: tables.vocabularySize, name: "input id")
        try validate(positionIds, below: tables.maxPositions, name: "position id")
        if let tokenTypeIds { try validate(tokenTypeIds, below: max(tables.typeVocabularySize, 1), name: "token type id") }
        let hiddenSize = tables.hiddenSize
        CPUThreading.parallelFor(tokenCount, width: width, minimumChunk: max(1, 16384 / hiddenSize)) { range in
            for token in range {
                let row = output + token * hiddenSize
                let word = tables.wordEmbeddings.baseAddress! + Int(inputIds[token]) * hiddenSize
                let position = tables.positionEmbeddings.baseAddress! + Int(positionIds[token]) * hiddenSize
                let tokenType = tables.tokenTypeEmbeddings.map { $0.baseAddress! + Int(tokenTypeIds?[token] ?? 0) * hiddenSize }
                LayerNormKernel.addRows(word, position, tokenType, row, hiddenSize, isa: isa)
                LayerNormKernel.normalizeRow(row, tables.gamma.baseAddress!, tables.beta.baseAddress!, row, hiddenSize, tables.epsilon, isa: isa)
            }
        }
    }

    /// Writes each token's position within its sequence for a packed batch.
    /// - Parameters:
    ///   - sequenceOffsets: `numSequences + 1` token offsets (`[0, len0, len0+len1, ...]`).
    ///   - positionIds: `sequenceOffsets.last` entries.
    public static func packedPositionIds(sequenceOffsets: UnsafeBufferPointer<Int>, into positionIds: UnsafeMutableBufferPointer<Int64>) {
        for sequence in 0..<max(0, sequenceOffsets.count - 1) {
            for token in sequenceOffsets[sequence]..<sequenceOffsets[sequence + 1] {
                positionIds[token] = Int64(token - sequenceOffsets[sequence])
            }
        }
    }

    private static func validate(_ ids: UnsafeBufferPointer<Int64>, below limit: Int, name: String) throws {
        for (index, id) in ids.enumerated() where id < 0 || id >= Int64(limit) {
            throw KilnError.invalidInput("\(name) \(id) at token \(index) is outside 0..<\(limit)")
        }
    }
}
