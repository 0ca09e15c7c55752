import Foundation
import KilnCore
import Synchronization
import Testing

@testable import KilnKernels

/// ``ComputePool`` (the CPU kernels' worker threads) and the oneDNN column slices that run on it.
@Suite struct ComputePoolTests {
    typealias Support = CPUKernelTestSupport

    /// Counts how often each chunk ran, and on how many distinct threads.
    final class ChunkLog: Sendable {
        let counts: Mutex<[Int]>
        let threads = Mutex<Set<UInt>>([])
        init(_ chunks: Int) { counts = Mutex([Int](repeating: 0, count: chunks)) }
        func record(_ chunk: Int) {
            counts.withLock { $0[chunk] += 1 }
            threads.withLock { _ = $0.insert(UInt(pthread_self())) }
        }
        var ranOnce: Bool { counts.withLock { $0.allSatisfy { $0 == 1 } } }
        func count(_ chunk: Int) -> Int { counts.withLock { $0[chunk] } }
    }

    @Test("every chunk runs exactly once, for many chunk counts, polling and sleeping workers alike",
          arguments: [UInt64(0), 50_000])
    func everyChunkOnce(spinNanoseconds: UInt64) {
        let pool = ComputePool(spinNanoseconds: spinNanoseconds)
        for chunks in [2, 3, 7, 64, 1000] {
            for round in 0..<20 {
                let log = ChunkLog(chunks)
                pool.run(chunks, width: 3) { chunk, count in
                    #expect(count == chunks)
                    log.record(chunk)
                }
                #expect(log.ranOnce, "chunks \(chunks), round \(round)")
                if round % 5 == 4 { usleep(2_000) }  // let sleeping workers park between jobs
            }
        }
        #expect(pool.workerCount == 2)
    }

    @Test("work is shared: a job of slow chunks finishes on more than one thread")
    func usesWorkers() {
        let pool = ComputePool(spinNanoseconds: 200_000)
        let log = ChunkLog(8)
        pool.run(8, width: 2) { chunk, _ in
            log.record(chunk)
            usleep(5_000)
        }
        #expect(log.ranOnce)
        #expect(log.threads.withLock { $0.count } == 2)
    }

    @Test("a nested call and a concurrent caller run their chunks inline; nothing is lost or run twice")
    func nestedAndConcurrent() async {
        let pool = ComputePool(spinNanoseconds: 100_000)
        let inner = ChunkLog(16 * 4)
        let outer = ChunkLog(16)
        pool.run(16, width: 2) { chunk, _ in
            outer.record(chunk)
            pool.run(4, width: 2) { innerChunk, _ in inner.record(chunk * 4 + innerChunk) }
        }
        #expect(outer.ranOnce && inner.ranOnce)

        let logs = (0..<4).map { _ in ChunkLog(50) }
        await withTaskGroup(of: Void.self) { group in
            for log in logs {
                group.addTask {
                    for _ in 0..<10 {
                        let round = ChunkLog(50)
                        pool.run(50, width: 2) { chunk, _ in round.record(chunk) }
                        if round.ranOnce { log.record(0) }
                    }
                }
            }
        }
        #expect(logs.allSatisfy { $0.count(0) == 10 }, "every concurrent job ran each chunk once")
    }

    @Test("sums computed in parallel equal the sequential sum (chunks write disjoint slots)")
    func parallelSum() {
        let values = (0..<100_000).map { Double($0 % 97) }
        var partial = [Double](repeating: 0, count: 13)
        partial.withUnsafeMutableBufferPointer { results in
            let results = results.baseAddress!
            values.withUnsafeBufferPointer { data in
                CPUThreading.parallelChunks(13) { chunk, chunks in
                    let range = (data.count * chunk / chunks)..<(data.count * (chunk + 1) / chunks)
                    results[chunk] = data[range].reduce(0, +)
                }
            }
        }
        #expect(partial.reduce(0, +) == values.reduce(0, +))
    }

    @Test("column slices: edges on multiples of 64, the last takes the rest, no slice under 64 columns")
    func sliceBounds() {
        #expect(OneDNNColumnSlices.sliceBounds(outputSize: 384, slices: 2) == [0..<192, 192..<384])
        #expect(OneDNNColumnSlices.sliceBounds(outputSize: 1000, slices: 3) == [0..<320, 320..<640, 640..<1000])
        #expect(OneDNNColumnSlices.sliceBounds(outputSize: 100, slices: 2) == [0..<100])
        #expect(OneDNNColumnSlices.sliceBounds(outputSize: 7, slices: 4) == [0..<7])
        #expect(OneDNNColumnSlices.sliceBounds(outputSize: 2304, slices: 1) == [0..<2304])
        for (size, slices) in [(130, 2), (1536, 4), (3072, 3), (65, 8)] {
            let bounds = OneDNNColumnSlices.sliceBounds(outputSize: size, slices: slices)
            #expect(bounds.first?.lowerBound == 0 && bounds.last?.upperBound == size)
            #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            #expect(bounds.allSatisfy { $0.count >= 64 || bounds.count == 1 })
        }
    }

