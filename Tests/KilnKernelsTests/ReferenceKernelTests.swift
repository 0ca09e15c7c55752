import KilnCore
@testable import KilnKernels
import Testing

/// Hand-checked cases for the reference kernels; the ONNX Runtime golden tests in
/// KilnRuntimeTests cover every operator against an independent implementation.
@Suite struct ReferenceKernelTests {
    func run(_ opType: String, _ inputs: [Tensor?], attributes: [String: Attribute] = [:], outputs: Int = 1, opset: Int = 17) throws -> [Tensor] {
        let node = Node(name: "test", opType: opType, inputs: inputs.indices.map { "in\($0)" }, outputs: (0..<outputs).map { "out\($0)" }, attributes: attributes)
        return try ReferenceKernels.run(node, inputs: inputs, opset: opset)
    }

    @Test func broadcastingFollowsNumPy() {
        #expect(Broadcasting.shape([[2, 1, 3], [4, 1]]) == [2, 4, 3])
        #expect(Broadcasting.shape([[2, 3], [4]]) == nil)
        #expect(Broadcasting.sourceIndices(from: [3], to: [2, 3]) == [0, 1, 2, 0, 1, 2])
        #expect(Broadcasting.sourceIndices(from: [2, 1], to: [2, 3]) == [0, 0, 0, 1, 1, 1])
    }

    @Test func addBroadcastsAndKeepsDType() throws {
        let a = try Tensor(floats: [1, 2, 3, 4, 5, 6], shape: [2, 3])
        let b = try Tensor(floats: [10, 20, 30], shape: [3])
        #expect(try run("Add", [a, b])[0].floats == [11, 22, 33, 14, 25, 36])
        let i = try Tensor(ints: [7, -7], shape: [2])
        #expect(try run("Div", [i, .scalar(Int64(2))])[0].ints == [3, -3])
        #expect(throws: KilnError.self) { try run("Add", [a, try Tensor(floats: [1, 2], shape: [2])]) }
    }

    @Test func matMulHandlesBatchesAndVectors() throws {
        let a = try Tensor(floats: [1, 2, 3, 4], shape: [2, 2])
        let identity = try Tensor(floats: [1, 0, 0, 1], shape: [2, 2])
        #expect(try run("MatMul", [a, identity])[0].floats == [1, 2, 3, 4])
        let vector = try Tensor(floats: [1, 1], shape: [2])
        let product = try run("MatMul", [a, vector])[0]
        #expect(product.shape == [2] && product.floats == [3, 7])
        let batched = try Tensor(floats: [1, 2, 3, 4, 5, 6, 7, 8], shape: [2, 2, 2])
        #expect(try run("MatMul", [batched, identity])[0].shape == [2, 2, 2])
    }

    @Test func softmaxRowsSumToOneAndLegacyAxisFlattens() throws {
        let x = try Tensor(floats: [1, 2, 3, 4, 5, 6], shape: [1, 2, 3])
        let modern = try run("Softmax", [x], opset: 13)[0].floats
        #expect(abs(modern[0..<3].reduce(0, +) - 1) < 1e-6)
        let legacy = try run("Softmax", [x], opset: 11)[0].floats  // axis 1 covers all 6 values
        #expect(abs(legacy.reduce(0, +) - 1) < 1e-6)
    }

    @Test func layerNormalizationNormalizesLastAxis() throws {
        let x = try Tensor(floats: [1, 2, 3, 4], shape: [1, 4])
        let out = try run("LayerNormalization", [x, try Tensor(floats: [1, 1, 1, 1], shape: [4]), nil], attributes: ["epsilon": .float(0)], outputs: 1)[0]
        let values = out.floats
        #expect(abs(values.reduce(0, +)) < 1e-5)
        #expect(abs(values[3] - 1.3416408) < 1e-5)
    }

    @Test func sliceClampsLikeONNX() {
        #expect(ShapeKernels.sliceIndices(start: 1, end: Int64.max, step: 1, size: 4) == [1, 2, 3])
        #expect(ShapeKernels.sliceIndices(start: -1, end: Int64.min, step: -1, size: 4) == [3, 2, 1, 0])
        #expect(ShapeKernels.sliceIndices(start: 0, end: -1, step: 2, size: 5) == [0, 2])
        #expect(ShapeKernels.sliceIndices(start: 10, end: 20, step: 1, size: 4) == [])
    }

    @Test func gatherRejectsOutOfRangeIndex() throws {
        let table = try Tensor(floats: [1, 2, 3, 4], shape: [2, 2])
        #expect(try run("Gather", [table, try Tensor(ints: [-1, 0], shape: [2])])[0].floats == [3, 4, 1, 2])
        #expect(throws: KilnError.self) { try run("Gather", [table, try Tensor(ints: [2], shape: [1])]) }
    }

    @Test func castTruncatesAndWraps() throws {
        let x = try Tensor(floats: [-1.7, 2.9, 300], shape: [3])
        #expect(try run("Cast", [x], attributes: ["to": .int(7)])[0].ints == [-1, 2, 300])
        #expect(try run("Cast", [x], attributes: ["to": .int(9)])[0].bools == [true, true, true])
        let big = try Tensor(ints: [300], shape: [1])
        #expect(try run("Cast", [big], attributes: ["to": .int(2)])[0].ints == [44])
    }

    @Test func unknownOperatorIsAClearError() {
        #expect(throws: KilnError.self) { try run("Conv", [Tensor.scalar(Float(1))]) }
    }
}
