// CUDAEngine: an optimized Kiln graph running on one NVIDIA GPU.
// Build: bind every node (GEMM weights to fp16 on the device, kernels compiled by NVRTC for this
// GPU), then size the device and pinned arenas by running the graph once at the largest shape
// (max batch x max sequence) and keeping the high-water marks: requests never allocate.
// Run: serialised per engine (one stream, one arena). Requests are padded up to a shape bucket
// (batch 1, 2, 4, 8, then multiples of 8; sequence a multiple of 16; padded rows and tokens are
// masked out and sliced off the outputs), so a few dozen CUDA graphs cover every request shape.
// The first call of a bucket runs eagerly, the second captures the device work up to the first
// download in a CUDA graph, later calls replay it: only the captured run's host steps and
// pinned staging writes are redone (ReplayProgram), then one cuGraphLaunch.
import CKilnCUDA
import Dispatch
import Foundation
import KilnCore

/// How a CUDA engine is built.
public struct CUDAEngineOptions: Sendable {
    /// The GPU (one engine per device; several engines give multi-GPU serving).
    public var deviceOrdinal = 0
    /// Largest batch and sequence the arenas are sized for.
    public var maxBatch = 16
    public var maxSequence = 128
    /// Capture CUDA graphs per input shape.
    public var useGraphs = true
    /// Time cuBLASLt's candidate algorithms per GEMM shape and keep the fastest.
    public var autotune = true
    /// Pad requests up to shape buckets (needs an attention-mask input; see ShapeBuckets).
    public var bucketShapes = true
    /// Fold erf GELU into the FFN GEMM as cuBLASLt's tanh-form GELU epilogue: saves a kernel and
    /// a pass over the FFN activations per layer (BERT-base batch 256 seq 32 on an H100: 4.23 vs
    /// 4.80 ms) but measured max-abs on the shipped models grew 2-3x (snips 1.4e-2 -> 3.8e-2,
    /// support-en 3.0e-2 -> 5.2e-2, past PyTorch fp16's own error), so it is off by default;
    /// KILN_CUDA_GELU_EPILOGUE=1 turns it on.
    public var geluInEpilogue = ProcessInfo.processInfo.environment["KILN_CUDA_GELU_EPILOGUE"] == "1"
    /// Tensor-core (mma.sync) attention for head 32/64 and sequences a multiple of 16 up to 128,
    /// at every batch (H100, BERT-base seq 32, one CUDA graph of 12 launches: 5.4 vs 5.7 us a
    /// launch for the SIMT kernel at batch 1, 5.6 vs 8.7 us at batch 8). Its probabilities are fp16
    /// for P·V, so its error is larger than the SIMT kernel's (support-en max-abs 3.0e-2 vs 2.0e-2,
    /// under PyTorch fp16's own 3.8e-2); KILN_CUDA_ATTENTION=simt keeps the fp32 SIMT kernel
    /// everywhere.
    public var tensorCoreAttention = ProcessInfo.processInfo.environment["KILN_CUDA_ATTENTION"] != "simt"
    /// Kiln's skinny GEMM (KernelSource `kiln_gemm_skinny_m*`) for fp16 GEMMs of up to 64 rows
    /// instead of cuBLASLt, with bias and activation fused (keeps a transposed copy of those
    /// weights: +1x fp16 weight memory). Experimental: correct on the shipped models but ~2x
    /// slower than cuBLAS per GEMM on an H100 so far (see SkinnyGemm.swift); KILN_CUDA_SKINNY_GEMM=1
    /// turns it on.
    public var skinnyGemm = ProcessInfo.processInfo.environment["KILN_CUDA_SKINNY_GEMM"] == "1"
    /// Launch Kiln's kernels with programmatic dependent launch where the GPU has it (compute
    /// capability 9.0+, a driver with cuLaunchKernelEx): a kernel is scheduled while its
    /// predecessor drains and waits for it on the GPU (KernelSource's KILN_GRID_ENTER), which
    /// hides part of the launch gap between kernels, in CUDA graphs too. KILN_CUDA_PDL=0 turns it
    /// off (for comparisons).
    public var dependentLaunch = ProcessInfo.processInfo.environment["KILN_CUDA_PDL"] != "0"
    /// Autotuning choices to reuse (a file from an earlier build, `--timing-cache`): merged into
    /// the process-wide store when they are for this GPU model and cuBLASLt version, ignored
    /// otherwise. Engines of one process share their choices whether or not this is set.
    public var timingCache: GemmTimingCache?

