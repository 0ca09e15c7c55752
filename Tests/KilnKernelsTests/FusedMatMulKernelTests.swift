import Foundation
import KilnCore
import KilnKernels
import Synchronization
import Testing

/// The oneDNN GEMM against a direct double-precision `activation(A·W + bias)`.
/// Tolerances (relative max error, see ``CPUKernelTestSupport/relativeMaxError(_:_:)``):
/// fp32 ≤ 1e-4; bf16 ≤ 1e-4 against the reference on bf16-rounded inputs (only accumulation
/// order differs) and ≤ 0.0025·√K against the unrounded fp32 reference: bf16 keeps 8 significant
/// bits, so each of the K products carries an independent relative error of about 0.0016 (rms,
/// both operands rounded); with weights ±0.3 and inputs ±2 (products ~0.2 rms) the sum's error is
/// ~0.0003·√K rms, and the bound allows ~8 of those (the largest of thousands of outputs; measured
/// 0.035 at K = 384, bound 0.049, where a flat 2e-2 failed once the tests first ran on AVX512_BF16).
@Suite struct FusedMatMulKernelTests {
    typealias Support = CPUKernelTestSupport

    static func direct(_ input: [Float], _ weights: [Float], _ bias: [Float]?, rows: Int, inputSize: Int, outputSize: Int, activation: GemmActivation) -> [Float] {
        var output = [Float](repeating: 0, count: rows * outputSize)
        input.withUnsafeBufferPointer { a in
            weights.withUnsafeBufferPointer { w in
                var row = [Double](repeating: 0, count: outputSize)
                for m in 0..<rows {
                    for n in 0..<outputSize { row[n] = Double(bias?[n] ?? 0) }
                    for k in 0..<inputSize {
                        let scale = Double(a[m * inputSize + k])
                        for n in 0..<outputSize { row[n] += scale * Double(w[k * outputSize + n]) }
                    }
                    for n in 0..<outputSize { output[m * outputSize + n] = Float(Self.activate(row[n], activation)) }
                }
            }
        }
        return output
    }

    static func activate(_ x: Double, _ activation: GemmActivation) -> Double {
        switch activation {
        case .none: return x
        case .relu: return max(x, 0)
        case .tanh: return Foundation.tanh(x)
        case .gelu: return 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
        case .geluTanh: return 0.5 * x * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
        }
    }

    func run(_ kernel: FusedMatMulKernel, _ input: [Float], rows: Int) throws -> [Float] {
        let stream = try CPUStream()
        var output = [Float](repeating: .nan, count: rows * kernel.outputSize)
        try kernel.run(input: input, rows: rows, output: &output, stream: stream)
        return output
    }

    static let shapes: [(inputSize: Int, outputSize: Int)] = [(32, 64), (64, 33), (384, 96), (7, 1)]

    @Test("fp32 GEMM with every activation matches the direct product (≤ 1e-4)", arguments: GemmActivation.allCases, shapes)
    func float32(activation: GemmActivation, shape: (inputSize: Int, outputSize: Int)) throws {
        var random = Support.Random(seed: UInt64(shape.inputSize * 100 + shape.outputSize))
        let weights = random.floats(shape.inputSize * shape.outputSize, -0.3, 0.3)
        let bias = random.floats(shape.outputSize)
        let kernel = try FusedMatMulKernel(
            weights: weights, bias: bias, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: activation)
        for rows in [1, 7, 33, 511] {
            let input = random.floats(rows * shape.inputSize, -2, 2)
            let expected = Self.direct(input, weights, bias, rows: rows, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: activation)
            #expect(Support.relativeMaxError(try run(kernel, input, rows: rows), expected) <= 1e-4, "rows \(rows)")
        }
    }

