import Foundation
import KilnCore
import KilnKernels
import Synchronization
import Testing

/// The oneDNN INT8 GEMM (u8×s8 → s32 plus Kiln's epilogue) against ``Int8MatMulReference`` (same
/// quantization, int32 products, double epilogue), at every instruction-set level this CPU runs
/// (AVX2 cases are absent without AVX2). Tolerances, relative max error (``CPUKernelTestSupport/relativeMaxError(_:_:)``):
/// ≤ 1e-5 against the reference (int32 accumulation is exact; only the fp32 epilogue rounds), and
/// ≤ 0.01·√K against the fp32 product: what 7-bit weights and 8-bit activations cost. Each of the
/// K products carries an independent rounding error, so the sum's error grows like √K (with
/// weights ±0.3 and inputs ±2 here, one standard deviation is about 0.0015·√K).
@Suite struct Int8MatMulKernelTests {
    typealias Support = CPUKernelTestSupport

    func run(_ kernel: Int8MatMulKernel, _ input: [Float], rows: Int) throws -> [Float] {
        let stream = try CPUStream()
        var output = [Float](repeating: .nan, count: rows * kernel.outputSize)
        try kernel.run(input: input, rows: rows, output: &output, stream: stream)
        return output
    }

    static let shapes: [(inputSize: Int, outputSize: Int)] = [(32, 64), (64, 33), (384, 96), (7, 1)]
    static let levels = KernelISA.allCases.filter { KernelISA.isSupported($0) }

    @Test("int8 GEMM (dynamic and static scales, every activation) matches the int8 reference", arguments: GemmActivation.allCases, shapes)
    func matchesReference(activation: GemmActivation, shape: (inputSize: Int, outputSize: Int)) throws {
        for isa in Self.levels { try matchesReference(activation: activation, shape: shape, isa: isa) }
    }

    func matchesReference(activation: GemmActivation, shape: (inputSize: Int, outputSize: Int), isa: KernelISA) throws {
        var random = Support.Random(seed: UInt64(shape.inputSize * 31 + shape.outputSize))
        let weights = random.floats(shape.inputSize * shape.outputSize, -0.3, 0.3)
        let bias = random.floats(shape.outputSize)
        for inputScale in [nil, Float(2.5) / 127] {
            let kernel = try Int8MatMulKernel(
                weights: weights, bias: bias, inputSize: shape.inputSize, outputSize: shape.outputSize,
                activation: activation, inputScale: inputScale, isa: isa)
            for rows in [1, 7, 33, 200] {
                let input = random.floats(rows * shape.inputSize, -2, 2)
                let expected = Int8MatMulReference.run(
                    input: input, rows: rows, quantizedWeights: quantized(weights, kernel), weightScales: kernel.weightScales,
                    bias: bias, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: activation, inputScale: inputScale)
                let actual = try run(kernel, input, rows: rows)
                #expect(Support.relativeMaxError(actual, expected) <= 1e-5, "\(isa), rows \(rows), scale \(String(describing: inputScale))")
                let fp32 = FusedMatMulKernelTests.direct(input, weights, bias, rows: rows, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: activation)
                #expect(Support.relativeMaxError(actual, fp32) <= 0.01 * Float(shape.inputSize).squareRoot(), "quantization error, rows \(rows)")
            }
        }
    }