    public init(deviceOrdinal: Int = 0, maxBatch: Int = 16, maxSequence: Int = 128, useGraphs: Bool = true, autotune: Bool = true,
                bucketShapes: Bool = true) {
        self.deviceOrdinal = deviceOrdinal
        self.maxBatch = maxBatch
        self.maxSequence = maxSequence
        self.useGraphs = useGraphs
        self.autotune = autotune
        self.bucketShapes = bucketShapes
    }
}

/// A loaded graph on a GPU: immutable after build, thread-safe (runs are serialised).
public final class CUDAEngine: @unchecked Sendable {
    public let graph: Graph
    public let options: CUDAEngineOptions
    public let context: CUDAContext
    /// Versions a plan records: driver, cuBLASLt, NVRTC.
    public let versions: CUDAVersions
    /// Bytes of the device activation arena and of the pinned staging arena.
    public private(set) var arenaBytes = 0
    public private(set) var pinnedBytes = 0
    /// How many nodes run on the GPU / on the host, by operator.
    public let placement: [String: (gpu: Int, host: Int)]

    private let steps: [CUDAStep]
    private let module: KernelModule
    private let gemm: CuBLASLtGemm
    private let skinny: SkinnyGemmWorkspace?
    private let hostEvaluator: HostEvaluator
    private let wantsF32: Set<String>
    private let maxAttentionSequence: Int
    private let timingCacheScope: GemmTimingCache
    /// options.dependentLaunch where this GPU and driver support it.
    public let dependentLaunch: Bool
    private var arena: DeviceArena
    private var pinned: PinnedArena
    private var graphs: [String: CapturedGraph] = [:]
    /// How requests are padded to shape buckets; nil when the graph has no [batch, sequence]
    /// integer inputs with an attention mask (padding would then change results).
    private let buckets: ShapeBuckets?
    private let lock = NSLock()
    /// Where the last run's wall time went (see RunPhases).
    public private(set) var lastRunPhases = RunPhases()

    /// Per input-shape capture state.
    final class CapturedGraph {
        var eagerRuns = 0
        var prefixEnd = 0
        var exec: kcu_graph_exec?
        var program: ReplayProgram?
        var failed = false
        deinit { if let exec { _ = kcu_graph_exec_destroy(exec) } }
    }

    public var inputSignature: [ValueInfo] { graph.inputs }
    public var outputSignature: [ValueInfo] { graph.outputs }
    public var device: CUDADeviceInfo { context.device }

