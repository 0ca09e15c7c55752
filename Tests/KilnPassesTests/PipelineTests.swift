import Foundation
import KilnCore
import KilnPasses
import KilnRuntime
import Testing

/// Collects log lines and dumps from the pass manager across its Sendable closures.
final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [String] = []
    func append(_ line: String) { lock.withLock { storage.append(line) } }
    var lines: [String] { lock.withLock { storage } }
}

@Suite("Pass manager, precision and memory planning")
struct PipelineTests {
    @Test("the pass manager logs one line per pass and dumps after the named pass only")
    func logsAndDumps() throws {
        let fixture = modelFixture("minilm-torchscript-opset14")
        let graph = try fixture.loadGraph()
        let log = Recorder(), dumps = Recorder()
        _ = try KilnOptimizer.optimize(
            graph, evaluate: referenceEvaluator(opset: graph.opset),
            options: OptimizationOptions(dumpAfter: ["attention-fusion"], memoryPlanShape: nil),
            log: { log.append($0) }, dump: { name, text in dumps.append("\(name)\n\(text)") })
        #expect(log.lines.count == KilnOptimizer.standardPassNames.count)
        #expect(log.lines.contains { $0.hasPrefix("attention-fusion: fused 2 attention blocks") })
        #expect(dumps.lines.count == 1)
        #expect(dumps.lines.first?.hasPrefix("attention-fusion\ngraph ") == true)
        #expect(dumps.lines.first?.contains("kiln::Attention(") == true)
    }

    @Test("--dump-after with an unknown pass name is a clear error")
    func unknownDumpAfter() throws {
        let graph = try modelFixture("bert-dynamo-opset18").loadGraph()
        #expect(throws: KilnError.self) {
            try KilnOptimizer.optimize(graph, evaluate: referenceEvaluator(opset: graph.opset), options: OptimizationOptions(dumpAfter: ["attention"]))
        }
    }

    @Test("bf16 marks encoder GEMMs and attention bf16, keeps the intent/slot heads fp32")
    func precisionAssignment() throws {
        let fixture = modelFixture("bert-torchscript-opset14")
        let (_, result) = try optimizeFixture(fixture, precision: "bf16")
        let outputs = Set(result.graph.outputs.map(\.name))
        for node in result.graph.nodes where node.opType == "FusedMatMul" || node.opType == "Attention" {
            let precision = try node.string("precision", default: "?")
            let isHead = node.outputs.contains(where: outputs.contains)
            #expect(precision == (isHead ? "fp32" : "bf16"), "\(node.name): \(precision)")
        }
        #expect(result.reports.last?.count("output heads") == 2)
        // The reference still computes fp32, so numerics are unchanged.
        let executor = try ReferenceExecutor(graph: result.graph)
        let outputsRun = try executor.run(try fixture.tensors("inputs"))
        for (name, expected) in try fixture.tensors("outputs") {
            #expect(maxAbsDifference(outputsRun[name]!, expected) <= 1e-4)
        }
    }

    @Test("memory plan: overlapping lifetimes never share bytes, arena well below naive, Codable")
    func memoryPlan() throws {
        let (_, result) = try optimizeFixture(modelFixture("minilm-dynamo-opset18"))
        let plan = try #require(result.memoryPlan)
        #expect(plan.arenaBytes < plan.naiveBytes / 2)
        for (i, a) in plan.allocations.enumerated() {
            #expect(a.offset % plan.alignment == 0)
            for b in plan.allocations[(i + 1)...] where a.firstUse <= b.lastUse && b.firstUse <= a.lastUse {
                #expect(a.offset + a.bytes <= b.offset || b.offset + b.bytes <= a.offset, "\(a.value) and \(b.value) overlap")
            }
        }
        let decoded = try JSONDecoder().decode(MemoryPlan.self, from: try JSONEncoder().encode(plan))
        #expect(decoded == plan)
        print("MEMORY minilm-dynamo-opset18: \(plan.summary)")
    }

    @Test("every standard pass keeps the graph valid on every fixture (validated after each pass)")
    func passesKeepGraphsValid() throws {
        for name in modelFixtureNames {
            let graph = try modelFixture(name).loadGraph()
            var working = graph
            let manager = PassManager(passes: KilnOptimizer.standardPasses(evaluate: referenceEvaluator(opset: graph.opset)), validatesEachPass: true)
            _ = try manager.run(&working)
            try GraphValidator.validate(working, expectedOutputs: graph.outputs.map(\.name))
        }
    }
}