    @Test("without bias; primitives are cached per row count and reused")
    func noBiasAndReuse() throws {
        var random = Support.Random(seed: 3)
        let weights = random.floats(64 * 48)
        let kernel = try FusedMatMulKernel(weights: weights, bias: nil, inputSize: 64, outputSize: 48)
        for rows in [5, 9, 5, 9] {
            let input = random.floats(rows * 64)
            let expected = Self.direct(input, weights, nil, rows: rows, inputSize: 64, outputSize: 48, activation: .none)
            #expect(Support.relativeMaxError(try run(kernel, input, rows: rows), expected) <= 1e-4)
        }
        #expect(kernel.packedWeightsSize >= 64 * 48 * 4)
        #expect(!(try kernel.implementationName(rows: 5)).isEmpty)
    }

    /// Regression: with oneDNN's default (library-managed) scratchpad, a primitive may only run on
    /// the thread that created it; Kiln caches primitives and runs them on whichever batcher or pool
    /// thread needs them, which crashed `kiln serve` with two instances under load (a read past the
    /// creating thread's scratchpad). Kiln's primitives use a per-thread, caller-owned scratchpad,
    /// so any thread may run any primitive, also concurrently.
    @Test("primitives created on one thread run correctly on others, concurrently (MiniLM shapes)",
          arguments: [GemmPrecision.float32] + (CPUKernelTestSupport.hasBFloat16 ? [.bfloat16] : []))
    func crossThreadExecution(precision: GemmPrecision) throws {
        var random = Support.Random(seed: 29)
        let tolerance: Float = precision == .float32 ? 1e-4 : 0.0025 * Float(1536).squareRoot()
        for (inputSize, outputSize, activation) in [(384, 1152, GemmActivation.none), (384, 1536, .gelu), (1536, 384, .none)] {
            let weights = random.floats(inputSize * outputSize, -0.3, 0.3)
            let bias = random.floats(outputSize)
            let kernel = try FusedMatMulKernel(
                weights: weights, bias: bias, inputSize: inputSize, outputSize: outputSize, activation: activation, precision: precision,
                columnSlices: 1)
            let rowCounts = [1, 5, 20, 96, 160]
            let inputs = rowCounts.map { random.floats($0 * inputSize, -2, 2) }
            let expected = zip(rowCounts, inputs).map { rows, input in
                Self.direct(input, weights, bias, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: activation)
            }
            // Create every primitive here, on this thread.
            for (rows, input) in zip(rowCounts, inputs) { _ = try run(kernel, input, rows: rows) }
            // Run them on two fresh threads at once, many times.
            let errors = Mutex<[Float]>([])
            Support.onFreshThreads(2) { _ in
                guard let stream = try? CPUStream() else { return }
                for _ in 0..<20 {
                    for (index, rows) in rowCounts.enumerated() {
                        var output = [Float](repeating: .nan, count: rows * outputSize)
                        let measured: Float
                        do {
                            try kernel.run(input: inputs[index], rows: rows, output: &output, stream: stream)
                            measured = Support.relativeMaxError(output, expected[index])
                        } catch {
                            measured = .infinity
                        }
                        errors.withLock { $0.append(measured) }
                    }
                }
            }
            let measured = errors.withLock { $0 }
            #expect(measured.count == 2 * 20 * rowCounts.count)
            #expect(measured.allSatisfy { $0 <= tolerance }, "[\(inputSize), \(outputSize)] worst \(measured.max() ?? .nan)")
        }
    }

    @Test("mismatched weights are an error")
    func badShapesThrow() {
        #expect(throws: KilnError.self) { try FusedMatMulKernel(weights: [1, 2, 3], bias: nil, inputSize: 2, outputSize: 2) }
        #expect(throws: KilnError.self) { try FusedMatMulKernel(weights: [1, 2, 3, 4], bias: [1], inputSize: 2, outputSize: 2) }
    }