    /// Regression (see ``FusedMatMulKernelTests/crossThreadExecution(precision:)``): the u8 × s8
    /// brgemm primitives, created on this thread, give the same levels on two fresh threads at once.
    @Test("int8 primitives created on one thread run correctly on others, concurrently (MiniLM shapes)")
    func crossThreadExecution() throws {
        var random = Support.Random(seed: 31)
        for (inputSize, outputSize, activation) in [(384, 1152, GemmActivation.none), (384, 1536, .gelu), (1536, 384, .none)] {
            let weights = random.floats(inputSize * outputSize, -0.3, 0.3)
            let kernel = try Int8MatMulKernel(
                weights: weights, bias: random.floats(outputSize), inputSize: inputSize, outputSize: outputSize, activation: activation,
                columnSlices: 1)
            let rowCounts = [1, 5, 20, 96, 160]
            let inputs = rowCounts.map { random.floats($0 * inputSize, -2, 2) }
            // Every primitive is created here, and these are the answers.
            let expected = try zip(rowCounts, inputs).map { rows, input in try run(kernel, input, rows: rows) }
            let mismatches = Mutex(0)
            Support.onFreshThreads(2) { _ in
                guard let stream = try? CPUStream() else { return mismatches.withLock { $0 += 1 } }
                for _ in 0..<20 {
                    for (index, rows) in rowCounts.enumerated() {
                        var output = [Float](repeating: .nan, count: rows * outputSize)
                        let matches = (try? kernel.run(input: inputs[index], rows: rows, output: &output, stream: stream)) != nil
                            && output == expected[index]
                        if !matches { mismatches.withLock { $0 += 1 } }
                    }
                }
            }
            #expect(mismatches.withLock { $0 } == 0, "[\(inputSize), \(outputSize)]")
        }
    }

    /// The pairs `vpmaddubsw` adds in 16 bits: all inputs and weights at the top level and the
    /// same sign, where 8-bit weights would saturate on AVX2 without VNNI.
    @Test("worst-case levels do not saturate (7-bit weights; u8 inputs at 1 and 255)")
    func noSaturation() throws {
        let (inputSize, outputSize, rows) = (64, 16, 4)
        let weights: [Float] = (0..<(inputSize * outputSize)).map { $0 % 3 == 0 ? -1 : 1 }
        let input: [Float] = (0..<(rows * inputSize)).map { $0 % 5 == 0 ? -1 : 1 }
        let kernel = try Int8MatMulKernel(weights: weights, bias: nil, inputSize: inputSize, outputSize: outputSize)
        let expected = FusedMatMulKernelTests.direct(input, weights, nil, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: .none)
        #expect(Support.relativeMaxError(try run(kernel, input, rows: rows), expected) <= 1e-5)
        // All-positive pairs at the top levels: 255·63·2 per vpmaddubsw pair, the largest sum.
        let positive = [Float](repeating: 1, count: inputSize * outputSize)
        let top = try Int8MatMulKernel(weights: positive, bias: nil, inputSize: inputSize, outputSize: outputSize, inputScale: 1.0 / 127)
        let output = try run(top, [Float](repeating: 1, count: rows * inputSize), rows: rows)
        #expect(output.allSatisfy { abs($0 - Float(inputSize)) <= 1e-4 })
    }

