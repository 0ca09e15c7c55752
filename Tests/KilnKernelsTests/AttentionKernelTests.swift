import Foundation
import KilnCore
import KilnKernels
import Testing

/// Multi-head attention against a direct (double precision) implementation of
/// `softmax(Q·Kᵀ·scale + mask)·V`, and padding-free against padded-with-mask.
/// Tolerance: relative max error ≤ 1e-4 vs the direct implementation; ≤ 1e-5 between packed and
/// padded on the real tokens.
@Suite struct AttentionKernelTests {
    typealias Support = CPUKernelTestSupport

    /// Direct attention for one sequence of `length` tokens; rows at `rowStride`, mask per key.
    static func directAttention(
        query: [Float], key: [Float], value: [Float], rowStride: Int, firstToken: Int, length: Int,
        hiddenSize: Int, numHeads: Int, keyMask: [Float]?
    ) -> [Float] {
        let headSize = hiddenSize / numHeads
        let scale = 1 / Double(headSize).squareRoot()
        var output = [Float](repeating: 0, count: length * hiddenSize)
        for head in 0..<numHeads {
            for row in 0..<length {
                var scores = [Double](repeating: 0, count: length)
                for column in 0..<length {
                    var dot = 0.0
                    for d in 0..<headSize {
                        dot += Double(query[(firstToken + row) * rowStride + head * headSize + d]) * Double(key[(firstToken + column) * rowStride + head * headSize + d])
                    }
                    scores[column] = dot * scale + Double(keyMask?[column] ?? 0)
                }
                let maximum = scores.max()!
                let exps = scores.map { Foundation.exp($0 - maximum) }
                let sum = exps.reduce(0, +)
                for d in 0..<headSize {
                    var context = 0.0
                    for column in 0..<length { context += exps[column] / sum * Double(value[(firstToken + column) * rowStride + head * headSize + d]) }
                    output[row * hiddenSize + head * headSize + d] = Float(context)
                }
            }
        }
        return output
    }

    static let configurations: [(hiddenSize: Int, numHeads: Int)] = [(32, 2), (64, 4), (384, 12), (32, 4)]

    @Test("packed (padding-free) attention matches the direct implementation (≤ 1e-4)", arguments: configurations)
    func packedMatchesDirect(hiddenSize: Int, numHeads: Int) throws {
        let sequenceLengths = [1, 5, 17, 64, 5]
        var offsets = [0]
        for length in sequenceLengths { offsets.append(offsets.last! + length) }
        let tokens = offsets.last!
        var random = Support.Random(seed: UInt64(hiddenSize * numHeads))
        // A fused QKV GEMM output: [tokens, 3·hiddenSize].
        let qkv = random.floats(tokens * 3 * hiddenSize, -2, 2)
        let kernel = try AttentionKernel(numHeads: numHeads, hiddenSize: hiddenSize)
        var scratch = [Float](repeating: 0, count: AttentionKernel.scratchCount(maxSequenceLength: 64))
        var output = [Float](repeating: 0, count: tokens * hiddenSize)
        try qkv.withUnsafeBufferPointer { qkv in
            let base = qkv.baseAddress!
            try offsets.withUnsafeBufferPointer { offsets in
                try scratch.withUnsafeMutableBufferPointer { scratch in
                    try kernel.runPacked(
                        query: base, key: base + hiddenSize, value: base + 2 * hiddenSize, inputRowStride: 3 * hiddenSize,
                        sequenceOffsets: offsets, output: &output, outputRowStride: hiddenSize, scratch: scratch)
                }
            }
        }
        let query = qkv, key = Array(qkv.dropFirst(hiddenSize)) + [Float](repeating: 0, count: hiddenSize), value = Array(qkv.dropFirst(2 * hiddenSize)) + [Float](repeating: 0, count: 2 * hiddenSize)
        for (sequence, length) in sequenceLengths.enumerated() {
            let expected = Self.directAttention(
                query: query, key: key, value: value, rowStride: 3 * hiddenSize, firstToken: offsets[sequence], length: length,
                hiddenSize: hiddenSize, numHeads: numHeads, keyMask: nil)
            let actual = Array(output[offsets[sequence] * hiddenSize..<offsets[sequence + 1] * hiddenSize])
            #expect(Support.relativeMaxError(actual, expected) <= 1e-4, "sequence \(sequence) (length \(length))")
        }
    }

