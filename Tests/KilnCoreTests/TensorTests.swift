import Foundation
import KilnCore
import Testing

@Suite struct TensorTests {
    @Test func rejectsShapeThatDoesNotMatchElementCount() {
        #expect(throws: KilnError.self) { try Tensor(floats: [1, 2, 3], shape: [2, 2]) }
        #expect(throws: KilnError.self) { try Tensor(dtype: .int64, shape: [1], storage: .float([1])) }
        #expect(throws: KilnError.self) { try Tensor(floats: [], shape: [-1]) }
    }

    @Test func stridesAreRowMajor() throws {
        #expect(Tensor.strides(of: [2, 3, 4]) == [12, 4, 1])
        #expect(Tensor.strides(of: []) == [])
        #expect(try Tensor(floats: [1], shape: []).count == 1)
    }

    @Test func narrowFloatTypesRoundToNearestEven() throws {
        // 1 + 2^-11 is halfway between two fp16 values; ties go to the even one (1.0).
        #expect(FloatRounding.toFloat16(1 + 0.00048828125) == 1)
        #expect(FloatRounding.toFloat16(65520) == .infinity)
        // bf16 keeps 8 mantissa bits: 1 + 2^-8 is a tie and rounds to 1; 1 + 3·2^-9 rounds up.
        #expect(FloatRounding.toBFloat16(1 + 0.00390625) == 1)
        #expect(FloatRounding.toBFloat16(1 + 0.005859375) == 1.0078125)
        #expect(FloatRounding.toBFloat16(.nan).isNaN)
        let tensor = try Tensor(floats: [0.1], shape: [1], dtype: .float16)
        #expect(tensor.floats[0] == Float(Float16(0.1)))
    }

    @Test func conversionsSaturateInsteadOfTrapping() {
        #expect(Tensor.truncatingToInt64(.nan) == 0)
        #expect(Tensor.truncatingToInt64(1e30) == Int64.max)
        #expect(Tensor.truncatingToInt64(-2.7) == -2)
    }
}

@Suite struct NPYFileTests {
    @Test(arguments: [DType.float32, .float16, .float64, .int64, .int32, .int8, .uint8, .bool, .int16])
    func roundTrips(_ dtype: DType) throws {
        let tensor: Tensor
        switch dtype {
        case .bool: tensor = try Tensor(bools: [true, false, true, true, false, false], shape: [2, 3])
        case _ where dtype.isFloatingPoint: tensor = try Tensor(floats: [0, -1.5, 2.25, 3, 1e-3, -7], shape: [2, 3], dtype: dtype)
        default: tensor = try Tensor(ints: [0, -1, 2, 3, -128, 127].map { dtype == .uint8 ? abs($0) : $0 }, shape: [3, 2], dtype: dtype)
        }
        let decoded = try NPYFile.decode(NPYFile.encode(tensor))
        #expect(decoded == tensor)
    }

    @Test func scalarAndEmptyShapes() throws {
        #expect(try NPYFile.decode(NPYFile.encode(.scalar(Float(4)))).shape == [])
        #expect(try NPYFile.decode(NPYFile.encode(Tensor(floats: [], shape: [0, 3]))).shape == [0, 3])
    }

    @Test func rejectsGarbageAndTruncation() throws {
        #expect(throws: KilnError.self) { try NPYFile.decode(Data("not numpy".utf8)) }
        let bytes = NPYFile.encode(try Tensor(floats: [1, 2, 3, 4], shape: [4]))
        #expect(throws: KilnError.self) { try NPYFile.decode(bytes.prefix(bytes.count - 3)) }
        #expect(throws: KilnError.self) { try NPYFile.decode(bytes.prefix(12)) }
    }
}

@Suite struct GraphTests {
    @Test func topologicalSortOrdersProducersFirst() throws {
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, shape: [.symbolic("batch")])],
            outputs: [ValueInfo(name: "z", dtype: .float32, shape: nil)],
            nodes: [
                Node(name: "second", opType: "Relu", inputs: ["y"], outputs: ["z"]),
                Node(name: "first", opType: "Neg", inputs: ["x"], outputs: ["y"]),
            ])
        #expect(try graph.topologicallySorted().map(\.name) == ["first", "second"])
        #expect(graph.opHistogram == ["Relu": 1, "Neg": 1])
    }

    @Test func undefinedValueIsAClearError() {
        let graph = Graph(
            inputs: [], outputs: [ValueInfo(name: "z", dtype: nil, shape: nil)],
            nodes: [Node(name: "lonely", opType: "Relu", inputs: ["nowhere"], outputs: ["z"])])
        #expect(throws: KilnError.self) { try graph.topologicallySorted() }
    }
}
