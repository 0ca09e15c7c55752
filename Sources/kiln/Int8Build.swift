import Foundation
import KilnCalibration
import KilnCore
import KilnPasses
import KilnText
import ArgumentParser

/// What `kiln build --precision int8 | int8-dynamic` adds to plan compilation: the
/// quantization pass after Kiln's fp32 optimizer, optionally preceded by the mixed-precision
/// search that picks which GEMMs stay fp32.
struct Int8Settings: Sendable {
    /// Static activation scales by GEMM input value; nil = dynamic (scales computed per call).
    var activationScales: [String: Float]?
    /// GEMMs that stay fp32 regardless of the search.
    var keepInFP32: Set<String> = []
    /// Quantize the intent/slot heads too.
    var quantizeHeads = false
    /// Given the optimized fp32 graph, returns more GEMMs to keep fp32 (the sensitivity search).
    var chooseKeepInFP32: (@Sendable (Graph) throws -> Set<String>)?

    /// Quantizes `result.graph` in place and records the pass report.
    func apply(to result: inout OptimizationResult, log: (String) -> Void) throws {
        var kept = keepInFP32
        if let chooseKeepInFP32 { kept.formUnion(try chooseKeepInFP32(result.graph)) }
        var report = try QuantizationPass(activationScales: activationScales, keepInFP32: kept, quantizeHeads: quantizeHeads).run(&result.graph)
        report.nodesBefore = result.graph.nodes.count
        report.nodesAfter = result.graph.nodes.count
        log(report.summary)
        for note in report.notes { log(note) }
        result.reports.append(report)
    }
}

/// Per-layer precision of a plan's graph: what `kiln inspect` lists.
enum LayerPrecision {
    /// `(node, precision, detail)` for every FusedMatMul and Attention, in graph order.
    static func rows(_ graph: Graph) -> [(node: String, precision: String, detail: String)] {
        graph.nodes.compactMap { node in
            guard node.domain == KilnOperators.domain, node.opType == KilnOperators.fusedMatMul || node.opType == KilnOperators.attention else { return nil }
            var precision = "fp32"
            if case .string(let value) = node.attributes[KilnOperators.precisionAttribute] { precision = value }
            var detail = node.opType
            if node.isInt8MatMul {
                if case .float(let scale) = node.attributes[KilnOperators.inputScaleAttribute] {
                    detail += String(format: ", static activation scale %.5g", scale)
                } else {
                    detail += ", dynamic activation scale"
                }
            }
            return (node.name, precision, detail)
        }
    }
}

/// `kiln build` options for INT8 plans.
struct Int8BuildOptions: ParsableArguments {
    @Option(help: "Calibration cache from `kiln calibrate` (required for --precision int8).")
    var calibration: String?

    @Option(help: "Re-derive thresholds from the cache's histograms with this method (minmax, percentile, entropy).")
    var calibrationMethod: CalibrationMethod?

    @Option(help: ArgumentHelp("Keep this GEMM (node name, see `kiln inspect`) in fp32 (repeatable).", valueName: "node"))
    var keepFP32: [String] = []

    @Flag(help: "Quantize the intent/slot heads too (they stay fp32 by default: the slot head is the most sensitive layer).")
    var int8Heads = false

    @Option(help: "Mixed precision: keep the most sensitive GEMMs fp32 until intent drops at most this many points (needs --sensitivity-data).")
    var maxIntentDrop: Double?

    @Option(help: "Mixed precision: ... until slot F1 drops at most this many points (needs --sensitivity-data).")
    var maxSlotF1Drop: Double?

    @Option(help: "Labelled utterances for the sensitivity search (repeatable; formats as `kiln verify --data`).")
    var sensitivityData: [String] = []

    @Option(help: "How many labelled utterances the sensitivity search scores each candidate on.")
    var sensitivitySamples: Int = 300

    @Option(help: "tokenizer.json for the sensitivity search (default: beside the model).")
    var tokenizer: String?

    @Option(help: ArgumentHelp(
        "Noise margin of the sensitivity search, in standard errors of the sample's paired drop (0: trust the measured drop).",
        valueName: "z"))
    var sensitivityConfidence: Double = 1