    @Test("padded attention with a mask matches the direct implementation and, on real tokens, the packed one",
          arguments: configurations, [[1, 5, 17, 64], [5, 5], [17, 1, 3]])
    func paddedEqualsPacked(configuration: (hiddenSize: Int, numHeads: Int), sequenceLengths: [Int]) throws {
        let (hiddenSize, numHeads) = configuration
        let batchSize = sequenceLengths.count
        let sequenceLength = sequenceLengths.max()!
        var random = Support.Random(seed: UInt64(hiddenSize + 100 * batchSize))
        // Padded tensors [B, S, H]; padding rows hold garbage that the mask must hide.
        let query = random.floats(batchSize * sequenceLength * hiddenSize, -2, 2)
        let key = random.floats(batchSize * sequenceLength * hiddenSize, -2, 2)
        let value = random.floats(batchSize * sequenceLength * hiddenSize, -2, 2)
        var mask = [Float](repeating: 0, count: batchSize * sequenceLength)
        for (batch, length) in sequenceLengths.enumerated() {
            for position in length..<sequenceLength { mask[batch * sequenceLength + position] = -10_000 }
        }
        let kernel = try AttentionKernel(numHeads: numHeads, hiddenSize: hiddenSize)
        var scratch = [Float](repeating: 0, count: AttentionKernel.scratchCount(maxSequenceLength: sequenceLength))
        var padded = [Float](repeating: 0, count: query.count)
        try mask.withUnsafeBufferPointer { mask in
            try scratch.withUnsafeMutableBufferPointer { scratch in
                try kernel.runPadded(
                    query: query, key: key, value: value, inputRowStride: hiddenSize, batchSize: batchSize,
                    sequenceLength: sequenceLength, mask: .perKey(mask.baseAddress!, sequenceLength: sequenceLength),
                    output: &padded, outputRowStride: hiddenSize, scratch: scratch)
            }
        }
        // Pack the real tokens and run padding-free.
        var packedQuery: [Float] = [], packedKey: [Float] = [], packedValue: [Float] = []
        var offsets = [0]
        for (batch, length) in sequenceLengths.enumerated() {
            let rows = batch * sequenceLength * hiddenSize..<(batch * sequenceLength + length) * hiddenSize
            packedQuery += query[rows]
            packedKey += key[rows]
            packedValue += value[rows]
            offsets.append(offsets.last! + length)
        }
        var packed = [Float](repeating: 0, count: packedQuery.count)
        try offsets.withUnsafeBufferPointer { offsets in
            try scratch.withUnsafeMutableBufferPointer { scratch in
                try kernel.runPacked(
                    query: packedQuery, key: packedKey, value: packedValue, inputRowStride: hiddenSize,
                    sequenceOffsets: offsets, output: &packed, outputRowStride: hiddenSize, scratch: scratch)
            }
        }
        for (batch, length) in sequenceLengths.enumerated() {
            let paddedRows = Array(padded[batch * sequenceLength * hiddenSize..<(batch * sequenceLength + length) * hiddenSize])
            let packedRows = Array(packed[offsets[batch] * hiddenSize..<offsets[batch + 1] * hiddenSize])
            #expect(Support.relativeMaxError(paddedRows, packedRows) <= 1e-5, "sequence \(batch)")
            let direct = Self.directAttention(
                query: query, key: key, value: value, rowStride: hiddenSize, firstToken: batch * sequenceLength, length: sequenceLength,
                hiddenSize: hiddenSize, numHeads: numHeads, keyMask: Array(mask[batch * sequenceLength..<(batch + 1) * sequenceLength]))
            #expect(Support.relativeMaxError(Array(padded[batch * sequenceLength * hiddenSize..<(batch + 1) * sequenceLength * hiddenSize]), direct) <= 1e-4)
        }
    }

    @Test("too little scratch is an error")
    func scratchIsChecked() throws {
        let kernel = try AttentionKernel(numHeads: 2, hiddenSize: 32)
        let data = [Float](repeating: 0, count: 64 * 32)
        let offsets = [0, 64]
        var scratch = [Float](repeating: 0, count: 10)
        var output = data
        #expect(throws: KilnError.self) {
            try offsets.withUnsafeBufferPointer { offsets in
                try scratch.withUnsafeMutableBufferPointer { scratch in
                    try kernel.runPacked(query: data, key: data, value: data, inputRowStride: 32, sequenceOffsets: offsets,
                                         output: &output, outputRowStride: 32, scratch: scratch)
                }
            }
        }
        #expect(throws: KilnError.self) { try AttentionKernel(numHeads: 5, hiddenSize: 32) }
    }
}
