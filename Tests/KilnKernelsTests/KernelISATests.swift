import KilnCore
import KilnKernels
import Testing

/// The AVX2 kernels (CKilnSIMD) and the portable Swift kernels, each against the reference
/// kernels and against each other, on odd sizes (tails of 1-7 floats). The other kernel tests
/// run whichever level this CPU detects; these force each level explicitly. AVX2 cases skip
/// cleanly on a CPU without AVX2+FMA. Tolerances: ≤ 1e-4 vs reference (relative max error),
/// ≤ 2e-6 between the two levels (same formulas, different rounding of FMA vs mul+add).
@Suite struct KernelISATests {
    typealias Support = CPUKernelTestSupport
    static let levels = KernelISA.allCases.filter { KernelISA.isSupported($0) }
    static let sizes = [1, 3, 8, 13, 32, 33, 384, 391]

    @Test("dispatch picks AVX2 exactly when cpuid reports AVX2 and FMA")
    func detection() {
        let hasAVX2 = CPUFeatures.detected.flags.isSuperset(of: ["avx2", "fma"])
        #if arch(x86_64)
        #expect(KernelISA.isSupported(.avx2) == hasAVX2)
        #else
        #expect(!KernelISA.isSupported(.avx2))
        #endif
        #expect(KernelISA.isSupported(KernelISA.detected))
    }

