import ArgumentParser
import Foundation
import KilnCalibration
import KilnCore
import KilnText

/// `kiln calibrate MODEL.onnx --data FILE -o calibration.json`: activation ranges for INT8.
struct CalibrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "calibrate",
        abstract: "Record activation ranges of a model on real utterances, for `kiln build --precision int8`.",
        discussion: """
            Runs the model as Kiln optimizes it (fp32) on the utterances in --data and records,
            for every input of a GEMM that INT8 builds quantize, its min/max and a histogram of
            |x|. The cache holds the model's SHA-256: a build with another model refuses it.
            Use at least 1000 representative utterances.

            --data takes plain text (one utterance a line), a SNIPS/ATIS split folder (seq.in), a CAIS folder,
            an NLU++ fold (.json) or a BANKING77 .csv; repeat it to combine files.

            Examples:
              kiln calibrate models/snips/1/model.onnx --data ../shared/data/snips/train -o snips.calibration.json
              kiln calibrate model.onnx --data utterances.txt --method percentile -o calibration.json
            """
    )

    @Argument(help: "The ONNX model.")
    var model: String

    @Option(help: "Utterances (repeatable).")
    var data: [String]

    @Option(help: "The tokenizer.json (default: the one beside the model).")
    var tokenizer: String?

    @Option(help: "How many utterances to use (spread evenly over the data).")
    var samples: Int = 1000

    @Option(help: "Threshold method: minmax, percentile (99.99) or entropy (KL).")
    var method: CalibrationMethod = .entropy

    @Option(help: "Batch size for the calibration runs.")
    var batchSize: Int = 16

    @Option(name: .shortAndLong, help: "Where to write the calibration cache (JSON).")
    var output: String = "calibration.json"

    func validate() throws {
        guard !data.isEmpty else { throw ValidationError("give the utterances with --data FILE") }
        guard samples >= 1, batchSize >= 1 else { throw ValidationError("--samples and --batch-size must be at least 1") }
    }

    func run() throws {
        let modelURL = URL(fileURLWithPath: model)
        let tokenizerURL = URL(fileURLWithPath: tokenizer ?? modelURL.deletingLastPathComponent().appendingPathComponent("tokenizer.json").path)
        let examples = NLUDataset.sample(try NLUDataset.load(data), count: samples)
        if examples.count < 1000 {
            FileHandle.standardError.write(Data("warning: calibrating on \(examples.count) utterances; INT8 scales are reliable from about 1000 representative ones\n".utf8))
        }
        let compiled = try Progress.step(1, of: 3, "optimizing \(modelURL.lastPathComponent) (fp32)") {
            try PlanCompiler(precision: "fp32").compile(modelURL, log: { _ in })
        }
        let calibrator = Calibrator(graph: compiled.plan.graph)
        let runner = NLURunner(tokenizer: try WordPieceTokenizer(contentsOf: tokenizerURL), batchSize: batchSize)
        var lastReport = ContinuousClock.now
        let histograms = try Progress.step(2, of: 3, "running \(examples.count) utterances, observing \(calibrator.observedValues.count) GEMM inputs") {
            try calibrator.collect(texts: examples.map(\.text), runner: runner) { done, total in
                if ContinuousClock.now - lastReport > .seconds(2) || done == total {
                    lastReport = ContinuousClock.now
                    Progress.note("\(done)/\(total) utterances")
                }
            }
        }
        let table = calibrator.table(
            histograms: histograms, method: method, model: modelURL.lastPathComponent, modelSHA256: compiled.plan.header.sourceModelSHA256,
            samples: examples.count, data: data, kilnVersion: KilnVersion.current)
        try Progress.step(3, of: 3, "writing \(output)") { try table.write(to: URL(fileURLWithPath: output)) }
        for (name, entry) in table.tensors.sorted(by: { $0.key < $1.key }) {
            print(String(format: "%@  min %.4g  max %.4g  threshold %.4g (%@)", name.padding(toLength: 48, withPad: " ", startingAt: 0), entry.min, entry.max, entry.threshold, method.rawValue))
        }
        print("wrote \(output): \(table.tensors.count) tensors, \(examples.count) utterances, \(method.rawValue)")
    }
}

extension CalibrationMethod: ExpressibleByArgument {}
