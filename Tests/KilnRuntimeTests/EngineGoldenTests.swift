import Foundation
import KilnCore
import KilnKernels
import KilnONNX
import KilnPasses
import KilnRuntime
import Testing

/// The compiled CPU engine (optimized graph + fast kernels) against ONNX Runtime on every
/// model fixture: fp32 plans must stay within 1e-4 max-abs of ORT's outputs.
@Suite struct EngineGoldenTests {
    static func compile(_ fixture: GoldenFixture) throws -> (Engine, OptimizationResult) {
        try compile(graph: try ONNXImporter().load(fixture.modelURL))
    }

    static func compile(graph: Graph) throws -> (Engine, OptimizationResult) {
        let opset = graph.opset
        let result = try KilnOptimizer.optimize(
            graph, evaluate: { try ReferenceKernels.run($0, inputs: $1, opset: opset) },
            options: OptimizationOptions(memoryPlanShape: nil))
        return (try Engine(graph: result.graph), result)
    }

    /// Padded execution, every entry (padding positions included); the packed run is checked at
    /// real tokens by `PackedExecutionTests` (its padding positions hold zeros).
    @Test(arguments: GoldenFixture.all(in: "models"))
    func optimizedEngineMatchesONNXRuntimeWithin1e4(_ fixture: GoldenFixture) throws {
        let (_, result) = try Self.compile(fixture)
        let engine = try Engine(graph: result.graph, packedExecution: false)
        for set in fixture.inputSets {
            let outputs = try engine.run(try fixture.tensors(set.inputs))
            for (name, expected) in try fixture.tensors(set.outputs) {
                let actual = try #require(outputs[name], "\(fixture.name): output \(name) missing")
                let error = maxAbsDifference(actual, expected)
                #expect(error <= 1e-4, "\(fixture.name)/\(set.inputs): \(name) max-abs \(error)")
            }
        }
    }

    /// The fused operators must actually run on fast kernels (not silently on the reference
    /// fallback) for the standard BERT exports.
    @Test func fusedOperatorsBindToFastKernels() throws {
        let fixture = try #require(GoldenFixture.all(in: "models").first { $0.name == "bert-torchscript-opset17" })
        let (engine, result) = try Self.compile(fixture)
        #expect(result.opCounts["kiln::Attention"] == 2)
        #expect(engine.kernelSummary["kiln:FusedMatMul"]?.hasSuffix(", 0 reference") == true, "\(engine.kernelSummary)")
        #expect(engine.kernelSummary["kiln:Attention"]?.hasSuffix(", 0 reference") == true, "\(engine.kernelSummary)")
    }

    @Test func concurrentRunsDoNotInterfere() async throws {
        let fixture = try #require(GoldenFixture.all(in: "models").first { $0.name == "minilm-torchscript-opset14" })
        let (engine, _) = try Self.compile(fixture)
        let inputs = try fixture.tensors("inputs")
        let expected = try engine.run(inputs)
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 { group.addTask { try engine.run(inputs) == expected } }
            for try await same in group { #expect(same) }
        }
    }
}