    @Test("bf16 GEMM with every activation (≤ 1e-4 vs bf16-rounded inputs, ≤ 0.0025·√K vs fp32)",
          .enabled(if: CPUKernelTestSupport.hasBFloat16, "needs AVX512_BF16"), arguments: GemmActivation.allCases)
    func bfloat16(activation: GemmActivation) throws {
        var random = Support.Random(seed: 11)
        for shape in Self.shapes {
            let weights = random.floats(shape.inputSize * shape.outputSize, -0.3, 0.3)
            let bias = random.floats(shape.outputSize)
            let kernel = try FusedMatMulKernel(
                weights: weights, bias: bias, inputSize: shape.inputSize, outputSize: shape.outputSize,
                activation: activation, precision: .bfloat16)
            let roundedWeights = weights.map { Float(bitPattern: UInt32(BFloat16Conversion.roundToBFloat16($0)) << 16) }
            for rows in [1, 7, 33, 511] {
                let input = random.floats(rows * shape.inputSize, -2, 2)
                let roundedInput = input.map { Float(bitPattern: UInt32(BFloat16Conversion.roundToBFloat16($0)) << 16) }
                let output = try run(kernel, input, rows: rows)
                let rounded = Self.direct(roundedInput, roundedWeights, bias, rows: rows, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: activation)
                let exact = Self.direct(input, weights, bias, rows: rows, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: activation)
                #expect(Support.relativeMaxError(output, rounded) <= 1e-4, "\(shape) rows \(rows)")
                #expect(Support.relativeMaxError(output, exact) <= 0.0025 * Float(shape.inputSize).squareRoot(), "\(shape) rows \(rows)")
                // bf16 activations given directly give the same answer.
                let bits = roundedInput.map { UInt16($0.bitPattern >> 16) }
                var direct = [Float](repeating: .nan, count: output.count)
                try kernel.run(bfloat16Input: bits, rows: rows, output: &direct, stream: try CPUStream())
                #expect(direct == output)
            }
        }
    }

    @Test("asking for bf16 without AVX512_BF16 is a clear error",
          .enabled(if: !CPUKernelTestSupport.hasBFloat16, "this CPU has AVX512_BF16"))
    func bfloat16NeedsTheInstructionSet() {
        #expect {
            try FusedMatMulKernel(weights: [Float](repeating: 1, count: 4), bias: nil, inputSize: 2, outputSize: 2, precision: .bfloat16)
        } throws: { error in
            "\(error)".contains("AVX512_BF16")
        }
    }

    @Test("bf16 conversion rounds to nearest even")
    func bfloat16Rounding() {
        #expect(BFloat16Conversion.roundToBFloat16(1) == 0x3F80)
        #expect(BFloat16Conversion.roundToBFloat16(Float(bitPattern: 0x3F80_8000)) == 0x3F80)  // tie, even stays
        #expect(BFloat16Conversion.roundToBFloat16(Float(bitPattern: 0x3F81_8000)) == 0x3F82)  // tie, odd rounds up
        let values = (0..<37).map { Float($0) * 0.37 - 5 }
        var bits = [UInt16](repeating: 0, count: values.count)
        BFloat16Conversion.convert(values, to: &bits, count: values.count)
        #expect(bits == values.map(BFloat16Conversion.roundToBFloat16))
    }
}

/// GEMM throughput for MiniLM and BERT-base shapes. Disabled unless `KILN_BENCHMARK=1`; run in
/// release mode (command in Sources/KilnKernels/CPU/README.md).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["KILN_BENCHMARK"] == "1", "set KILN_BENCHMARK=1"))
struct GemmBenchmarkTests {
    @Test func gemmThroughput() throws {
        let precisions: [GemmPrecision] = CPUFeatures.detected.hasAVX512BF16 ? [.float32, .bfloat16] : [.float32]
        print("CPU: \(CPUFeatures.detected.flags.sorted()); oneDNN ISA: \(CPUFeatures.oneDNNISA); threads: \(CPUThreading.gemmThreadCount)")
        for precision in precisions {
            for (hidden, intermediate) in [(384, 1536), (768, 3072)] {
                for rows in [32, 16 * 32] {
                    for (inputSize, outputSize, activation) in [(hidden, hidden, GemmActivation.none), (hidden, 3 * hidden, .none),
                                                                (hidden, intermediate, .gelu), (intermediate, hidden, .none)] {
                        let result = try GemmBenchmark.measure(
                            rows: rows, inputSize: inputSize, outputSize: outputSize, precision: precision, activation: activation, minimumSeconds: 0.5)
                        print("BENCH \(result)")
                    }
                }
            }
        }
    }
}
