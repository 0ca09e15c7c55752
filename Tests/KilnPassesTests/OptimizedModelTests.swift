import Foundation
import KilnCore
import KilnPasses
import KilnRuntime
import Testing

/// Optimizes a fixture with the standard pipeline (fp32, memory plan for batch 16, seq 32).
func optimizeFixture(_ fixture: GoldenFixture, precision: String = "fp32") throws -> (original: Graph, result: OptimizationResult) {
    let graph = try fixture.loadGraph()
    let result = try KilnOptimizer.optimize(
        graph, evaluate: referenceEvaluator(opset: graph.opset),
        options: OptimizationOptions(precision: precision, memoryPlanShape: (16, 32)))
    return (graph, result)
}

@Suite("Optimized models vs ONNX Runtime")
struct OptimizedModelTests {
    /// The fully optimized graph, run by the reference executor, matches ONNX Runtime's outputs
    /// within the fixture's tolerance (1e-4 max-abs), on both input sets.
    @Test("optimized graph matches ORT within 1e-4 max-abs", arguments: modelFixtureNames)
    func optimizedMatchesOnnxRuntime(_ name: String) throws {
        let fixture = modelFixture(name)
        let (_, result) = try optimizeFixture(fixture)
        let executor = try ReferenceExecutor(graph: result.graph)
        var worst: Float = 0
        for set in fixture.inputSets {
            let outputs = try executor.run(try fixture.tensors(set.inputs))
            for (output, expected) in try fixture.tensors(set.outputs) {
                let actual = try #require(outputs[output])
                let difference = maxAbsDifference(actual, expected)
                worst = max(worst, difference)
                #expect(difference <= fixture.tolerance, "\(name) \(set.inputs) \(output): max-abs \(difference)")
            }
        }
        print("FIXTURE \(name) maxabs=\(worst) counts=\(result.opCounts.filter { $0.key.hasPrefix("kiln::") }.sorted { $0.key < $1.key }) nodes=\(result.graph.nodes.count) \(result.memoryPlan?.summary ?? "")")
        print("REMAINING \(name) \(result.opCounts.filter { !$0.key.hasPrefix("kiln::") }.sorted { $0.key < $1.key })")
        for report in result.reports where !report.notes.isEmpty { print("NOTES \(name) \(report.pass): \(report.notes.prefix(3))") }
    }
}

/// Prints the optimized graph of the fixture named in `KILN_DUMP_FIXTURE` (a debugging aid;
/// does nothing otherwise).
@Test("dump an optimized fixture on request")
func dumpOptimizedFixture() throws {
    guard let name = ProcessInfo.processInfo.environment["KILN_DUMP_FIXTURE"] else { return }
    let (_, result) = try optimizeFixture(modelFixture(name))
    print(GraphPrinter.text(result.graph, types: try ShapeInference(graph: result.graph)))
}
