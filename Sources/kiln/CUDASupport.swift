// CUDA support for the `kiln` tool: building CUDA plans and running them behind InferenceEngine.
// Why here: KilnCUDA depends only on KilnCore (the layering in DESIGN.md), so the adapter to
// KilnRuntime's protocol and the wiring to the reference kernels (for the few host-side nodes)
// live in the executable that sees both.
import ArgumentParser
import Foundation
import KilnCUDA
import KilnGPUProbe
import KilnCore
import KilnKernels
import KilnRuntime
import KilnServe

// CUDAInferenceEngine (a CUDAEngine as an InferenceEngine) lives in KilnGPUProbe, which the
// GPU machine's probe shares.

enum CUDASupport {
    /// Host-side nodes of a CUDA engine run on the reference kernels.
    static let hostEvaluator: HostEvaluator = { node, inputs, opset in try ReferenceKernels.run(node, inputs: inputs, opset: opset) }

    /// An engine for a CUDA plan on GPU `ordinal`; refuses plans built for another GPU
    /// architecture, cuBLASLt version or a newer driver (CUDAPlanTarget.checkCompatible).
    static func engine(graph: Graph, header: PlanHeader, ordinal: Int = 0) throws -> CUDAInferenceEngine {
        let device = try CUDADriver.device(ordinal)
        // Check the architecture before compiling anything for this GPU.
        guard header.target.kind == CUDAPlanTarget.kind, header.target.architecture == device.architecture else {
            throw CUDAError.planMismatch(
                "plan was built for \(header.target.kind) \(header.target.architecture) (\(header.buildOptions["cuda_device"] ?? "unknown device")); this GPU is \(device.name) (\(device.architecture))")
        }
        let engine = try CUDAEngine(
            graph: graph,
            options: CUDAEngineOptions(
                deviceOrdinal: ordinal, maxBatch: Int(header.buildOptions["max_batch"] ?? "") ?? 16,
                maxSequence: Int(header.buildOptions["max_seq"] ?? "") ?? 128),
            hostEvaluator: hostEvaluator)
        try CUDAPlanTarget.checkCompatible(header, device: engine.device, versions: engine.versions)
        return CUDAInferenceEngine(engine: engine)
    }

    /// Reads a timing cache file; nil when it does not exist yet (the build creates it).
    static func loadTimingCache(_ url: URL) throws -> GemmTimingCache? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do { return try GemmTimingCache.load(from: url) } catch {
            throw ValidationError("--timing-cache \(url.path) is not a Kiln timing cache (\(error)); delete it or name another file")
        }
    }

    /// Turns a compiled CPU-independent plan into a CUDA fp16 (or int8) plan: builds the engine on the GPU
    /// that is present (NVRTC kernels for its arch, cuBLASLt algorithms timed per GEMM shape),
    /// checks it against the reference executor and records GPU, driver and library versions.
    /// INT8 plans (`precision` "int8": the graph carries the quantization pass's int8 GEMMs): the
    /// max-abs difference to the fp32 model is printed but not gated (int8 logits differ by whole
    /// units where fp16 differs by 1e-2; the CPU int8 path sees 4.4 on snips): the task-level
    /// check is `kiln verify`. (The reference executor has no int8 FusedMatMul kernel, so the
    /// quantized graph cannot serve as the reference yet.)
    static func makePlan(from compiled: PlanCompiler.Output, ordinal: Int, maxBatch: Int, maxSeq: Int, tolerance: Float, verify: Bool,
                         precision: String = "fp16", timingCache: URL? = nil) throws -> Plan {
        let engine = try Progress.step(2, of: 4, "building the CUDA engine (NVRTC kernels, cuBLASLt autotuning)") {
            var options = CUDAEngineOptions(deviceOrdinal: ordinal, maxBatch: maxBatch, maxSequence: maxSeq, autotune: true)
            options.timingCache = try timingCache.flatMap { try loadTimingCache($0) }
            let engine = try CUDAEngine(graph: compiled.plan.graph, options: options, hostEvaluator: hostEvaluator)
            if let timingCache {
                let cache = engine.timingCache
                if let loaded = options.timingCache, !loaded.sameScope(as: cache) {
                    Progress.note("timing cache \(timingCache.path) is for \(loaded.device) \(loaded.architecture), cuBLASLt \(loaded.cublasLt): not reused, rewritten for this GPU")
                }
                try cache.write(to: timingCache)
                let (reused, timed) = engine.autotuning
                Progress.note("cuBLASLt autotuning: \(reused) GEMM shapes from the timing cache, \(timed) timed; \(cache.choices.count) shapes in \(timingCache.path)")
            }
            return engine
        }
        Progress.note("\(engine.device.name) \(engine.device.architecture), driver \(engine.versions.driver), cuBLASLt \(engine.versions.cublasLt), NVRTC \(engine.versions.nvrtc); arena \(engine.arenaBytes >> 20) MiB")
        for (op, counts) in engine.placement.sorted(by: { $0.key < $1.key }) { Progress.note("\(op): \(counts.gpu) on the GPU, \(counts.host) on the host") }
        if verify {
            let int8 = precision == "int8"
            try Progress.step(3, of: 4, "checking against the unoptimized model (batch 2, seq 9)") {
                let reference = try ReferenceExecutor(graph: compiled.sourceGraph)
                let error = try EngineCheck.maxAbsDifference(engine: CUDAInferenceEngine(engine: engine), reference: reference)
                if int8 {
                    Progress.note("max-abs difference \(error) (int8: not gated; run `kiln verify` for the task-level loss)")
                    return
                }
                Progress.note("max-abs difference \(error) (\(precision) tolerance \(tolerance))")
                guard error <= tolerance else {
                    throw KilnError.invalidModel("the CUDA \(precision) engine differs from the model by \(error) > \(tolerance)")
                }
            }
        }
        var plan = compiled.plan
        plan.header.target = CUDAPlanTarget.target(for: engine.device)
        plan.header.precision = precision
        plan.header.buildOptions.merge(CUDAPlanTarget.buildOptions(device: engine.device, versions: engine.versions)) { $1 }
        plan.header.buildOptions["max_batch"] = String(maxBatch)
        plan.header.buildOptions["max_seq"] = String(maxSeq)
        plan.sections["cuda-gemm-timing-cache"] = try JSONEncoder().encode(engine.gemmChoices)
        return plan
    }
}

