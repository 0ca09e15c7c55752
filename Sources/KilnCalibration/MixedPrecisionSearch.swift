import Foundation
import KilnCore
import KilnPasses
import KilnRuntime

/// Per-layer sensitivity and automatic mixed precision.
///
/// 1. Score the fp32 engine and the all-int8 engine (heads fp32 unless asked) on a labelled sample.
/// 2. If all-int8 is within tolerance *with a noise margin* (below), stop. Otherwise quantize one
///    GEMM at a time (everything else fp32) and record its effect: the task-metric drops and the
///    mean absolute logit change against fp32 (its sensitivity).
/// 3. Starting from all-int8, put GEMMs back to fp32, most sensitive first, re-scoring after
///    each, until the engine is within `maxIntentDrop` and `maxSlotF1Drop` (points) with margin.
///
/// Why the margin and the logit ranking (support-en, session 2): a task metric on a few hundred
/// utterances barely moves when one GEMM is quantized, so every sensitivity was 0 (the ranking was
/// arbitrary), and a sample whose all-int8 score happened to equal fp32's stopped the search at
/// once, although the held-out set then lost 0.59 points. A drop measured on a sample is a paired
/// difference whose noise grows with the number of utterances the two engines decide
/// differently: with `d` of `n` utterances decided differently, one standard error is about
/// `100·√d / n` points. The search now asks `drop + confidence·SE ≤ tolerance`, and ranks GEMMs by
/// how much they move the logits (continuous, never all zero), so it keeps going until the
/// engines rarely disagree. `confidence = 0` gives the old rule.
public struct MixedPrecisionSearch: Sendable {
    /// One GEMM's measured effect when it alone is int8.
    public struct Sensitivity: Sendable, Codable, Equatable {
        public var node: String
        public var intentDrop: Double
        public var slotF1Drop: Double
        /// Mean over utterances of the mean |Δ| of intent and slot logits against fp32: the ranking key.
        public var logitChange: Double
    }

    public struct Result: Sendable {
        public var fp32: NLUScores
        public var pureInt8: NLUScores
        public var mixed: NLUScores
        public var keptFP32: [String]
        public var sensitivities: [Sensitivity]
        public var withinTolerance: Bool
    }

    /// An engine's outputs, decoded predictions and scores on the sample.
    public struct Evaluation: Sendable {
        public var outputs: [NLUOutput]
        public var predictions: [NLUPrediction]
        public var scores: NLUScores

        public init(outputs: [NLUOutput], predictions: [NLUPrediction], scores: NLUScores) {
            self.outputs = outputs
            self.predictions = predictions
            self.scores = scores
        }
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
    /// Standard errors of the paired drop added to the measured drop before comparing with the
    /// tolerance (0: compare the measured drop alone).
    public let confidence: Double

    public init(
        graph: Graph, activationScales: [String: Float]?, quantizeHeads: Bool, examples: [NLUExample], runner: NLURunner,
        scorer: NLUScorer, maxIntentDrop: Double, maxSlotF1Drop: Double, alwaysFP32: Set<String> = [], confidence: Double = 1
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
        self.confidence = confidence
    }

    /// The int8 graph with `keepInFP32` left in fp32.
    public func quantized(keepInFP32: Set<String>) throws -> Graph {
        var copy = graph
        _ = try QuantizationPass(activationScales: activationScales, keepInFP32: keepInFP32.union(alwaysFP32), quantizeHeads: quantizeHeads).run(&copy)
        return copy
    }

    /// Task scores of `graph` on the sample.
    public func score(_ graph: Graph) throws -> NLUScores { try evaluate(graph).scores }

    /// Runs `graph` on the sample and scores it.
    public func evaluate(_ graph: Graph) throws -> Evaluation {
        let outputs = try runner.run(try Engine(graph: graph), texts: examples.map(\.text))
        let predictions = try zip(outputs, examples).map { try scorer.predict($0, text: $1.text) }
        return Evaluation(outputs: outputs, predictions: predictions, scores: scorer.score(predictions, examples))
    }