    func validate(precision: String) throws {
        let wantsSearch = maxIntentDrop != nil || maxSlotF1Drop != nil
        if !precision.hasPrefix("int8") {
            if calibration != nil || wantsSearch || !keepFP32.isEmpty || int8Heads {
                throw ValidationError("--calibration, --keep-fp32, --int8-heads and --max-*-drop apply to --precision int8 / int8-dynamic")
            }
            return
        }
        if precision == "int8" && calibration == nil {
            throw ValidationError("--precision int8 needs --calibration FILE (make one with `kiln calibrate`), or use --precision int8-dynamic")
        }
        if wantsSearch && sensitivityData.isEmpty {
            throw ValidationError("--max-intent-drop / --max-slot-f1-drop need labelled --sensitivity-data")
        }
    }

    /// The settings for `precision` (nil for non-INT8 precisions).
    func settings(precision: String, model: URL) throws -> Int8Settings? {
        guard precision.hasPrefix("int8") else { return nil }
        var scales: [String: Float]?
        if precision == "int8", let calibration {
            let digest: String
            do { digest = SHA256.hexDigest(try Data(contentsOf: model, options: .alwaysMapped)) } catch {
                throw KilnError.io("cannot read model \(model.path): \(error.localizedDescription)")
            }
            var table = try CalibrationTable.read(URL(fileURLWithPath: calibration), expectingModelSHA256: digest)
            if let calibrationMethod { table = table.rethresholded(calibrationMethod) }
            if table.samples < 1000 {
                FileHandle.standardError.write(Data("warning: \(calibration) was computed on \(table.samples) utterances (< 1000)\n".utf8))
            }
            scales = table.activationScales()
        }
        var settings = Int8Settings(activationScales: scales, keepInFP32: Set(keepFP32), quantizeHeads: int8Heads)
        if maxIntentDrop != nil || maxSlotF1Drop != nil {
            settings.chooseKeepInFP32 = try searchClosure(model: model, scales: scales)
        }
        return settings
    }

    private func searchClosure(model: URL, scales: [String: Float]?) throws -> @Sendable (Graph) throws -> Set<String> {
        let folder = model.deletingLastPathComponent()
        let card = try NLUModelCard(contentsOf: folder.appendingPathComponent("model.json"))
        let tokenizerURL = URL(fileURLWithPath: tokenizer ?? folder.appendingPathComponent("tokenizer.json").path)
        let runner = NLURunner(tokenizer: try WordPieceTokenizer(contentsOf: tokenizerURL))
        let examples = NLUDataset.sample(try NLUDataset.load(sensitivityData), count: sensitivitySamples)
        let (intentTolerance, slotTolerance, quantizeHeads) = (maxIntentDrop ?? .infinity, maxSlotF1Drop ?? .infinity, int8Heads)
        let extraKept = Set(keepFP32)
        let confidence = sensitivityConfidence
        return { graph in
            Progress.note("sensitivity search on \(examples.count) labelled utterances")
            let search = MixedPrecisionSearch(
                graph: graph, activationScales: scales, quantizeHeads: quantizeHeads, examples: examples, runner: runner,
                scorer: NLUScorer(card: card), maxIntentDrop: intentTolerance, maxSlotF1Drop: slotTolerance, alwaysFP32: extraKept,
                confidence: confidence)
            let result = try search.run(log: { Progress.note($0) })
            Progress.note(String(
                format: "mixed precision: %d GEMMs kept fp32 (%@); intent %.2f -> %.2f (pure int8 %.2f), slot F1 %.2f -> %.2f (pure int8 %.2f)%@",
                result.keptFP32.count, result.keptFP32.joined(separator: ", "), result.fp32.intent, result.mixed.intent, result.pureInt8.intent,
                result.fp32.slotF1, result.mixed.slotF1, result.pureInt8.slotF1, result.withinTolerance ? "" : "; NOT within tolerance even so"))
            return Set(result.keptFP32)
        }
    }
}

extension LayerPrecision {
    /// Prints one line per GEMM/attention node with its precision, and a count per precision.
    static func print(_ graph: Graph) {
        let rows = rows(graph)
        guard !rows.isEmpty else { return }
        let counts = Dictionary(grouping: rows, by: \.precision).mapValues(\.count)
        Swift.print("layers:     " + counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
        for row in rows { Swift.print("  \(row.precision.padding(toLength: 6, withPad: " ", startingAt: 0)) \(row.node)  (\(row.detail))") }
    }
}