/// `kiln serve --device cuda`: model versions served by CUDA fp16 engines.
enum CUDAServe {
    /// Parses `cuda` or `cuda:N` into a GPU ordinal; nil for `cpu`.
    static func ordinal(device: String) throws -> Int? {
        if device == "cpu" { return nil }
        if device == "cuda" { return 0 }
        if device.hasPrefix("cuda:"), let ordinal = Int(device.dropFirst(5)), ordinal >= 0 { return ordinal }
        throw ValidationError("--device must be cpu, cuda or cuda:N, not '\(device)'")
    }

    /// Adds `kiln_gpu_memory_used_bytes`, `kiln_gpu_memory_total_bytes` and
    /// `kiln_gpu_utilization_ratio` for GPU `ordinal` to /metrics, read through NVML at each
    /// scrape; where NVML is missing the server runs without them and says so once.
    static func publishGPUMetrics(ordinal: Int, on metrics: ServeMetrics, log: @escaping @Sendable (String) -> Void) {
        let monitor: GPUMonitor
        do { monitor = try GPUMonitor(ordinals: [ordinal]) } catch {
            log("GPU metrics off: \(error)")
            return
        }
        metrics.addScrapeHook { metrics in
            for reading in monitor.read() {
                metrics.setGPU(gpu: reading.ordinal, name: reading.name, memoryUsedBytes: reading.memoryUsedBytes,
                               memoryTotalBytes: reading.memoryTotalBytes, utilization: reading.utilization)
            }
        }
    }