    /// The noise margins (points) of `candidate`'s drops against `baseline`: `confidence`
    /// standard errors of a paired difference, from how many intents / slots the two decide differently.
    public func margins(_ candidate: Evaluation, _ baseline: Evaluation) -> (intent: Double, slot: Double) {
        var intentDiffer = 0, slotDiffer = 0, goldSlots = 0
        for (a, b) in zip(candidate.predictions, baseline.predictions) {
            if a.intents != b.intents { intentDiffer += 1 }
            slotDiffer += a.slots.symmetricDifference(b.slots).count
        }
        for example in examples { goldSlots += example.slots?.count ?? 0 }
        let n = Double(max(examples.count, 1))
        let intent = confidence * 100 * Double(intentDiffer).squareRoot() / n
        let slot = goldSlots == 0 ? 0 : confidence * 100 * Double(slotDiffer).squareRoot() / Double(goldSlots)
        return (intent, slot)
    }

    /// Whether `candidate`'s drops against `baseline` plus their noise margins are within tolerance.
    public func within(_ candidate: Evaluation, of baseline: Evaluation) -> Bool {
        let margin = margins(candidate, baseline)
        return baseline.scores.intent - candidate.scores.intent + margin.intent <= maxIntentDrop
            && baseline.scores.slotF1 - candidate.scores.slotF1 + margin.slot <= maxSlotF1Drop
    }

    /// Mean over utterances of the mean |Δ| of intent and slot logits.
    static func logitChange(_ a: [NLUOutput], _ b: [NLUOutput]) -> Double {
        func meanAbs(_ x: [Float], _ y: [Float]) -> Double {
            guard !x.isEmpty else { return 0 }
            return zip(x, y).reduce(0.0) { $0 + Double(abs($1.0 - $1.1)) } / Double(x.count)
        }
        let total = zip(a, b).reduce(0.0) { $0 + meanAbs($1.0.intentLogits, $1.1.intentLogits) + meanAbs($1.0.slotLogits, $1.1.slotLogits) }
        return total / Double(max(a.count, 1))
    }

    private func describe(_ candidate: Evaluation, _ baseline: Evaluation) -> String {
        let margin = margins(candidate, baseline)
        return String(format: "intent %.2f, slot F1 %.2f (noise margins %.2f / %.2f)",
                      candidate.scores.intent, candidate.scores.slotF1, margin.intent, margin.slot)
    }

    /// Runs the search; `log` gets one line per measurement.
    public func run(log: (String) -> Void) throws -> Result {
        let fp32 = try evaluate(graph)
        log(String(format: "fp32: intent %.2f, slot F1 %.2f", fp32.scores.intent, fp32.scores.slotF1))
        let pure = try evaluate(try quantized(keepInFP32: []))
        log("all int8: " + describe(pure, fp32))
        if within(pure, of: fp32) {
            return Result(fp32: fp32.scores, pureInt8: pure.scores, mixed: pure.scores, keptFP32: [], sensitivities: [], withinTolerance: true)
        }
        let heads = QuantizationPass.outputHeads(of: graph)
        let candidates = QuantizationPass.candidates(in: graph).map(\.name).filter { (quantizeHeads || !heads.contains($0)) && !alwaysFP32.contains($0) }
        var sensitivities: [Sensitivity] = []
        for name in candidates {
            let alone = try evaluate(try quantized(keepInFP32: Set(candidates).subtracting([name])))
            let sensitivity = Sensitivity(
                node: name, intentDrop: fp32.scores.intent - alone.scores.intent, slotF1Drop: fp32.scores.slotF1 - alone.scores.slotF1,
                logitChange: Self.logitChange(alone.outputs, fp32.outputs))
            sensitivities.append(sensitivity)
            log(String(format: "only %@ int8: intent drop %.2f, slot F1 drop %.2f, mean |logit change| %.5f",
                       name, sensitivity.intentDrop, sensitivity.slotF1Drop, sensitivity.logitChange))
        }
        // Most harmful first: by how much the GEMM alone moves the logits (task drops on a sample
        // are mostly 0 and would leave the order arbitrary).
        let ranked = sensitivities.sorted { $0.logitChange > $1.logitChange }
        var kept: [String] = []
        var current = pure
        for sensitivity in ranked {
            kept.append(sensitivity.node)
            current = try evaluate(try quantized(keepInFP32: Set(kept)))
            log("fp32 for \(kept.count) most sensitive (+\(sensitivity.node)): " + describe(current, fp32))
            if within(current, of: fp32) { break }
        }
        return Result(
            fp32: fp32.scores, pureInt8: pure.scores, mixed: current.scores, keptFP32: kept, sensitivities: sensitivities,
            withinTolerance: within(current, of: fp32))
    }
}
