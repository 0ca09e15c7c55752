import Foundation
import KilnCore
import KilnPasses
import KilnRuntime

/// Per-layer sensitivity and automatic mixed precision.
///
/// 1. Score the fp32 engine and the all-int8 engine (heads fp32 unless asked) on a labelled sample.
/// 2. If all-int8 is within tolerance, stop. Otherwise quantize one GEMM at a time (everything
///    else fp32) and record each one's loss on the task metric: its sensitivity.
/// 3. Starting from all-int8, put GEMMs back to fp32, most sensitive first, re-scoring after
///    each, until the engine is within `maxIntentDrop` and `maxSlotF1Drop` (points).
public struct MixedPrecisionSearch: Sendable {
    /// One GEMM's measured effect when it alone is int8.
    public struct Sensitivity: Sendable, Codable, Equatable {
        public var node: String
        public var intentDrop: Double
        public var slotF1Drop: Double
    }

    public struct Result: Sendable {
        public var fp32: NLUScores
        public var pureInt8: NLUScores
        public var mixed: NLUScores
        public var keptFP32: [String]
        public var sensitivities: [Sensitivity]
        public var withinTolerance: Bool
    }

    public let graph: Graph
    public let activationScales: [String: Float]?
    public let quantizeHeads: Bool
    public let examples: [NLUExample]
    public let runner: NLURunner
    public let scorer: NLUScorer
    public let maxIntentDrop: Double
    public let maxSlotF1Drop: Double
    /// GEMMs the user keeps fp32 anyway (never candidates).
    public let alwaysFP32: Set<String>

    public init(
        graph: Graph, activationScales: [String: Float]?, quantizeHeads: Bool, examples: [NLUExample], runner: NLURunner,
        scorer: NLUScorer, maxIntentDrop: Double, maxSlotF1Drop: Double, alwaysFP32: Set<String> = []
    ) {
        self.alwaysFP32 = alwaysFP32
        self.graph = graph
        self.activationScales = activationScales
        self.quantizeHeads = quantizeHeads
        self.examples = examples
        self.runner = runner
        self.scorer = scorer
        self.maxIntentDrop = maxIntentDrop
        self.maxSlotF1Drop = maxSlotF1Drop
    }

    /// The int8 graph with `keepInFP32` left in fp32.
    public func quantized(keepInFP32: Set<String>) throws -> Graph {
        var copy = graph
        _ = try QuantizationPass(activationScales: activationScales, keepInFP32: keepInFP32.union(alwaysFP32), quantizeHeads: quantizeHeads).run(&copy)
        return copy
    }

    /// Task scores of `graph` on the sample.
    public func score(_ graph: Graph) throws -> NLUScores {
        let outputs = try runner.run(try Engine(graph: graph), texts: examples.map(\.text))
        let predictions = try zip(outputs, examples).map { try scorer.predict($0, text: $1.text) }
        return scorer.score(predictions, examples)
    }

    func within(_ scores: NLUScores, of baseline: NLUScores) -> Bool {
        baseline.intent - scores.intent <= maxIntentDrop && baseline.slotF1 - scores.slotF1 <= maxSlotF1Drop
    }

    /// Runs the search; `log` gets one line per measurement.
    public func run(log: (String) -> Void) throws -> Result {
        let fp32 = try score(graph)
        log(String(format: "fp32: intent %.2f, slot F1 %.2f", fp32.intent, fp32.slotF1))
        let pure = try score(try quantized(keepInFP32: []))
        log(String(format: "all int8: intent %.2f, slot F1 %.2f", pure.intent, pure.slotF1))
        if within(pure, of: fp32) {
            return Result(fp32: fp32, pureInt8: pure, mixed: pure, keptFP32: [], sensitivities: [], withinTolerance: true)
        }
        let heads = QuantizationPass.outputHeads(of: graph)
        let candidates = QuantizationPass.candidates(in: graph).map(\.name).filter { (quantizeHeads || !heads.contains($0)) && !alwaysFP32.contains($0) }
        var sensitivities: [Sensitivity] = []
        for name in candidates {
            let alone = try score(try quantized(keepInFP32: Set(candidates).subtracting([name])))
            sensitivities.append(Sensitivity(node: name, intentDrop: fp32.intent - alone.intent, slotF1Drop: fp32.slotF1 - alone.slotF1))
            log(String(format: "only %@ int8: intent drop %.2f, slot F1 drop %.2f", name, fp32.intent - alone.intent, fp32.slotF1 - alone.slotF1))
        }
        // Most harmful first, weighting each metric by its tolerance.
        func weight(_ s: Sensitivity) -> Double {
            s.intentDrop / max(maxIntentDrop, 1e-6) + s.slotF1Drop / max(maxSlotF1Drop, 1e-6)
        }
        let ranked = sensitivities.sorted { weight($0) > weight($1) }
        var kept: [String] = []
        var current = pure
        for sensitivity in ranked {
            kept.append(sensitivity.node)
            current = try score(try quantized(keepInFP32: Set(kept)))
            log(String(format: "fp32 for %d most sensitive (+%@): intent %.2f, slot F1 %.2f", kept.count, sensitivity.node, current.intent, current.slotF1))
            if within(current, of: fp32) { break }
        }
        return Result(fp32: fp32, pureInt8: pure, mixed: current, keptFP32: kept, sensitivities: sensitivities, withinTolerance: within(current, of: fp32))
    }
}
