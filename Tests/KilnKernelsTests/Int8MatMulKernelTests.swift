import Foundation
import KilnCore
import KilnKernels
import Testing

/// The oneDNN INT8 GEMM against ``Int8MatMulReference`` (same quantization, int32 products,
/// double epilogue). Tolerances, relative max error (``CPUKernelTestSupport/relativeMaxError(_:_:)``):
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

    @Test("int8 GEMM (dynamic and static scales, every activation) matches the int8 reference", arguments: GemmActivation.allCases, shapes)
    func matchesReference(activation: GemmActivation, shape: (inputSize: Int, outputSize: Int)) throws {
        var random = Support.Random(seed: UInt64(shape.inputSize * 31 + shape.outputSize))
        let weights = random.floats(shape.inputSize * shape.outputSize, -0.3, 0.3)
        let bias = random.floats(shape.outputSize)
        for inputScale in [nil, Float(2.5) / 127] {
            let kernel = try Int8MatMulKernel(
                weights: weights, bias: bias, inputSize: shape.inputSize, outputSize: shape.outputSize,
                activation: activation, inputScale: inputScale)
            for rows in [1, 7, 33, 200] {
                let input = random.floats(rows * shape.inputSize, -2, 2)
                let expected = Int8MatMulReference.run(
                    input: input, rows: rows, quantizedWeights: quantized(weights, kernel), weightScales: kernel.weightScales,
                    bias: bias, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: activation, inputScale: inputScale)
                let actual = try run(kernel, input, rows: rows)
                #expect(Support.relativeMaxError(actual, expected) <= 1e-5, "rows \(rows), scale \(String(describing: inputScale))")
                let fp32 = FusedMatMulKernelTests.direct(input, weights, bias, rows: rows, inputSize: shape.inputSize, outputSize: shape.outputSize, activation: activation)
                #expect(Support.relativeMaxError(actual, fp32) <= 0.01 * Float(shape.inputSize).squareRoot(), "quantization error, rows \(rows)")
            }
        }
    }

    /// The pairs `vpmaddubsw` adds in 16 bits: all inputs and weights at the top level and the
    /// same sign, where 8-bit weights would saturate on AVX2 without VNNI.
    @Test("worst-case levels do not saturate (7-bit weights)")
    func noSaturation() throws {
        let (inputSize, outputSize, rows) = (64, 16, 4)
        let weights: [Float] = (0..<(inputSize * outputSize)).map { $0 % 3 == 0 ? -1 : 1 }
        let input: [Float] = (0..<(rows * inputSize)).map { $0 % 5 == 0 ? -1 : 1 }
        let kernel = try Int8MatMulKernel(weights: weights, bias: nil, inputSize: inputSize, outputSize: outputSize)
        let expected = FusedMatMulKernelTests.direct(input, weights, nil, rows: rows, inputSize: inputSize, outputSize: outputSize, activation: .none)
        #expect(Support.relativeMaxError(try run(kernel, input, rows: rows), expected) <= 1e-5)
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
