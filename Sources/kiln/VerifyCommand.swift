import ArgumentParser
import Foundation
import KilnCalibration
import KilnCUDA
import KilnCore
import KilnONNX
import KilnRuntime
import KilnText

/// `kiln verify ENGINE.kiln --reference MODEL.onnx --data LABELLED`: the accuracy gate.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check an engine's task accuracy against its fp32 reference; exit 1 past the tolerances.",
        discussion: """
            Runs the engine and the fp32 reference (the ONNX model compiled by Kiln in fp32) on
            the same labelled utterances, and prints intent accuracy (micro-F1 for multi-label
            models), entity-level slot F1, sentence accuracy, the max-abs logit difference and
            the agreement rate. Exits with status 1 when the engine loses more than
            --max-intent-drop or --max-slot-f1-drop points: put it in CI before an engine ships.

            --data: a SNIPS/ATIS or CAIS split folder, NLU++ fold files (.json) or a BANKING77 .csv (repeatable).

            Example:
              kiln verify snips.int8.kiln --reference models/snips/1/model.onnx --data ../shared/data/snips/test
            """
    )

    @Argument(help: "The engine plan (.kiln) to check.")
    var engine: String

    @Option(help: "The ONNX model the engine was built from.")
    var reference: String

    @Option(help: "Labelled utterances (repeatable).")
    var data: [String]

    @Option(help: "The tokenizer.json (default: the one beside the reference model).")
    var tokenizer: String?

    @Option(help: "The model card (default: the plan's copy, else model.json beside the reference).")
    var modelCard: String?

    @Option(help: "Largest accepted intent drop, in points.")
    var maxIntentDrop: Double = 0.5

    @Option(help: "Largest accepted slot F1 drop, in points.")
    var maxSlotF1Drop: Double = 1.0

    @Option(help: "Use at most this many utterances (spread evenly; default: all).")
    var samples: Int?

    @Option(help: "Also write the report as JSON here.")
    var json: String?

    @Option(name: .customLong("reference-engine"), help: "The fp32 reference's engine: compiled (Kiln's CPU engine), or reference (the exact reference executor; slow, needs no oneDNN).")
    var referenceKind: String = "compiled"

    func validate() throws {
        guard !data.isEmpty else { throw ValidationError("give the labelled utterances with --data") }
        guard ["compiled", "reference"].contains(referenceKind) else { throw ValidationError("--reference-engine must be compiled or reference") }
    }

    func run() throws {
        let referenceURL = URL(fileURLWithPath: reference)
        let planURL = URL(fileURLWithPath: engine)
        let isCUDA = try PlanFile.readHeader(planURL).target.kind == CUDAPlanTarget.kind
        let plan = try isCUDA ? PlanFile.readForDevice(planURL, kind: CUDAPlanTarget.kind) : PlanFile.read(planURL)
        let card: NLUModelCard
        if let modelCard {
            card = try NLUModelCard(contentsOf: URL(fileURLWithPath: modelCard))
        } else if let embedded = plan.header.modelCard {
            card = try NLUModelCard(json: Data(embedded.utf8), source: "\(engine) (model card)")
        } else {
            card = try NLUModelCard(contentsOf: referenceURL.deletingLastPathComponent().appendingPathComponent("model.json"))
        }
        var examples = try NLUDataset.load(data)
        if let samples { examples = NLUDataset.sample(examples, count: samples) }
        guard examples.allSatisfy({ $0.intents != nil }) else {
            throw ValidationError("--data must be labelled (intents); plain text files carry no labels")
        }
        let tokenizerURL = URL(fileURLWithPath: tokenizer ?? referenceURL.deletingLastPathComponent().appendingPathComponent("tokenizer.json").path)
        let runner = NLURunner(tokenizer: try WordPieceTokenizer(contentsOf: tokenizerURL))
        let engineUnderTest: any InferenceEngine = try Progress.step(1, of: 3, "loading \(engine) (\(plan.header.precision))") {
            if isCUDA { return try CUDASupport.engine(graph: plan.graph, header: plan.header) }
            return try Engine(plan: plan)
        }
        let referenceEngine: any InferenceEngine = try Progress.step(2, of: 3, "compiling the fp32 reference \(referenceURL.lastPathComponent)") {
            if referenceKind == "reference" { return try ReferenceExecutor(graph: ONNXImporter().load(referenceURL)) }
            return try Engine(plan: try PlanCompiler(precision: "fp32").compile(referenceURL, log: { _ in }).plan)
        }
        if plan.header.sourceModelSHA256 != (try? Data(contentsOf: referenceURL)).map({ SHA256.hexDigest($0) }) {
            FileHandle.standardError.write(Data("warning: \(engine) was built from another model file than \(reference) (sha256 differs)\n".utf8))
        }
        let report = try Progress.step(3, of: 3, "running \(examples.count) utterances on both") {
            try VerificationReport.run(
                engine: engineUnderTest, reference: referenceEngine, examples: examples, runner: runner, scorer: NLUScorer(card: card),
                maxIntentDrop: maxIntentDrop, maxSlotF1Drop: maxSlotF1Drop)
        }
        print(report.table(engineName: "engine (\(plan.header.precision))", referenceName: "fp32 reference (kiln)"))
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
        if !report.passed { throw ExitCode(1) }
    }
}
