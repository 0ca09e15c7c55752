import KilnCore
import KilnKernels
import Testing

/// LayerNorm, SkipLayerNorm, softmax and GELU against the reference kernels.
/// Tolerance: ``CPUKernelTestSupport/relativeMaxError(_:_:)`` ≤ 1e-4 (fp32).
@Suite struct ElementwiseCPUKernelTests {
    typealias Support = CPUKernelTestSupport
    static let shapes: [(rows: Int, hiddenSize: Int)] = [1, 7, 33, 511].flatMap { rows in [32, 64, 384].map { (rows, $0) } }

    @Test("LayerNorm matches LayerNormalization (≤ 1e-4)", arguments: shapes)
    func layerNorm(rows: Int, hiddenSize: Int) throws {
        var random = Support.Random(seed: UInt64(rows * 1000 + hiddenSize))
        let input = random.floats(rows * hiddenSize, -3, 5)
        let gamma = random.floats(hiddenSize, 0.5, 1.5)
        let beta = random.floats(hiddenSize)
        var output = [Float](repeating: 0, count: input.count)
        LayerNormKernel.run(input: input, gamma: gamma, beta: beta, output: &output, rows: rows, hiddenSize: hiddenSize, epsilon: 1e-12)
        let expected = try Support.reference(
            "LayerNormalization",
            [try Tensor(floats: input, shape: [rows, hiddenSize]), try Tensor(floats: gamma, shape: [hiddenSize]), try Tensor(floats: beta, shape: [hiddenSize])],
            attributes: ["epsilon": .float(1e-12)], opset: 17)
        #expect(Support.relativeMaxError(output, expected.floats) <= 1e-4)
    }

    @Test("LayerNorm without beta, in place")
    func layerNormInPlaceWithoutBeta() throws {
        var random = Support.Random(seed: 7)
        let input = random.floats(7 * 33)
        let gamma = random.floats(33, 0.5, 1.5)
        var buffer = input
        buffer.withUnsafeMutableBufferPointer { pointer in
            LayerNormKernel.run(input: pointer.baseAddress!, gamma: gamma, beta: nil, output: pointer.baseAddress!, rows: 7, hiddenSize: 33, epsilon: 1e-5)
        }
        let expected = try Support.reference(
            "LayerNormalization", [try Tensor(floats: input, shape: [7, 33]), try Tensor(floats: gamma, shape: [33]), nil],
            attributes: ["epsilon": .float(1e-5)], opset: 17)
        #expect(Support.relativeMaxError(buffer, expected.floats) <= 1e-4)
    }

    @Test("SkipLayerNorm equals Add(+bias) then LayerNormalization (≤ 1e-4)", arguments: shapes)
    func skipLayerNorm(rows: Int, hiddenSize: Int) throws {
        var random = Support.Random(seed: UInt64(rows * 7 + hiddenSize))
        let input = random.floats(rows * hiddenSize, -4, 4)
        let skip = random.floats(rows * hiddenSize, -2, 2)
        let bias = random.floats(hiddenSize)
        let gamma = random.floats(hiddenSize, 0.5, 1.5)
        let beta = random.floats(hiddenSize)
        var output = [Float](repeating: 0, count: input.count)
        var sum = [Float](repeating: 0, count: input.count)
        LayerNormKernel.runSkip(
            input: input, skip: skip, bias: bias, gamma: gamma, beta: beta, output: &output, sumOutput: &sum,
            rows: rows, hiddenSize: hiddenSize, epsilon: 1e-12)
        let inputTensor = try Tensor(floats: input, shape: [rows, hiddenSize])
        let added = try Support.reference("Add", [inputTensor, try Tensor(floats: skip, shape: [rows, hiddenSize])])
        let biased = try Support.reference("Add", [added, try Tensor(floats: bias, shape: [hiddenSize])])
        let expected = try Support.reference(
            "LayerNormalization", [biased, try Tensor(floats: gamma, shape: [hiddenSize]), try Tensor(floats: beta, shape: [hiddenSize])],
            attributes: ["epsilon": .float(1e-12)], opset: 17)
        #expect(Support.relativeMaxError(output, expected.floats) <= 1e-4)
        #expect(Support.relativeMaxError(sum, biased.floats) <= 1e-6)
    }

    @Test("Softmax matches Softmax (≤ 1e-4)", arguments: [1, 7, 33, 511], [1, 5, 17, 64, 384])
    func softmax(rows: Int, columns: Int) throws {
        var random = Support.Random(seed: UInt64(rows * 31 + columns))
        let input = random.floats(rows * columns, -20, 20)
        var output = [Float](repeating: 0, count: input.count)
        SoftmaxKernel.run(input: input, output: &output, rows: rows, columns: columns)
        let expected = try Support.reference("Softmax", [try Tensor(floats: input, shape: [rows, columns])], opset: 13)
        #expect(Support.relativeMaxError(output, expected.floats) <= 1e-4)
    }

    @Test("Gelu (erf and tanh) matches Gelu (≤ 1e-4)", arguments: [1, 7, 33, 511], [GeluKernel.Approximation.none, .tanh])
    func gelu(rows: Int, approximation: GeluKernel.Approximation) throws {
        var random = Support.Random(seed: UInt64(rows))
        let input = random.floats(rows * 384, -8, 8)
        var output = [Float](repeating: 0, count: input.count)
        GeluKernel.run(input: input, output: &output, count: input.count, approximation: approximation)
        let expected = try Support.reference(
            "Gelu", [try Tensor(floats: input, shape: [rows, 384])], attributes: ["approximate": .string(approximation.rawValue)])
        #expect(Support.relativeMaxError(output, expected.floats) <= 1e-4)
    }
}
