import ArgumentParser
import Foundation
import KilnCore
import KilnKernels
import KilnONNX
import KilnPasses
import KilnRuntime

/// `kiln build MODEL.onnx -o MODEL.kiln`: import, optimize, check, and write a plan.
struct BuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Compile an ONNX model into an optimized engine plan (.kiln) for this CPU.",
        discussion: """
            Imports the model, runs Kiln's optimization passes (constant and shape folding,
            dead-code and common-subexpression elimination, LayerNorm / GELU / GEMM+bias /
            residual / QKV / attention fusions, precision assignment, memory planning), binds
            the result to this CPU's kernels, checks it against the unoptimized model on a
            sample batch, and writes the plan.

            Examples:
              kiln build models/support-en/1/model.onnx -o support-en.kiln
              kiln build model.onnx -o model.bf16.kiln --precision bf16
              kiln build model.onnx -o model.kiln --dump-after attention-fusion
            """
    )

    @Argument(help: "The ONNX model to compile.")
    var model: String

    @Option(name: .shortAndLong, help: "Where to write the plan (default: MODEL with .kiln).")
    var output: String?

    @Option(help: "cpu (default), or cuda: an engine for the NVIDIA GPU present (--precision fp16, or int8 with --calibration).")
    var target: String = "cpu"

    @Option(help: "The GPU ordinal for --target cuda.")
    var device: Int = 0

    @Option(help: ArgumentHelp(
        "--target cuda: a cuBLASLt autotuning cache to reuse and extend (JSON; created if missing). Choices are reused only on the same GPU model and cuBLASLt version; other shapes are timed and added.",
        valueName: "file"))
    var timingCache: String?

    @Option(help: "fp32, bf16 (needs AVX512_BF16; the NLU heads stay fp32 unless --bf16-heads), int8 (needs --calibration) or int8-dynamic.")
    var precision: String = "fp32"

    @OptionGroup(title: "INT8")
    var int8Options: Int8BuildOptions

    @Flag(help: "Run the NLU heads (intent/slot projections) in bf16 too.")
    var bf16Heads = false

    @Option(help: "Largest batch the memory plan is sized for.")
    var maxBatch: Int = 16

    @Option(help: "Longest sequence (tokens) the memory plan is sized for.")
    var maxSeq: Int = 128

    @Option(help: ArgumentHelp("Print the graph after this pass (repeatable; 'all' for every pass).", valueName: "pass"))
    var dumpAfter: [String] = []

    @Flag(help: "Skip the check of the optimized engine against the unoptimized model.")
    var noVerify = false

    @Option(help: "Largest max-abs difference the check accepts.")
    var tolerance: Float = 1e-4

    func validate() throws {
        if target == "cuda" { return try CUDABuild.validate(self) }
        if timingCache != nil { throw ValidationError("--timing-cache is for --target cuda (cuBLASLt autotuning)") }
        guard target == "cpu" else { throw ValidationError("--target must be cpu or cuda") }
        guard ["fp32", "bf16", "int8", "int8-dynamic"].contains(precision) else {
            throw ValidationError("--precision must be fp32, bf16, int8 or int8-dynamic")
        }
        try int8Options.validate(precision: precision)
        guard maxBatch >= 1, maxSeq >= 2 else { throw ValidationError("--max-batch must be >= 1 and --max-seq >= 2") }
        let known = Set(KilnOptimizer.standardPassNames + ["all"])
        for name in dumpAfter where !known.contains(name) {
            throw ValidationError("unknown pass '\(name)' for --dump-after; passes: \(KilnOptimizer.standardPassNames.joined(separator: ", "))")
        }
    }

    func run() throws {
        if target == "cuda" { return try CUDABuild.run(self) }
        let started = ContinuousClock.now
        let sourceURL = URL(fileURLWithPath: model)
        let outputPath = output ?? sourceURL.deletingPathExtension().appendingPathExtension("kiln").path
        let compiler = PlanCompiler(
            precision: precision, keepHeadsInFP32: !bf16Heads, maxBatch: maxBatch, maxSeq: maxSeq, dumpAfter: Set(dumpAfter),
            int8: try int8Options.settings(precision: precision, model: sourceURL))

        let compiled = try Progress.step(1, of: 4, "importing and optimizing \(sourceURL.lastPathComponent)") {
            try compiler.compile(sourceURL, log: { Progress.note($0) })
        }
        Progress.note(compiled.optimization.summary)

        let engine = try Progress.step(2, of: 4, "binding kernels (packing weights)") { try Engine(plan: compiled.plan) }
        for (op, counts) in engine.kernelSummary.sorted(by: { $0.key < $1.key }) where op.hasPrefix("kiln") || op == "Softmax" {
            Progress.note("\(op): \(counts)")
        }
        Progress.note(engine.packingDescription)

        if !noVerify {
            try Progress.step(3, of: 4, "checking against the unoptimized model (batch 2, seq 9)") {
                let error = try EngineCheck.maxAbsDifference(engine: engine, reference: ReferenceExecutor(graph: compiled.sourceGraph))
                Progress.note("max-abs difference \(error) (tolerance \(tolerance))")
                guard error <= tolerance || (precision != "fp32" && error.isFinite) else {
                    throw KilnError.invalidModel("the optimized engine differs from the model by \(error) > \(tolerance); this is a Kiln bug: please report it with the model")
                }
            }
        }

        try Progress.step(4, of: 4, "writing \(outputPath)") {
            try PlanFile.write(compiled.plan, to: URL(fileURLWithPath: outputPath))
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: outputPath)[.size] as? Int) ?? 0
        let header = compiled.plan.header
        print("built \(outputPath) (\(ByteCountFormatter.string(fromByteCount: Int64(size), countStyle: .file)), \(header.precision), \(header.target.architecture)) in \((ContinuousClock.now - started).formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1))))")
    }
}

/// Progress lines on standard error, so standard output stays for results.
enum Progress {
    static func step<T>(_ index: Int, of total: Int, _ title: String, _ body: () throws -> T) throws -> T {
        FileHandle.standardError.write(Data("[\(index)/\(total)] \(title)...\n".utf8))
        let start = ContinuousClock.now
        let result = try body()
        note("done in \((ContinuousClock.now - start).formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))")
        return result
    }

    static func note(_ line: String) {
        FileHandle.standardError.write(Data("      \(line)\n".utf8))
    }
}
