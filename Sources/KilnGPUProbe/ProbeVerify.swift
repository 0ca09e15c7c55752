// `verify` on the GPU machine: the task-level check of a CUDA engine (fp16, or int8 from a
// `kiln calibrate` cache) without the full `kiln`, whose server stack makes its static build
// slow. Same library path as `kiln build --target cuda` + `kiln verify --reference-engine
// reference`: Kiln's optimizer, the CPU int8 path's QuantizationPass with the cache's scales,
// the CUDA engine, and KilnCalibration's VerificationReport against the fp32 reference executor
// (intent drop <= 0.5, slot F1 drop <= 1.0), minus the plan file round trip.
import Foundation
import KilnCUDA
import KilnCalibration
import KilnCore
import KilnKernels
import KilnONNX
import KilnPasses
import KilnRuntime
import KilnText

/// A ``CUDAEngine`` seen as an ``InferenceEngine`` (kiln run, serve, verify; the probe's verify).
public struct CUDAInferenceEngine: InferenceEngine {
    public let engine: CUDAEngine
    public init(engine: CUDAEngine) { self.engine = engine }
    public var inputSignature: [ValueInfo] { engine.inputSignature }
    public var outputSignature: [ValueInfo] { engine.outputSignature }
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] { try engine.run(inputs) }
}

/// Options of `verify MODEL.onnx --data PATH [--data PATH ...] [--calibration CACHE [--keep-fp32 NODE ...]] [--samples N]`.
struct ProbeVerifyOptions {
    var model = ""
    var data: [String] = []
    var calibration: String?
    /// GEMMs kept fp16 in an int8 engine (mixed precision, e.g. the CPU sensitivity search's choice).
    var keepFP32: Set<String> = []
    var samples: Int?
    var json: String?
}

/// Returns whether the engine passed; prints `kiln verify`'s table and a VERIFY line.
func verify(_ options: ProbeVerifyOptions) throws -> Bool {
    let url = URL(fileURLWithPath: options.model)
    let bytes = try Data(contentsOf: url, options: .alwaysMapped)
    let directory = url.deletingLastPathComponent()
    let source = try ONNXImporter().load(data: bytes, directory: directory, source: url.lastPathComponent)
    let opset = source.opset
    var graph = try KilnOptimizer.optimize(
        source, evaluate: { try ReferenceKernels.run($0, inputs: $1, opset: opset) }, options: OptimizationOptions(memoryPlanShape: nil)).graph
    var precision = "fp16"
    if let calibration = options.calibration {
        let table = try CalibrationTable.read(URL(fileURLWithPath: calibration), expectingModelSHA256: SHA256.hexDigest(bytes))
        let report = try QuantizationPass(activationScales: table.activationScales(), keepInFP32: options.keepFP32).run(&graph)
        print("\(calibration) (\(table.samples) utterances): \(report.summary)")
        precision = options.keepFP32.isEmpty ? "int8" : "int8 mixed"
    }
    let started = Date()
    let engine = try CUDAEngine(
        graph: graph, options: CUDAEngineOptions(maxBatch: 16, maxSequence: 128, autotune: true),
        hostEvaluator: { node, inputs, opset in try ReferenceKernels.run(node, inputs: inputs, opset: opset) })
    let onHost = engine.placement.filter { $0.value.host > 0 }.map { "\($0.key) \($0.value.host)" }.sorted()
    print(String(format: "CUDA %@ engine built in %.1f s, arena %d MiB; on the host: %@", precision, Date().timeIntervalSince(started),
                 engine.arenaBytes >> 20, onHost.joined(separator: ", ")))
    let card = try NLUModelCard(contentsOf: directory.appendingPathComponent("model.json"))
    var examples = try NLUDataset.load(options.data)
    if let samples = options.samples { examples = NLUDataset.sample(examples, count: samples) }
    let runner = NLURunner(tokenizer: try WordPieceTokenizer(contentsOf: directory.appendingPathComponent("tokenizer.json")))
    let report = try VerificationReport.run(
        engine: CUDAInferenceEngine(engine: engine), reference: ReferenceExecutor(graph: source), examples: examples, runner: runner,
        scorer: NLUScorer(card: card), maxIntentDrop: 0.5, maxSlotF1Drop: 1.0)
    print(report.table(engineName: "CUDA engine (\(precision))", referenceName: "fp32 reference executor"))
    if let json = options.json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        try encoder.encode(report).write(to: URL(fileURLWithPath: json))
    }
    print(String(format: "VERIFY %@ %@ %@: %d utterances, intent drop %.2f, slot F1 drop %.2f (tolerances 0.5 / 1.0)", precision,
                 report.passed ? "PASS" : "FAIL", directory.deletingLastPathComponent().lastPathComponent, examples.count,
                 report.intentDrop, report.slotF1Drop))
    return report.passed
}

/// Parses verify's options (values follow their flag).
func parseVerify(_ arguments: [String]) -> ProbeVerifyOptions? {
    var options = ProbeVerifyOptions()
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        let value = index + 1 < arguments.count ? arguments[index + 1] : nil
        switch argument {
        case "--data": guard let value else { return nil }; options.data.append(value); index += 1
        case "--calibration": options.calibration = value; index += 1
        case "--keep-fp32": guard let value else { return nil }; options.keepFP32.insert(value); index += 1
        case "--samples": options.samples = value.flatMap { Int($0) }; index += 1
        case "--json": options.json = value; index += 1
        default:
            guard options.model.isEmpty, !argument.hasPrefix("--") else { return nil }
            options.model = argument
        }
        index += 1
    }
    return options.model.isEmpty || options.data.isEmpty ? nil : options
}