    @Test("LayerNorm and SkipLayerNorm: each level matches the reference, levels agree", arguments: sizes)
    func layerNorms(hiddenSize: Int) throws {
        var random = Support.Random(seed: UInt64(hiddenSize))
        let rows = 5
        let input = random.floats(rows * hiddenSize, -3, 5)
        let skip = random.floats(rows * hiddenSize, -2, 2)
        let bias = random.floats(hiddenSize)
        let gamma = random.floats(hiddenSize, 0.5, 1.5)
        let beta = random.floats(hiddenSize)
        let added = try Support.reference("Add", [try Tensor(floats: input, shape: [rows, hiddenSize]), try Tensor(floats: skip, shape: [rows, hiddenSize])])
        let biased = try Support.reference("Add", [added, try Tensor(floats: bias, shape: [hiddenSize])])
        let norms = [try Tensor(floats: gamma, shape: [hiddenSize]), try Tensor(floats: beta, shape: [hiddenSize])]
        let expectedPlain = try Support.reference(
            "LayerNormalization", [try Tensor(floats: input, shape: [rows, hiddenSize])] + norms, attributes: ["epsilon": .float(1e-5)], opset: 17)
        let expectedSkip = try Support.reference("LayerNormalization", [biased] + norms, attributes: ["epsilon": .float(1e-5)], opset: 17)
        var results: [[Float]] = []
        for isa in Self.levels {
            var plain = [Float](repeating: 0, count: input.count)
            LayerNormKernel.run(input: input, gamma: gamma, beta: beta, output: &plain, rows: rows, hiddenSize: hiddenSize, epsilon: 1e-5, isa: isa)
            var normalized = [Float](repeating: 0, count: input.count)
            var sum = [Float](repeating: 0, count: input.count)
            LayerNormKernel.runSkip(
                input: input, skip: skip, bias: bias, gamma: gamma, beta: beta, output: &normalized, sumOutput: &sum,
                rows: rows, hiddenSize: hiddenSize, epsilon: 1e-5, isa: isa)
            #expect(Support.relativeMaxError(plain, expectedPlain.floats) <= 1e-4, "\(isa)")
            #expect(Support.relativeMaxError(normalized, expectedSkip.floats) <= 1e-4, "\(isa)")
            #expect(Support.relativeMaxError(sum, biased.floats) <= 1e-6, "\(isa)")
            results.append(plain + normalized)
        }
        if results.count == 2 { #expect(Support.relativeMaxError(results[1], results[0]) <= 2e-6) }
    }

    @Test("softmax: each level matches the reference (incl. -inf and all-masked rows), levels agree", arguments: sizes)
    func softmax(columns: Int) throws {
        var random = Support.Random(seed: UInt64(columns + 100))
        var input = random.floats(4 * columns, -30, 30)
        input[0] = -.infinity  // a masked key
        for column in 0..<columns { input[3 * columns + column] = -.infinity }  // an all-masked row: uniform
        let expected = try Support.reference("Softmax", [try Tensor(floats: Array(input[0..<(3 * columns)]), shape: [3, columns])], opset: 13)
        var results: [[Float]] = []
        for isa in Self.levels {
            var output = [Float](repeating: 0, count: input.count)
            SoftmaxKernel.run(input: input, output: &output, rows: 4, columns: columns, isa: isa)
            #expect(Support.relativeMaxError(Array(output[0..<(3 * columns)]), expected.floats) <= 1e-4, "\(isa)")
            let uniform = Array(output[(3 * columns)...])
            #expect(uniform.allSatisfy { abs($0 - 1 / Float(columns)) <= 1e-6 }, "\(isa): all-masked row \(uniform.prefix(4))")
            results.append(output)
        }
        if results.count == 2 { #expect(Support.relativeMaxError(results[1], results[0]) <= 2e-6) }
    }

    @Test("GELU erf and tanh: each level matches the reference, levels agree", arguments: sizes)
    func gelu(count: Int) throws {
        var random = Support.Random(seed: UInt64(count + 7))
        let input = random.floats(count * 3, -9, 9)
        for approximation in [GeluKernel.Approximation.none, .tanh] {
            let expected = try Support.reference(
                "Gelu", [try Tensor(floats: input, shape: [input.count])], attributes: ["approximate": .string(approximation.rawValue)])
            var results: [[Float]] = []
            for isa in Self.levels {
                var output = [Float](repeating: 0, count: input.count)
                GeluKernel.run(input: input, output: &output, count: input.count, approximation: approximation, isa: isa)
                #expect(Support.relativeMaxError(output, expected.floats) <= 1e-4, "\(isa) \(approximation)")
                results.append(output)
            }
            if results.count == 2 { #expect(Support.relativeMaxError(results[1], results[0]) <= 2e-6, "\(approximation)") }
        }
    }

    @Test("attention: each level matches the direct implementation, padded with a per-row mask and packed from strided QKV",
          arguments: [(32, 2), (40, 5), (384, 12), (96, 1)])
    func attention(hiddenSize: Int, numHeads: Int) throws {
        let (batch, sequence) = (3, 13)
        var random = Support.Random(seed: UInt64(hiddenSize * 3 + numHeads))
        let qkv = random.floats(batch * sequence * 3 * hiddenSize, -2, 2)
        var keyMask = [Float](repeating: 0, count: batch * sequence)
        for key in 9..<sequence { keyMask[2 * sequence + key] = -10_000 }  // the last sequence is padded from 9
        var results: [[Float]] = []
        for isa in Self.levels {
            let kernel = try AttentionKernel(numHeads: numHeads, hiddenSize: hiddenSize, isa: isa)
            var scratch = [Float](repeating: 0, count: AttentionKernel.scratchCount(maxSequenceLength: sequence))
            var output = [Float](repeating: 0, count: batch * sequence * hiddenSize)
            try qkv.withUnsafeBufferPointer { qkv in
                try keyMask.withUnsafeBufferPointer { mask in
                    try scratch.withUnsafeMutableBufferPointer { scratch in
                        let base = qkv.baseAddress!
                        try kernel.runPadded(
                            query: base, key: base + hiddenSize, value: base + 2 * hiddenSize, inputRowStride: 3 * hiddenSize,
                            batchSize: batch, sequenceLength: sequence, mask: .perKey(mask.baseAddress!, sequenceLength: sequence),
                            output: &output, outputRowStride: hiddenSize, scratch: scratch)
                    }
                }
            }
            for sequenceIndex in 0..<batch {
                let expected = AttentionKernelTests.directAttention(
                    query: qkv, key: Array(qkv.dropFirst(hiddenSize)) + [Float](repeating: 0, count: hiddenSize),
                    value: Array(qkv.dropFirst(2 * hiddenSize)) + [Float](repeating: 0, count: 2 * hiddenSize),
                    rowStride: 3 * hiddenSize, firstToken: sequenceIndex * sequence, length: sequence, hiddenSize: hiddenSize,
                    numHeads: numHeads, keyMask: Array(keyMask[(sequenceIndex * sequence)..<((sequenceIndex + 1) * sequence)]))
                let actual = Array(output[(sequenceIndex * sequence * hiddenSize)..<((sequenceIndex + 1) * sequence * hiddenSize)])
                #expect(Support.relativeMaxError(actual, expected) <= 1e-4, "\(isa), sequence \(sequenceIndex)")
            }
            results.append(output)
        }
        if results.count == 2 { #expect(Support.relativeMaxError(results[1], results[0]) <= 1e-5) }
    }
}

/// Row gather and trailing-block broadcast Add (the embedding subgraph's standard ops) against
/// the reference Gather and Add: exact (they only move and add floats).
@Suite struct RowKernelTests {
    typealias Support = CPUKernelTestSupport

    @Test("gather rows equals Gather on axis 0, negative indices included; out-of-range is an error")
    func gather() throws {
        var random = Support.Random(seed: 3)
        let (rows, rowSize) = (11, 13)
        let table = random.floats(rows * rowSize)
        let indices: [Int64] = [0, 10, -1, 5, 5, -11, 3]
        var output = [Float](repeating: 0, count: indices.count * rowSize)
        try table.withUnsafeBufferPointer { table in
            try indices.withUnsafeBufferPointer { try RowKernels.gather(table: table.baseAddress!, rows: rows, rowSize: rowSize, indices: $0, output: &output) }
        }
        let expected = try Support.reference(
            "Gather", [try Tensor(floats: table, shape: [rows, rowSize]), try Tensor(ints: indices, shape: [indices.count])], opset: 13)
        #expect(output == expected.floats)
        let bad: [Int64] = [1, 11]
        #expect(throws: KilnError.self) {
            try table.withUnsafeBufferPointer { table in
                try bad.withUnsafeBufferPointer { try RowKernels.gather(table: table.baseAddress!, rows: rows, rowSize: rowSize, indices: $0, output: &output) }
            }
        }
    }

    @Test("broadcast add equals Add for [B, S, H] + [S, H] at each level", arguments: KernelISA.allCases.filter { KernelISA.isSupported($0) })
    func add(isa: KernelISA) throws {
        var random = Support.Random(seed: 5)
        let (batch, sequence, hidden) = (3, 7, 13)
        let input = random.floats(batch * sequence * hidden)
        let addend = random.floats(sequence * hidden)
        var output = [Float](repeating: 0, count: input.count)
        RowKernels.add(input: input, addend: addend, output: &output, count: input.count, addendCount: addend.count, isa: isa)
        let expected = try Support.reference(
            "Add", [try Tensor(floats: input, shape: [batch, sequence, hidden]), try Tensor(floats: addend, shape: [1, sequence, hidden])])
        #expect(output == expected.floats)
    }
}
