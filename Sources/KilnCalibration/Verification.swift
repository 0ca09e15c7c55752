import Foundation
import KilnRuntime

/// The comparison `kiln verify` makes: an engine and its fp32 reference on the same labelled
/// utterances, scored on the task, compared output by output, and judged against tolerances.
public struct VerificationReport: Sendable, Codable {
    public var engine: NLUScores
    public var reference: NLUScores
    public var agreement: OutputAgreement
    public var maxIntentDrop: Double
    public var maxSlotF1Drop: Double

    /// Points lost against the reference (positive = worse).
    public var intentDrop: Double { reference.intent - engine.intent }
    public var slotF1Drop: Double { reference.slotF1 - engine.slotF1 }
    public var sentenceAccuracyDrop: Double { reference.sentenceAccuracy - engine.sentenceAccuracy }

    /// Whether the engine is within both tolerances (and produced finite outputs).
    public var passed: Bool {
        intentDrop <= maxIntentDrop && slotF1Drop <= maxSlotF1Drop && agreement.maxAbsLogitDifference.isFinite
    }

    /// Runs both engines on `examples` and compares them.
    public static func run(
        engine: any InferenceEngine, reference: any InferenceEngine, examples: [NLUExample], runner: NLURunner, scorer: NLUScorer,
        maxIntentDrop: Double, maxSlotF1Drop: Double, progress: (String, Int, Int) -> Void = { _, _, _ in }
    ) throws -> VerificationReport {
        let texts = examples.map(\.text)
        let engineOutputs = try runner.run(engine, texts: texts) { progress("engine", $0, $1) }
        let referenceOutputs = try runner.run(reference, texts: texts) { progress("reference", $0, $1) }
        let enginePredictions = try zip(engineOutputs, texts).map { try scorer.predict($0, text: $1) }
        let referencePredictions = try zip(referenceOutputs, texts).map { try scorer.predict($0, text: $1) }
        return VerificationReport(
            engine: scorer.score(enginePredictions, examples), reference: scorer.score(referencePredictions, examples),
            agreement: OutputAgreement(engineOutputs, referenceOutputs, predictionsA: enginePredictions, predictionsB: referencePredictions),
            maxIntentDrop: maxIntentDrop, maxSlotF1Drop: maxSlotF1Drop)
    }

    /// The table `kiln verify` prints.
    public func table(engineName: String, referenceName: String) -> String {
        func row(_ name: String, _ scores: NLUScores) -> String {
            String(format: "%@ %10.2f %10.2f %12.2f", name.padding(toLength: 28, withPad: " ", startingAt: 0), scores.intent, scores.slotF1, scores.sentenceAccuracy)
        }
        func right(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }
        let header = "".padding(toLength: 28, withPad: " ", startingAt: 0) + " " + right("intent", 10) + " " + right("slot F1", 10) + " " + right("sentence", 12)
        return [
            "\(engine.count) utterances; intent = \(engine.intentMetric)",
            header,
            row(referenceName, reference),
            row(engineName, engine),
            String(format: "%@ %10.2f %10.2f %12.2f", "drop (points)".padding(toLength: 28, withPad: " ", startingAt: 0), intentDrop, slotF1Drop, sentenceAccuracyDrop),
            String(format: "max-abs logit difference %.4g; agreement (same intents and slots) %.2f%%", agreement.maxAbsLogitDifference, agreement.agreement),
            String(format: "tolerance: intent drop <= %.2f, slot F1 drop <= %.2f: %@", maxIntentDrop, maxSlotF1Drop, passed ? "PASS" : "FAIL"),
        ].joined(separator: "\n")
    }
}