    @Test("weight levels outside ±63 are refused (they would saturate without VNNI)")
    func wideLevelsRefused() {
        #expect(throws: KilnError.self) {
            try Int8MatMulKernel(quantizedWeights: [64, 0, 0, 0], weightScales: [1, 1], bias: nil, inputSize: 2, outputSize: 2)
        }
    }

    @Test("u8 quantization equals Int8Quantization.quantize + 128 at every level (NaN, ±inf, clipping, ties, tails)")
    func quantizeU8() {
        var random = Support.Random(seed: 11)
        var input = random.floats(203, -3, 3)
        input[1] = .infinity; input[2] = -.infinity; input[3] = 0.5; input[4] = 1.5; input[5] = -2.5
        input[41] = 1000; input[42] = -1000
        let scale: Float = 1
        var expected = [Int8](repeating: 0, count: input.count)
        input.withUnsafeBufferPointer { Int8Quantization.quantize($0.baseAddress!, count: input.count, scale: scale, into: &expected) }
        for isa in Self.levels {
            for count in [input.count, 32, 31, 1] {
                var actual = [UInt8](repeating: 0, count: count)
                input.withUnsafeBufferPointer { Int8RowKernels.quantizeU8($0.baseAddress!, count: count, inverseScale: 1 / scale, into: &actual, isa: isa) }
                #expect(actual.map { Int($0) - 128 } == expected.prefix(count).map { Int($0) }, "\(isa), \(count) values")
            }
            // NaN is level 0 everywhere (Int8Quantization's 8-wide loop and scalar tail, both u8 kernels).
            var nan: [Float] = [.nan, 1, .nan] + [Float](repeating: .nan, count: 40)
            var levels = [UInt8](repeating: 0, count: nan.count)
            nan.withUnsafeMutableBufferPointer { Int8RowKernels.quantizeU8($0.baseAddress!, count: $0.count, inverseScale: 1, into: &levels, isa: isa) }
            #expect(levels == [128, 129] + [UInt8](repeating: 128, count: 41), "\(isa) NaN")
            let values = random.floats(77, -5, 5) + [-7.25]
            #expect(values.withUnsafeBufferPointer { Int8RowKernels.absMax($0.baseAddress!, count: values.count, isa: isa) } == 7.25)
        }
    }

    @Test("Int8Quantization.quantize maps NaN to level 0 in its 8-wide loop and its scalar tail alike")
    func quantizeNaNAgreesAcrossPaths() {
        // 19 values: two 8-wide blocks and a 3-value tail, with NaN at every position of each.
        for position in 0..<19 {
            var input = [Float](repeating: 2.4, count: 19)
            input[position] = .nan
            var levels = [Int8](repeating: 99, count: input.count)
            input.withUnsafeBufferPointer { Int8Quantization.quantize($0.baseAddress!, count: $0.count, scale: 1, into: &levels) }
            var expected = [Int8](repeating: 2, count: 19)
            expected[position] = 0
            #expect(levels == expected, "NaN at \(position)")
        }
        var mixed: [Float] = [.nan, -.nan, .infinity, -.infinity, 300, -300, 0.5, -0.5, .nan, 1]
        var levels = [Int8](repeating: 99, count: mixed.count)
        mixed.withUnsafeMutableBufferPointer { Int8Quantization.quantize($0.baseAddress!, count: $0.count, scale: 1, into: &levels) }
        #expect(levels == [0, 0, 127, -127, 127, -127, 0, 0, 0, 1])
    }

    @Test("the dequantization epilogue equals the double formula at every level (in place, odd widths)")
    func dequantize() {
        var random = Support.Random(seed: 12)
        for isa in Self.levels {
            for (rows, columns) in [(3, 19), (2, 8), (1, 1)] {
                let accumulators = (0..<(rows * columns)).map { _ in Int32(random.floats(1, -1, 1)[0] * 1e6) }
                let compensation = (0..<columns).map { _ in Int32(random.floats(1, -1, 1)[0] * 1e5) }
                let scales = random.floats(columns, 1e-5, 1e-3), bias = random.floats(columns)
                for withBias in [true, false] {
                    var buffer = accumulators.map { Float(bitPattern: UInt32(bitPattern: $0)) }
                    buffer.withUnsafeMutableBufferPointer { values in
                        let raw = UnsafeMutableRawPointer(values.baseAddress!)
                        withOptionalPointer(withBias ? bias : nil) { biasPointer in
                            Int8RowKernels.dequantize(
                                raw.assumingMemoryBound(to: Int32.self), into: values.baseAddress!, rows: rows, columns: columns,
                                compensation: compensation, scales: scales, bias: biasPointer, isa: isa)
                        }
                    }
                    let expected = (0..<(rows * columns)).map { index -> Float in
                        let column = index % columns
                        let value = Double(accumulators[index] + compensation[column]) * Double(scales[column])
                        return Float(value + (withBias ? Double(bias[column]) : 0))
                    }
                    #expect(Support.relativeMaxError(buffer, expected) <= 1e-6, "\(isa) \(rows)x\(columns) bias \(withBias)")
                }
            }
        }
    }

    @Test("GELU fused into the dequantization equals dequantization then GeluKernel, bit for bit (both forms, odd widths)")
    func dequantizeWithFusedGelu() {
        var random = Support.Random(seed: 13)
        for isa in Self.levels {
            for (rows, columns) in [(3, 19), (4, 40), (1, 1)] {
                let accumulators = (0..<(rows * columns)).map { _ in Int32(random.floats(1, -1, 1)[0] * 1e6) }
                let compensation = (0..<columns).map { _ in Int32(random.floats(1, -1, 1)[0] * 1e5) }
                let scales = random.floats(columns, 1e-5, 1e-5), bias = random.floats(columns)
                for form in [GeluKernel.Approximation.none, .tanh] {
                    func run(fused: Bool) -> [Float] {
                        var buffer = accumulators.map { Float(bitPattern: UInt32(bitPattern: $0)) }
                        buffer.withUnsafeMutableBufferPointer { values in
                            let raw = UnsafeMutableRawPointer(values.baseAddress!)
                            Int8RowKernels.dequantize(
                                raw.assumingMemoryBound(to: Int32.self), into: values.baseAddress!, rows: rows, columns: columns,
                                compensation: compensation, scales: scales, bias: bias, gelu: fused ? form : nil, isa: isa)
                            if !fused {
                                GeluKernel.run(input: values.baseAddress!, output: values.baseAddress!, count: values.count, approximation: form, width: 1, isa: isa)
                            }
                        }
                        return buffer
                    }
                    let fused = run(fused: true), separate = run(fused: false)
                    #expect(fused == separate, "\(isa) \(rows)x\(columns) \(form)")
                    if rows * columns > 8 { #expect(fused.contains { $0 < 0 } && fused.contains { $0 > 1 }, "GELU must see both signs") }
                }
            }
        }
    }

    @Test("a static scale smaller than the data clips to ±127 levels, like the reference")
    func staticClipping() throws {
        var random = Support.Random(seed: 7)
        let weights = random.floats(16 * 8)
        let kernel = try Int8MatMulKernel(weights: weights, bias: nil, inputSize: 16, outputSize: 8, inputScale: 0.5 / 127)
        let input = random.floats(3 * 16, -4, 4)
        let expected = Int8MatMulReference.run(
            input: input, rows: 3, quantizedWeights: quantized(weights, kernel), weightScales: kernel.weightScales, bias: nil,
            inputSize: 16, outputSize: 8, activation: .none, inputScale: 0.5 / 127)
        #expect(Support.relativeMaxError(try run(kernel, input, rows: 3), expected) <= 1e-5)
    }

    @Test("mismatched sizes and bad scales are errors")
    func errors() {
        #expect(throws: KilnError.self) { try Int8MatMulKernel(weights: [1, 2, 3], bias: nil, inputSize: 2, outputSize: 2) }
        #expect(throws: KilnError.self) { try Int8MatMulKernel(weights: [1, 2, 3, 4], bias: [1], inputSize: 2, outputSize: 2) }
        #expect(throws: KilnError.self) { try Int8MatMulKernel(weights: [1, 2, 3, 4], bias: nil, inputSize: 2, outputSize: 2, inputScale: 0) }
    }

    private func quantized(_ weights: [Float], _ kernel: Int8MatMulKernel) -> [Int8] {
        weights.withUnsafeBufferPointer {
            Int8Quantization.quantizeWeights($0, scales: kernel.weightScales, inputSize: kernel.inputSize, outputSize: kernel.outputSize)
        }
    }
}

private func withOptionalPointer<T>(_ values: [Float]?, _ body: (UnsafePointer<Float>?) -> T) -> T {
    guard let values else { return body(nil) }
    return values.withUnsafeBufferPointer { body($0.baseAddress) }
}
