import KilnCore
import KilnKernels
import Testing

/// The embedding layer against Gather + Add + LayerNormalization reference kernels.
/// Tolerance: relative max error ≤ 1e-4 (fp32).
@Suite struct EmbeddingKernelTests {
    typealias Support = CPUKernelTestSupport

    @Test("gather word + position + token type, then LayerNorm (≤ 1e-4)", arguments: [32, 64, 384], [[1], [5, 17], [64, 1, 7, 33]])
    func embeddingsMatchReference(hiddenSize: Int, sequenceLengths: [Int]) throws {
        var random = Support.Random(seed: UInt64(hiddenSize + sequenceLengths.count))
        let vocabularySize = 50, maxPositions = 64, typeVocabularySize = 2
        let words = random.floats(vocabularySize * hiddenSize)
        let positions = random.floats(maxPositions * hiddenSize)
        let types = random.floats(typeVocabularySize * hiddenSize)
        let gamma = random.floats(hiddenSize, 0.5, 1.5)
        let beta = random.floats(hiddenSize)
        var offsets = [0]
        for length in sequenceLengths { offsets.append(offsets.last! + length) }
        let tokenCount = offsets.last!
        let inputIds = (0..<tokenCount).map { _ in Int64(random.next() % UInt64(vocabularySize)) }
        let tokenTypeIds = (0..<tokenCount).map { _ in Int64(random.next() % 2) }
        var positionIds = [Int64](repeating: 0, count: tokenCount)
        offsets.withUnsafeBufferPointer { offsets in
            positionIds.withUnsafeMutableBufferPointer { EmbeddingKernel.packedPositionIds(sequenceOffsets: offsets, into: $0) }
        }
        #expect(positionIds.prefix(sequenceLengths[0]) == ArraySlice((0..<Int64(sequenceLengths[0])).map { $0 }))

        var output = [Float](repeating: 0, count: tokenCount * hiddenSize)
        try words.withUnsafeBufferPointer { words in
            try positions.withUnsafeBufferPointer { positions in
                try types.withUnsafeBufferPointer { types in
                    try gamma.withUnsafeBufferPointer { gamma in
                        try beta.withUnsafeBufferPointer { beta in
                            let tables = try EmbeddingTables(
                                wordEmbeddings: words, positionEmbeddings: positions, tokenTypeEmbeddings: types,
                                gamma: gamma, beta: beta, epsilon: 1e-12, hiddenSize: hiddenSize)
                            try inputIds.withUnsafeBufferPointer { ids in
                                try tokenTypeIds.withUnsafeBufferPointer { typeIds in
                                    try positionIds.withUnsafeBufferPointer { positionIds in
                                        try EmbeddingKernel.run(inputIds: ids, tokenTypeIds: typeIds, positionIds: positionIds, tables: tables, output: &output)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        func gather(_ table: [Float], rows: Int, _ ids: [Int64]) throws -> Tensor {
            try Support.reference("Gather", [try Tensor(floats: table, shape: [rows, hiddenSize]), try Tensor(ints: ids, shape: [tokenCount])], opset: 13)
        }
        let summed = try Support.reference(
            "Add", [try Support.reference("Add", [try gather(words, rows: vocabularySize, inputIds), try gather(positions, rows: maxPositions, positionIds)]),
                    try gather(types, rows: typeVocabularySize, tokenTypeIds)])
        let expected = try Support.reference(
            "LayerNormalization", [summed, try Tensor(floats: gamma, shape: [hiddenSize]), try Tensor(floats: beta, shape: [hiddenSize])],
            attributes: ["epsilon": .float(1e-12)], opset: 17)
        #expect(Support.relativeMaxError(output, expected.floats) <= 1e-4)
    }

    @Test("an out-of-range id is an error, not a read past the table")
    func outOfRangeIdThrows() throws {
        let table = [Float](repeating: 1, count: 4 * 32)
        let ones = [Float](repeating: 1, count: 32)
        var output = [Float](repeating: 0, count: 32)
        try table.withUnsafeBufferPointer { table in
            try ones.withUnsafeBufferPointer { ones in
                let tables = try EmbeddingTables(wordEmbeddings: table, positionEmbeddings: table, tokenTypeEmbeddings: nil,
                                                 gamma: ones, beta: ones, epsilon: 1e-12, hiddenSize: 32)
                let bad: [Int64] = [4]
                let zero: [Int64] = [0]
                #expect(throws: KilnError.self) {
                    try bad.withUnsafeBufferPointer { bad in
                        try zero.withUnsafeBufferPointer { zero in
                            try EmbeddingKernel.run(inputIds: bad, tokenTypeIds: nil, positionIds: zero, tables: tables, output: &output)
                        }
                    }
                }
            }
        }
    }
}