    /// Each call (one per served instance) optimizes the version's model.onnx in fp32 (heads kept
    /// fp32), builds its own CUDA engine on GPU `ordinal` (own stream and arenas, so instances
    /// overlap one another's host work with GPU work), sized for `maxBatch` x the card's
    /// max_seq_length, and captures the CUDA graphs of every shape bucket before serving.
    static func engineFactory(ordinal: Int, maxBatch: Int, log: @escaping @Sendable (String) -> Void) -> EngineFactory {
        return { directory in
            let maxSeq = (try? ModelCard.load(from: directory.cardURL))?.maxSeqLength ?? 128
            let started = ContinuousClock.now
            let compiler = PlanCompiler(precision: "fp32", keepHeadsInFP32: true, maxBatch: maxBatch, maxSeq: maxSeq)
            let compiled = try compiler.compile(directory.modelURL, log: { _ in })
            let engine = try CUDAEngine(
                graph: compiled.plan.graph,
                options: CUDAEngineOptions(deviceOrdinal: ordinal, maxBatch: maxBatch, maxSequence: maxSeq),
                hostEvaluator: CUDASupport.hostEvaluator)
            let buckets = try engine.prepareGraphs(upToBatch: maxBatch, sequence: maxSeq)
            log("\(directory.name) v\(directory.version): CUDA fp16 engine on \(engine.device.name) (GPU \(ordinal)), batch <= \(maxBatch), seq <= \(maxSeq), arena \(engine.arenaBytes >> 20) MiB, \(buckets) shape buckets captured as CUDA graphs in \(ContinuousClock.now - started)")
            return CUDAInferenceEngine(engine: engine)
        }
    }
}

/// `kiln build --target cuda`: the GPU half of BuildCommand (kept here so BuildCommand only
/// gains the option and a hand-off).
enum CUDABuild {
    static func validate(_ command: BuildCommand) throws {
        guard command.precision == "fp16" || command.precision == "int8" else {
            throw ValidationError(
                "--target cuda builds fp16 engines (fp16 GEMMs with fp32 accumulation, fp32 NLU heads) or int8 engines (static scales from --calibration): use --precision fp16 or int8")
        }
        try command.int8Options.validate(precision: command.precision)
        // --max-intent-drop / --max-slot-f1-drop: the mixed-precision search runs as for CPU plans,
        // scoring candidates on this machine's CPU int8 engine (the same quantized graph the GPU
        // runs; needs oneDNN), and the GEMMs it keeps fp32 stay fp16 on the GPU.
        guard command.maxBatch >= 1, command.maxSeq >= 2 else { throw ValidationError("--max-batch must be >= 1 and --max-seq >= 2") }
    }

    static func run(_ command: BuildCommand) throws {
        let started = ContinuousClock.now
        // Find the GPU before optimizing (seconds to minutes) a model there is nowhere to build for.
        _ = try CUDADriver.device(command.device)
        let sourceURL = URL(fileURLWithPath: command.model)
        let outputPath = command.output ?? sourceURL.deletingPathExtension().appendingPathExtension("cuda.kiln").path
        // The graph is optimized in fp32; the CUDA engine lowers it to fp16 kernels itself.
        // int8: optimized in fp32, then the quantization pass (the CPU int8 path's, same calibration cache).
        let compiler = PlanCompiler(precision: command.precision == "int8" ? "int8" : "fp32", keepHeadsInFP32: true, maxBatch: command.maxBatch,
                                    maxSeq: command.maxSeq, dumpAfter: Set(command.dumpAfter),
                                    int8: try command.int8Options.settings(precision: command.precision, model: sourceURL))
        let compiled = try Progress.step(1, of: 4, "importing and optimizing \(sourceURL.lastPathComponent)") {
            try compiler.compile(sourceURL, log: { Progress.note($0) })
        }
        let plan = try CUDASupport.makePlan(
            from: compiled, ordinal: command.device, maxBatch: command.maxBatch, maxSeq: command.maxSeq,
            tolerance: max(command.tolerance, 2e-2), verify: !command.noVerify, precision: command.precision,
            timingCache: command.timingCache.map { URL(fileURLWithPath: $0) })
        try Progress.step(4, of: 4, "writing \(outputPath)") { try PlanFile.write(plan, to: URL(fileURLWithPath: outputPath)) }
        print("built \(outputPath) (\(command.precision), cuda \(plan.header.target.architecture), \(plan.header.buildOptions["cuda_device"] ?? "")) in \((ContinuousClock.now - started).formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1))))")
    }
}

/// `kiln gpu-probe …` (hidden): the GPU machine's probe (KilnGPUProbe: info, check, bench) inside
/// `kiln`, so one static binary is all that travels to a GPU machine (tools/gpu-check).
struct GPUProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpu-probe", abstract: "GPU machine checks: info | check MODEL [OUT] [--int8] | bench MODEL SEQ BATCHES [...]", shouldDisplay: false)

    @Argument(parsing: .captureForPassthrough)
    var arguments: [String] = []

    func run() throws {
        let status = GPUProbe.main(arguments)
        if status != 0 { throw ExitCode(status) }
    }
}