    /// Shapes wide enough for several slices (odd widths leave a ragged last slice).
    static let wideShapes: [(inputSize: Int, outputSize: Int)] = [(96, 130), (384, 384), (64, 1000)]

    @Test("fp32 and bf16 oneDNN GEMMs in 1, 2 and 3 column slices match the direct product (fp32 ≤ 1e-4, bf16 ≤ 2e-2)",
          arguments: wideShapes)
    func slicedFloatGemm(shape: (inputSize: Int, outputSize: Int)) throws {
        var random = Support.Random(seed: UInt64(shape.outputSize))
        let weights = random.floats(shape.inputSize * shape.outputSize, -0.3, 0.3)
        let bias = random.floats(shape.outputSize)
        let precisions: [GemmPrecision] = Support.hasBFloat16 ? [.float32, .bfloat16] : [.float32]
        for precision in precisions {
            for slices in [1, 2, 3] {
                let kernel = try FusedMatMulKernel(
                    weights: weights, bias: bias, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: .gelu,
                    precision: precision, backend: .oneDNN, columnSlices: slices)
                for rows in [1, 9, 257] {
                    let input = random.floats(rows * shape.inputSize, -2, 2)
                    var output = [Float](repeating: .nan, count: rows * shape.outputSize)
                    try kernel.run(input: input, rows: rows, output: &output, stream: try CPUStream())
                    let expected = FusedMatMulKernelTests.direct(
                        input, weights, bias, rows: rows, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: .gelu)
                    let tolerance: Float = precision == .float32 ? 1e-4 : 2e-2
                    #expect(Support.relativeMaxError(output, expected) <= tolerance, "\(precision), \(slices) slices, rows \(rows)")
                }
                // An AVX-512 CPU must get oneDNN's fast kernels for a slice, not its reference code.
                let implementation = try kernel.implementationName(rows: 9)
                #expect(!implementation.contains("ref"), "\(implementation)")
            }
        }
    }

    @Test("int8 GEMM in 1, 2 and 3 column slices equals the int8 reference (≤ 1e-5), every epilogue column written once",
          arguments: wideShapes)
    func slicedInt8Gemm(shape: (inputSize: Int, outputSize: Int)) throws {
        var random = Support.Random(seed: UInt64(shape.inputSize + 7))
        let weights = random.floats(shape.inputSize * shape.outputSize, -0.3, 0.3)
        let bias = random.floats(shape.outputSize)
        for activation in [GemmActivation.none, .gelu, .relu] {
            for slices in [1, 2, 3] {
                let kernel = try Int8MatMulKernel(
                    weights: weights, bias: bias, inputSize: shape.inputSize, outputSize: shape.outputSize,
                    activation: activation, inputScale: 2.5 / 127, columnSlices: slices)
                for rows in [1, 33] {
                    let input = random.floats(rows * shape.inputSize, -2, 2)
                    var output = [Float](repeating: .nan, count: rows * shape.outputSize)
                    try kernel.run(input: input, rows: rows, output: &output, stream: try CPUStream())
                    let levels = weights.withUnsafeBufferPointer {
                        Int8Quantization.quantizeWeights($0, scales: kernel.weightScales, inputSize: shape.inputSize, outputSize: shape.outputSize)
                    }
                    let expected = Int8MatMulReference.run(
                        input: input, rows: rows, quantizedWeights: levels, weightScales: kernel.weightScales, bias: bias,
                        inputSize: shape.inputSize, outputSize: shape.outputSize, activation: activation, inputScale: 2.5 / 127)
                    #expect(Support.relativeMaxError(output, expected) <= 1e-5, "\(activation), \(slices) slices, rows \(rows)")
                }
            }
        }
    }

    @Test("on AVX-512 CPUs fp32 GEMMs default to oneDNN (brgemm); on AVX2-only CPUs to Kiln's AVX2 kernel")
    func defaultBackend() {
        guard GemmBackend.environmentChoice == nil, AVX2GemmKernel.isSupported else { return }
        let expected: GemmBackend = CPUFeatures.detected.hasAVX512Core ? .oneDNN : .avx2
        #expect(GemmBackend.preferred(for: .float32) == expected)
    }
}
