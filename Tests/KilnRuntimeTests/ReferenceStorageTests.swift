import KilnCore
import Testing

@testable import KilnRuntime

/// The reference executor's fp16 activation storage (the floor GPU engines are compared with).
@Suite struct ReferenceStorageTests {
    /// y = x + w, then z = y · 3: two nodes, so the rounding after the first reaches the second.
    func graph() throws -> Graph {
        Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, shape: nil)], outputs: [ValueInfo(name: "z", dtype: .float32, shape: nil)],
            initializers: ["w": try Tensor(floats: [0.1, 1e-4, 70000, -2.5], shape: [4]), "three": try Tensor(floats: [3], shape: [1])],
            nodes: [
                Node(name: "add", opType: "Add", domain: "", inputs: ["x", "w"], outputs: ["y"]),
                Node(name: "mul", opType: "Mul", domain: "", inputs: ["y", "three"], outputs: ["z"]),
            ],
            opsetImports: ["": 17])
    }

    @Test("float32 storage keeps results exact; float16 rounds every node's result as a GPU stores it")
    func float16StorageRoundsAfterEveryNode() throws {
        let input = try Tensor(floats: [1, 1, 1, 1], shape: [4])
        let exact = try #require(try ReferenceExecutor(graph: graph()).run(["x": input])["z"]).floats
        let rounded = try #require(try ReferenceExecutor(graph: graph(), activationStorage: .float16).run(["x": input])["z"]).floats
        let sums: [Float] = [1 + 0.1, 1 + 1e-4, 1 + 70000, 1 - 2.5]
        #expect(exact == sums.map { $0 * 3 })
        // By hand: round y to fp16, multiply in fp32, round z to fp16.
        #expect(rounded == sums.map { Float(Float16(Float(Float16($0)) * 3)) })
        #expect(rounded[0] != exact[0], "1.1 is not an fp16 value")
        #expect(rounded[2] == .infinity, "70001 overflows fp16, as on a GPU")
        #expect(rounded[3] == -4.5, "fp16-exact values are unchanged")
    }
}