    /// Builds the engine on GPU `options.deviceOrdinal`.
    /// - Parameter hostEvaluator: runs nodes that stay on the CPU (pass the reference kernels).
    public init(graph: Graph, options: CUDAEngineOptions = CUDAEngineOptions(), hostEvaluator: @escaping HostEvaluator) throws {
        try CUDADriver.initialize()
        try CUDALibraries.load(.cublasLt)
        try CUDALibraries.load(.nvrtc)
        self.graph = graph
        self.options = options
        buckets = ShapeBuckets(graph: graph)
        self.hostEvaluator = hostEvaluator
        context = try CUDAContext(ordinal: options.deviceOrdinal)
        module = try KernelModule(architecture: context.device.architecture)
        gemm = try CuBLASLtGemm(autotune: options.autotune)
        versions = CUDAVersions(driver: context.device.driverVersion, cublasLt: gemm.version, nvrtc: module.nvrtcVersion)
        let scope = GemmTimingCache(device: context.device.name, architecture: context.device.architecture, cublasLt: gemm.version)
        if let loaded = options.timingCache, loaded.sameScope(as: scope) { GemmTimingCache.shared.merge(loaded) }
        gemm.timingScope = scope.scope
        timingCacheScope = scope
        dependentLaunch = options.dependentLaunch && context.device.computeCapability.major >= 9
            && Self.dependentLaunchWorks(module: module, stream: context.stream)
        let limit = context.device.sharedMemoryPerBlockOptin
        try checkDriver(kcu_func_set_attribute(module.function("kiln_attention"), 8, Int32(limit)), "cuFuncSetAttribute")  // MAX_DYNAMIC_SHARED_SIZE_BYTES
        let nodes = try graph.topologicallySorted()
        let stream = context.stream
        steps = try nodes.map { try CUDAStep.bind($0, graph: graph, stream: stream, transposedWeights: options.skinnyGemm) }
        skinny = options.skinnyGemm ? try SkinnyGemmWorkspace(multiprocessors: context.device.multiprocessors, stream: stream) : nil
        wantsF32 = try Self.float32Values(steps, graph: graph, stream: stream)
        var placement: [String: (gpu: Int, host: Int)] = [:]
        for step in steps {
            let key = step.node.domain.isEmpty ? step.node.opType : "\(step.node.domain):\(step.node.opType)"
            var entry = placement[key] ?? (0, 0)
            if step.isDevice { entry.gpu += 1 } else { entry.host += 1 }
            placement[key] = entry
        }
        self.placement = placement
        maxAttentionSequence = steps.compactMap { step -> Int? in
            guard case .attention(let heads, _, _) = step.kind else { return nil }
            let hidden = graph.valueInfo[step.node.inputs[0]]?.shape?.last?.fixedSize ?? 768
            return KernelSource.maxAttentionSequence(headSize: max(1, hidden / heads), sharedMemoryLimit: limit)
        }.min() ?? Int.max
        // Size the arenas: run once at the largest shape in generous temporary arenas.
        let (free, _) = try context.memoryInfo()
        arena = try DeviceArena(byteCount: min(free / 2, 24 << 30))
        pinned = try PinnedArena(byteCount: 512 << 20)
        _ = try execute(sampleInputs(batch: options.maxBatch, sequence: options.maxSequence), allowGraphs: false)
        let deviceNeed = arena.allocator.highWater, pinnedNeed = pinned.allocator.highWater
        arena = try DeviceArena(byteCount: deviceNeed + deviceNeed / 8 + (1 << 20))
        pinned = try PinnedArena(byteCount: pinnedNeed + pinnedNeed / 8 + (1 << 20))
        arenaBytes = arena.allocator.capacity
        pinnedBytes = pinned.allocator.capacity
    }

    /// The values to produce in fp32: graph outputs and what host steps read, and, walking back
    /// through elementwise ops, row selections and GEMMs (which then run with fp32 operands, the
    /// NLU heads), what those are computed from. fp32 weights are uploaded for such GEMMs.
    private static func float32Values(_ steps: [CUDAStep], graph: Graph, stream: kcu_stream) throws -> Set<String> {
        var wanted = Set(graph.outputs.map(\.name))
        for step in steps where !step.isDevice { wanted.formUnion(step.node.inputs) }
        for step in steps.reversed() where step.node.outputs.contains(where: wanted.contains) {
            switch step.kind {
            case .binary, .selectRow: wanted.insert(step.node.inputs[0]); if step.node.inputs.count > 1 { wanted.insert(step.node.inputs[1]) }
            case .gemm(let weights) where weights.activation == "none": wanted.insert(step.node.inputs[0])
            default: break
            }
        }
        for step in steps {
            guard case .gemm(let weights) = step.kind else { continue }
            if wanted.contains(step.node.outputs[0]), weights.activation == "none", let host = weights.hostWeights {
                weights.weights32 = try CUDAStep.upload32(host, stream: stream)
            }
            weights.hostWeights = nil
        }
        return wanted
    }

    /// Every autotuning choice this process holds for this engine's GPU model and cuBLASLt
    /// version (its own and other engines'), to write back with `kiln build --timing-cache`.
    public var timingCache: GemmTimingCache { GemmTimingCache.shared.snapshot(like: timingCacheScope) }
    /// GEMM shapes whose algorithm came from the timing cache, and those timed by this engine.
    public var autotuning: (reused: Int, timed: Int) { (gemm.reusedChoices, gemm.timedChoices) }

    /// GEMM algorithm choices made so far (shape -> candidate index), for the plan's timing cache;
    /// keyed as in a `--timing-cache` file (int8 shapes that differ only in what the
    /// dequantization kernel does share one key: cuBLASLt sees the same GEMM).
    public var gemmChoices: [String: Int] {
        Dictionary(gemm.choices.map { (CuBLASLtGemm.key($0.key), $0.value) }, uniquingKeysWith: { first, _ in first })
    }

