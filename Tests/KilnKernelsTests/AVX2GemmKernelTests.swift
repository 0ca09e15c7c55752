import KilnCore
@testable import KilnKernels
import Testing

/// Kiln's AVX2+FMA GEMM (`kiln_sgemm_avx2.c`) against the direct double-precision
/// `activation(A·W + bias)` of ``FusedMatMulKernelTests/direct(_:_:_:rows:inputSize:outputSize:activation:)``.
/// Tolerance: relative max error ≤ 1e-4 (``CPUKernelTestSupport/relativeMaxError(_:_:)``; fp32
/// accumulation over K ≤ 1536 terms of inputs in [-2, 2] × weights in [-0.3, 0.3] stays near 1e-6).
/// Every shape runs with 1 and 2 threads, and the two results must be bit-identical: threads
/// split whole tiles, so no element's reduction order depends on the thread count.
@Suite(.enabled(if: AVX2GemmKernel.isSupported, "needs AVX2 and FMA"))
struct AVX2GemmKernelTests {
    typealias Support = CPUKernelTestSupport

    /// Checks one shape, both thread counts; returns nothing, records expectations.
    func check(rows: Int, inputSize: Int, outputSize: Int, activation: GemmActivation = .none, bias hasBias: Bool = true,
               seed: UInt64 = 1) {
        var random = Support.Random(seed: seed &+ UInt64(rows * 1_000_003 + inputSize * 1009 + outputSize))
        let weights = random.floats(inputSize * outputSize, -0.3, 0.3)
        let bias = hasBias ? random.floats(outputSize) : nil
        let input = random.floats(rows * inputSize, -2, 2)
        let kernel = weights.withUnsafeBufferPointer { weightBuffer in
            (bias ?? []).withUnsafeBufferPointer { biasBuffer in
                AVX2GemmKernel(weights: weightBuffer, bias: hasBias ? biasBuffer : nil, inputSize: inputSize,
                               outputSize: outputSize, activation: activation)
            }
        }
        let expected = FusedMatMulKernelTests.direct(input, weights, bias, rows: rows, inputSize: inputSize,
                                                     outputSize: outputSize, activation: activation)
        var outputs: [[Float]] = []
        for threads in [1, 2] {
            // One spare row of NaN guard past the end: the kernel must not write past rows × N.
            var output = [Float](repeating: .nan, count: rows * outputSize + outputSize)
            output.withUnsafeMutableBufferPointer { out in
                kernel.run(input: input, rows: rows, output: out.baseAddress!, threads: threads)
            }
            #expect(output[(rows * outputSize)...].allSatisfy { $0.isNaN }, "wrote past Y: M=\(rows) N=\(outputSize)")
            outputs.append(Array(output[..<(rows * outputSize)]))
        }
        let label = "M=\(rows) K=\(inputSize) N=\(outputSize) \(activation) bias=\(hasBias)"
        #expect(Support.relativeMaxError(outputs[0], expected) <= 1e-4, "\(label)")
        #expect(outputs[0] == outputs[1], "1 vs 2 threads differ: \(label)")
    }

    @Test("row counts 1...512 (M edges of the 6-row tile, 144-row blocks, row split)",
          arguments: [1, 2, 5, 6, 7, 31, 32, 33, 512])
    func rowEdges(rows: Int) {
        check(rows: rows, inputSize: 384, outputSize: 130)
        check(rows: rows, inputSize: 384, outputSize: 17)  // 2 panels: 2 threads split rows
    }

    @Test("column counts (N edges of the 16-column panel)", arguments: [1, 7, 16, 17, 130, 384, 1152])
    func columnEdges(columns: Int) {
        check(rows: 7, inputSize: 384, outputSize: columns)
        check(rows: 33, inputSize: 64, outputSize: columns, bias: false)
    }

    @Test("reduction sizes (K blocks of ≤ 384: one, four equal, three unequal)", arguments: [1, 5, 384, 1000, 1536])
    func reductionSizes(inputSize: Int) {
        check(rows: 33, inputSize: inputSize, outputSize: 17)
        check(rows: 6, inputSize: inputSize, outputSize: 48, activation: .gelu)
    }

    @Test("every activation, with and without bias, over several K blocks and a partial panel",
          arguments: GemmActivation.allCases)
    func activations(activation: GemmActivation) {
        for hasBias in [true, false] {
            check(rows: 13, inputSize: 800, outputSize: 40, activation: activation, bias: hasBias)
            check(rows: 1, inputSize: 384, outputSize: 7, activation: activation, bias: hasBias)
        }
    }

    @Test("BERT shapes at batch 1 and a padding-free batch (M=37, 211)")
    func modelShapes() {
        check(rows: 37, inputSize: 384, outputSize: 1536, activation: .gelu)
        check(rows: 211, inputSize: 1536, outputSize: 384)
    }

    @Test("FusedMatMulKernel on .avx2 agrees with oneDNN (≤ 1e-5) and reports its packed panels")
    func fusedMatMulBackends() throws {
        var random = Support.Random(seed: 5)
        let (inputSize, outputSize, rows) = (96, 50, 19)
        let weights = random.floats(inputSize * outputSize, -0.3, 0.3)
        let bias = random.floats(outputSize)
        let input = random.floats(rows * inputSize, -2, 2)
        var outputs: [[Float]] = []
        for backend in GemmBackend.allCases {
            let kernel = try FusedMatMulKernel(weights: weights, bias: bias, inputSize: inputSize, outputSize: outputSize,
                                               activation: .gelu, backend: backend)
            #expect(kernel.backend == backend)
            var output = [Float](repeating: .nan, count: rows * outputSize)
            try kernel.run(input: input, rows: rows, output: &output, stream: try CPUStream())
            outputs.append(output)
            if backend == .avx2 {
                #expect(try kernel.implementationName(rows: rows) == "kiln:avx2_sgemm")
                #expect(kernel.packedWeightsSize == 4 * inputSize * 64)  // 4 panels of 16 columns
                #expect(kernel.packedWeightBuffers.map(\.count) == [kernel.packedWeightsSize])
            }
        }
        #expect(Support.relativeMaxError(outputs[1], outputs[0]) <= 1e-5)
    }

    @Test("bf16 never takes the AVX2 fp32 kernel")
    func bfloat16StaysOnOneDNN() {
        #expect(GemmBackend.preferred(for: .bfloat16) == .oneDNN)
    }

    @Test("work split: small GEMMs inline, wide ones by panels, narrow tall ones by rows; shares tile the range")
    func split() {
        #expect(AVX2GemmKernel.split(rows: 1, panels: 1, inputSize: 384, threads: 2).chunks == 1)
        #expect(AVX2GemmKernel.split(rows: 32, panels: 24, inputSize: 384, threads: 2) == (2, false))
        #expect(AVX2GemmKernel.split(rows: 512, panels: 2, inputSize: 384, threads: 2) == (2, true))
        #expect(AVX2GemmKernel.split(rows: 512, panels: 24, inputSize: 384, threads: 1).chunks == 1)
        for (count, chunks, multiple) in [(512, 2, 6), (7, 2, 6), (24, 2, 1), (3, 2, 1)] {
            let shares = (0..<chunks).map { AVX2GemmKernel.share(count, $0, chunks, multiple: multiple) }
            #expect(shares.first?.lowerBound == 0 && shares.last?.upperBound == count)
            #expect(zip(shares, shares.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        }
    }
}