    /// Runs the graph; inputs by name, outputs by name (fp32 host tensors).
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        lock.lock()
        defer { lock.unlock() }
        guard options.bucketShapes, let buckets else { return try execute(inputs, allowGraphs: options.useGraphs) }
        let (padded, original) = try buckets.pad(inputs, maxBatch: options.maxBatch, maxSequence: options.maxSequence)
        return try buckets.slice(execute(padded, allowGraphs: options.useGraphs), to: original)
    }

    /// Captures the CUDA graphs of every bucket up to `batch` x `sequence` now (two runs each),
    /// so no request pays for a capture; returns how many buckets were prepared.
    @discardableResult
    public func prepareGraphs(upToBatch batch: Int, sequence: Int) throws -> Int {
        guard options.useGraphs, options.bucketShapes, buckets != nil else { return 0 }
        var prepared = 0
        for b in ShapeBuckets.batchBuckets(upTo: min(batch, options.maxBatch)) {
            for s in ShapeBuckets.sequenceBuckets(upTo: min(sequence, options.maxSequence)) {
                let inputs = try sampleInputs(batch: b, sequence: s)
                for _ in 0..<2 { _ = try run(inputs) }
                prepared += 1
            }
        }
        return prepared
    }

    /// Whether a programmatic dependent launch goes through on this driver: one empty launch
    /// (zero elements) with the attribute, synchronised. A driver without cuLaunchKernelEx or
    /// one that refuses the attribute leaves the engine on plain launches instead of failing it.
    static func dependentLaunchWorks(module: KernelModule, stream: kcu_stream) -> Bool {
        guard kcu_has_dependent_launch() != 0 else { return false }
        let launcher = KernelLauncher(module: module, stream: stream, dependentLaunch: true)
        do {
            try launcher.convert(f32: 0, toF16: 0, count: 0)
            try checkDriver(kcu_stream_synchronize(stream), "cuStreamSynchronize")
            return true
        } catch {
            FileHandle.standardError.write(Data("kiln: programmatic dependent launch unavailable (\(error)); using plain launches\n".utf8))
            return false
        }
    }

    /// Runs eagerly with a GPU timer around every step (slow: one sync per step) and adds the
    /// times to `profile`; for finding where the time goes, not for serving.
    public func profiledRun(_ inputs: [String: Tensor], into profile: StepProfile) throws {
        lock.lock()
        defer { lock.unlock() }
        _ = try execute(inputs, allowGraphs: false, profile: profile)
    }

    private func execute(_ inputs: [String: Tensor], allowGraphs: Bool, profile: StepProfile? = nil) throws -> [String: Tensor] {
        try context.makeCurrent()
        arena.allocator.reset()
        pinned.allocator.reset()
        let executor = CUDAExecutor(
            stream: context.stream,
            launcher: KernelLauncher(module: module, stream: context.stream, tensorCoreAttention: options.tensorCoreAttention,
                                     dependentLaunch: dependentLaunch, multiprocessors: context.device.multiprocessors),
            gemm: gemm, arena: arena,
            pinned: pinned, host: hostEvaluator, opset: graph.opset, wantsF32: wantsF32, maxAttentionSequence: maxAttentionSequence,
            initializers: graph.initializers)
        executor.profile = profile
        executor.geluInEpilogue = options.geluInEpilogue
        executor.skinny = skinny
        for info in graph.inputs {
            guard let tensor = inputs[info.name] else { throw KilnError.invalidInput("missing input \(info.name)") }
            executor.values[info.name] = .host(tensor)
        }
        let key = graph.inputs.map { "\(inputs[$0.name]!.shape)" }.joined(separator: ";")
        let state = allowGraphs ? (graphs[key] ?? newGraphState(key)) : nil
        let started = DispatchTime.now().uptimeNanoseconds
        if let state, !state.failed, state.eagerRuns > 0, state.prefixEnd > 0 {
            try runCaptured(state, executor: executor, started: started)
        } else {
            try executor.run(steps[...], offset: 0)
            lastRunPhases = RunPhases(host: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e3)
            if let state {
                state.eagerRuns += 1
                state.prefixEnd = executor.firstDownloadStep ?? steps.count
            }
        }
        let finishing = DispatchTime.now().uptimeNanoseconds
        let outputs = try executor.hostTensors(graph.outputs.map(\.name))
        try context.synchronize()
        lastRunPhases.finish = Double(DispatchTime.now().uptimeNanoseconds - finishing) / 1e3
        return outputs
    }

    private func newGraphState(_ key: String) -> CapturedGraph? {
        guard graphs.count < 256 else { return nil }
        let state = CapturedGraph()
        graphs[key] = state
        return state
    }

    /// Replays (or first captures) the device prefix of the run, then finishes eagerly.
    private func runCaptured(_ state: CapturedGraph, executor: CUDAExecutor, started: UInt64) throws {
        let prefix = steps[0..<state.prefixEnd]
        if let exec = state.exec, let program = state.program {
            let replay = try executor.replayHostSide(steps, program: program)
            arena.allocator.reset(to: program.arenaUsed)
            pinned.allocator.reset(to: program.pinnedUsed)
            let launching = DispatchTime.now().uptimeNanoseconds
            try checkDriver(kcu_graph_launch(exec, context.stream), "cuGraphLaunch")
            lastRunPhases = RunPhases(host: Double(launching - started) / 1e3, hostSteps: replay.hostSteps, staging: replay.staging,
                                      launch: Double(DispatchTime.now().uptimeNanoseconds - launching) / 1e3)
        } else {
            try checkDriver(kcu_stream_begin_capture(context.stream, 1), "cuStreamBeginCapture")  // thread-local mode
            var captured: kcu_graph?
            executor.stagingLog = []
            do {
                try executor.run(prefix, offset: 0)
            } catch {
                _ = kcu_stream_end_capture(context.stream, &captured)
                if let captured { _ = kcu_graph_destroy(captured) }
                state.failed = true
                throw error
            }
            try checkDriver(kcu_stream_end_capture(context.stream, &captured), "cuStreamEndCapture")
            defer { if let captured { _ = kcu_graph_destroy(captured) } }
            var exec: kcu_graph_exec?
            try checkDriver(kcu_graph_instantiate(&exec, captured), "cuGraphInstantiate")
            state.exec = exec
            // A replay restores only the device values the eager tail and the outputs read: BERT-base
            // has ~150 device values, and re-inserting all of them was host time before every launch.
            let tailReads = Set(steps[state.prefixEnd...].flatMap(\.node.inputs)).union(graph.outputs.map(\.name))
            state.program = ReplayProgram(
                hostSteps: executor.hostStepsRun, staging: executor.stagingLog ?? [],
                deviceValues: executor.deviceValues.filter { tailReads.contains($0.key) },
                arenaUsed: arena.allocator.used, pinnedUsed: pinned.allocator.used)
            executor.stagingLog = nil
            try checkDriver(kcu_graph_launch(exec, context.stream), "cuGraphLaunch")
        }
        try executor.run(steps[state.prefixEnd...], offset: state.prefixEnd)
    }

    /// Inputs of the declared signature at `batch` x `sequence`: token ids 0, masks 1, floats 0.
    public func sampleInputs(batch: Int, sequence: Int) throws -> [String: Tensor] {
        var inputs: [String: Tensor] = [:]
        for info in graph.inputs {
            var symbolic = 0
            let shape = (info.shape ?? []).map { dimension -> Int in
                if let size = dimension.fixedSize { return size }
                symbolic += 1
                if case .symbolic(let name) = dimension {
                    if name.lowercased().contains("batch") { return batch }
                    if name.lowercased().contains("seq") { return sequence }
                }
                return symbolic == 1 ? batch : sequence
            }
            let count = Tensor.elementCount(of: shape)
            if info.dtype?.isInteger ?? false {
                let value: Int64 = info.name.lowercased().contains("mask") ? 1 : 0
                inputs[info.name] = try Tensor(ints: [Int64](repeating: value, count: count), shape: shape, dtype: info.dtype!)
            } else {
                inputs[info.name] = try Tensor(floats: [Float](repeating: 0, count: count), shape: shape)
            }
        }
        return inputs
    }
}

/// Microseconds of one run: host work before the GPU work is queued (a graph replay's host steps
/// and pinned staging; the whole run when eager), the graph launch call, and finishing (eager tail
/// steps, downloads, the stream sync: mostly waiting for the GPU).
public struct RunPhases: Sendable {
    public var host: Double = 0
    /// Of `host` in a replay: the host steps (shape ops, mask casts) and restaging the inputs.
    public var hostSteps: Double = 0, staging: Double = 0
    public var launch: Double = 0
    public var finish: Double = 0
}

/// Library and driver versions a CUDA plan is pinned to.
public struct CUDAVersions: Sendable, Equatable, Codable {
    public var driver: Int
    public var cublasLt: Int
    public var nvrtc: String
}
