// GPUProbe: what runs on the GPU machines besides `kiln` itself (which has no Swift toolchain
// there): device discovery, the CUDA engine vs the reference executor on shipped models, and the
// engine benchmark. A library so that both the small `kiln-gpu-probe` executable (quick static
// build) and the hidden `kiln gpu-probe` subcommand (one binary to carry) run it. Subcommands:
//   info                                  device, driver and library versions
//   check MODEL.onnx [OUT_DIR] [--int8 [--calibration CACHE]]
//                                         GPU engine vs the CPU reference executor; writes
//                                         inputs/outputs as .npy to OUT_DIR for ONNX Runtime.
//                                         --int8: both run the same int8-quantized graph (the
//                                         cache's scales, synthetic 0.05 without one), judged
//                                         against the fp16-storage floor (ProbeInt8.swift)
//   int8-gemm                             single INT8 GEMMs, GPU vs Int8MatMulReference
//   bench MODEL.onnx SEQ BATCH[,BATCH..]  latency / throughput of the CUDA engine (cuBLASLt
//                                         autotuned unless --no-autotune; --no-graphs: eager;
//                                         --int8: int8 GEMMs with synthetic static scales,
//                                         timing only)
//   verify MODEL.onnx --data PATH [--calibration CACHE] [--samples N] [--json FILE]
//                                         task-level check of the fp16 (int8 with a cache)
//                                         engine vs the fp32 reference (ProbeVerify.swift)
import Foundation
import KilnCUDA
import KilnCalibration
import KilnCore
import KilnKernels
import KilnONNX
import KilnPasses
import KilnRuntime

private let hostEvaluator: HostEvaluator = { node, inputs, opset in try ReferenceKernels.run(node, inputs: inputs, opset: opset) }

/// The source graph and Kiln's optimized one; `int8`: quantized with `calibration`'s scales
/// (a `kiln calibrate` cache of this model), or synthetic ones without a cache.
func loadGraphs(_ path: String, int8: Bool = false, calibration: String? = nil) throws -> (source: Graph, optimized: Graph) {
    let url = URL(fileURLWithPath: path)
    let data = try Data(contentsOf: url, options: .alwaysMapped)
    let graph = try ONNXImporter().load(data: data, directory: url.deletingLastPathComponent(), source: url.lastPathComponent)
    let opset = graph.opset
    let result = try KilnOptimizer.optimize(
        graph, evaluate: { try ReferenceKernels.run($0, inputs: $1, opset: opset) }, options: OptimizationOptions(memoryPlanShape: nil))
    guard int8 else { return (graph, result.graph) }
    var quantized = result.graph
    let scales = try calibration.map {
        try CalibrationTable.read(URL(fileURLWithPath: $0), expectingModelSHA256: SHA256.hexDigest(data)).activationScales()
    } ?? syntheticScales(quantized)
    _ = try QuantizationPass(activationScales: scales).run(&quantized)
    return (graph, quantized)
}

/// One static activation scale for every GEMM input (0.05: |x| up to 6.35 before clamping,
/// about what a LayerNorm output spans). Not a calibration: the int8 check compares the GPU with
/// the reference on the same quantized graph, and the benchmark's speed does not depend on it.
func syntheticScales(_ graph: Graph) -> [String: Float] {
    var scales: [String: Float] = [:]
    for node in graph.nodes where node.domain == KilnOperators.domain && node.opType == KilnOperators.fusedMatMul { scales[node.inputs[0]] = 0.05 }
    return scales
}

/// Realistic inputs: random token ids below the vocabulary size, padded tails masked out.
func sampleInputs(_ graph: Graph, batch: Int, sequence: Int, seed: UInt64) throws -> [String: Tensor] {
    var generator = SplitMix(state: seed)
    let vocabulary = graph.nodes.first { $0.opType == "Gather" && $0.inputs.count > 1 && $0.inputs[1] == "input_ids" }
        .flatMap { graph.initializers[$0.inputs[0]]?.shape.first } ?? 1000
    var ids = [Int64](), mask = [Int64]()
    for _ in 0..<batch {
        let length = max(2, sequence / 2 + Int(generator.next() % UInt64(sequence / 2 + 1)))
        for position in 0..<sequence {
            ids.append(position < length ? Int64(1 + generator.next() % UInt64(vocabulary - 1)) : 0)
            mask.append(position < length ? 1 : 0)
        }
    }
    var inputs: [String: Tensor] = [:]
    for info in graph.inputs {
        let name = info.name.lowercased()
        let values = name.contains("mask") ? mask : name.contains("type") ? [Int64](repeating: 0, count: ids.count) : ids
        inputs[info.name] = try Tensor(ints: values, shape: [batch, sequence], dtype: info.dtype ?? .int64)
    }
    return inputs
}

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func argmaxRows(_ tensor: Tensor) -> [Int] {
    let width = tensor.shape.last ?? 1
    let values = tensor.floats
    return stride(from: 0, to: values.count, by: width).map { start in
        (start..<(start + width)).max { values[$0] < values[$1] }! - start
    }
}

func info() throws {
    let count = try CUDADriver.deviceCount()
    for path in CUDALibrary.allCases { print("\(path.rawValue): \((try? CUDALibraries.load(path)) ?? "NOT FOUND")") }
    for ordinal in 0..<count {
        let device = try CUDADriver.device(ordinal)
        print("device \(ordinal): \(device.name) \(device.architecture), \(device.multiprocessors) SMs, \(device.totalMemory >> 20) MiB, driver \(device.driverVersion), smem opt-in \(device.sharedMemoryPerBlockOptin)")
    }
    // What `kiln serve --device cuda` publishes on /metrics (kiln_gpu_*), read the same way.
    do {
        for reading in try GPUMonitor(ordinals: Array(0..<count)).read() {
            print(String(format: "NVML GPU %d (PCI %@): memory used %.0f of %.0f MiB, utilization %.0f%%", reading.ordinal,
                         reading.pciBusID, reading.memoryUsedBytes / 1048576,
                         reading.memoryTotalBytes / 1048576, reading.utilization * 100))
        }
    } catch {
        print("NVML: \(error)")
    }
}

func check(_ path: String, outDirectory: String?, int8: Bool, calibration: String? = nil) throws {
    let (source, optimized) = try loadGraphs(path, int8: int8, calibration: calibration)
    let engine = try CUDAEngine(graph: optimized, options: CUDAEngineOptions(maxBatch: 8, maxSequence: 64), hostEvaluator: hostEvaluator)
    // int8: the reference runs the same quantized graph (its int8 GEMM is the reference kernel),
    // and again with fp16 activation storage: the floor of what fp16 alone moves.
    let reference = try ReferenceExecutor(graph: int8 ? optimized : source)
    let floorReference = int8 ? try ReferenceExecutor(graph: optimized, activationStorage: .float16) : nil
    print("model \(path): arena \(engine.arenaBytes >> 10) KiB, pinned \(engine.pinnedBytes >> 10) KiB\(int8 ? ", int8 scales: " + (calibration ?? "synthetic 0.05") : "")")
    print("placement: " + engine.placement.sorted { $0.key < $1.key }.map { "\($0.key) gpu \($0.value.gpu) host \($0.value.host)" }.joined(separator: ", "))
    var worst: Float = 0, floorWorst: Float = 0
    var intentMismatches = 0, floorMismatches = 0, intentRows = 0
    for (index, (batch, sequence)) in [(1, 7), (4, 32), (8, 64), (3, 17), (4, 32)].enumerated() {
        let inputs = try sampleInputs(source, batch: batch, sequence: sequence, seed: UInt64(index + 1))
        let expected = try reference.run(inputs)
        if let floored = try floorReference?.run(inputs) {
            let (difference, mismatches) = compare(floored, expected, outputs: source.outputs)
            floorWorst = max(floorWorst, difference)
            floorMismatches += mismatches
        }
        for repeatIndex in 0..<3 {  // eager, capture, replay
            let got = try engine.run(inputs)
            let (difference, mismatches) = compare(got, expected, outputs: source.outputs)
            worst = max(worst, difference)
            intentMismatches += mismatches
            intentRows += source.outputs.contains { $0.name.contains("intent") } ? batch : 0
            if repeatIndex == 2 { print("  batch \(batch) seq \(sequence): max-abs \(difference)") }
            if let outDirectory, repeatIndex == 0 {
                let base = URL(fileURLWithPath: outDirectory).appendingPathComponent("case\(index)")
                for (name, tensor) in inputs { try NPYFile.write(tensor, to: base.appendingPathExtension("in.\(name).npy")) }
                for (name, tensor) in got { try NPYFile.write(tensor, to: base.appendingPathExtension("gpu.\(name).npy")) }
            }
        }
    }
    let modelName = URL(fileURLWithPath: path).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent
    guard int8 else {
        let pass = worst <= 2e-2 && intentMismatches == 0
        print("RESULT \(pass ? "PASS" : "FAIL") \(modelName): max-abs \(worst) (tolerance 0.02), intent argmax mismatches \(intentMismatches)/\(intentRows)")
        return
    }
    // int8: the GPU quantizes fp16 activations, the reference fp32 ones; a value on a rounding
    // boundary lands one level apart and the graph carries that on. The floor run shows how far
    // fp16 storage alone moves this graph (x3: each of the 3 repeats is counted); the GPU may
    // differ by twice the floor, and never by less than 0.1 / 2% of the intent rows is required.
    let tolerance = max(1e-1, 2 * floorWorst)
    let allowedMismatches = max(intentRows / 50, 2 * 3 * floorMismatches)
    let pass = worst <= tolerance && intentMismatches <= allowedMismatches
    print("floor (reference with fp16 activation storage vs fp32): max-abs \(floorWorst), intent argmax mismatches \(floorMismatches)/\(intentRows / 3)")
    print("RESULT INT8 \(pass ? "PASS" : "FAIL") \(modelName): max-abs \(worst) (tolerance \(tolerance)), intent argmax mismatches \(intentMismatches)/\(intentRows) (allowed \(allowedMismatches))")
}

/// Worst max-abs difference over `outputs` and the intent rows whose argmax differs.
func compare(_ got: [String: Tensor], _ expected: [String: Tensor], outputs: [ValueInfo]) -> (maxAbs: Float, intentMismatches: Int) {
    var worst: Float = 0, mismatches = 0
    for info in outputs {
        guard let a = got[info.name], let b = expected[info.name] else { return (.infinity, 0) }
        let difference = zip(a.floats, b.floats).map { abs($0 - $1) }.max() ?? 0
        worst = max(worst, difference.isNaN ? .infinity : difference)
        if info.name.contains("intent") { mismatches += zip(argmaxRows(a), argmaxRows(b)).filter { $0 != $1 }.count }
    }
    return (worst, mismatches)
}

func bench(_ path: String, sequence: Int, batches: [Int], graphs: Bool, autotune: Bool, int8: Bool) throws {
    let (source, optimized) = try loadGraphs(path, int8: int8)
    let options = CUDAEngineOptions(maxBatch: batches.max()!, maxSequence: sequence, useGraphs: graphs, autotune: autotune)
    let started = Date()
    let engine = try CUDAEngine(graph: optimized, options: options, hostEvaluator: hostEvaluator)
    print("engine build \(String(format: "%.2f", Date().timeIntervalSince(started))) s, arena \(engine.arenaBytes >> 20) MiB, graphs \(graphs), autotune \(autotune), dependent launch \(engine.dependentLaunch)")
    for batch in batches {
        let inputs = try sampleInputs(source, batch: batch, sequence: sequence, seed: 7)
        for _ in 0..<10 { _ = try engine.run(inputs) }
        var times: [Double] = [], phases: [RunPhases] = []
        let deadline = Date().addingTimeInterval(3)
        while times.count < 2000 && (times.count < 20 || Date() < deadline) {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try engine.run(inputs)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            phases.append(engine.lastRunPhases)
        }
        times.sort()
        let median = times[times.count / 2]
        func medianOf(_ part: (RunPhases) -> Double) -> Double { phases.map(part).sorted()[phases.count / 2] }
        print(String(format: "  median phases: host %.0f us (host steps %.0f, staging %.0f), graph launch %.0f us, finish (tail, downloads, sync) %.0f us",
                     medianOf(\.host), medianOf(\.hostSteps), medianOf(\.staging), medianOf(\.launch), medianOf(\.finish)))
        let label = ProcessInfo.processInfo.environment["KILN_BENCH_LABEL"] ?? "KILN"
        print(String(format: "%@ seq %d batch %d: median %.3f ms p90 %.3f ms (%d runs), %.0f seq/s", label,
                     sequence, batch, median, times[times.count * 9 / 10], times.count, Double(batch) * 1000 / median))
        if ProcessInfo.processInfo.environment["KILN_CUDA_PROFILE"] == "1" {
            let profile = try StepProfile()
            for _ in 0..<5 { try engine.profiledRun(inputs, into: profile) }
            let total = profile.milliseconds.values.reduce(0, +)
            let parts = profile.milliseconds.sorted { $0.value > $1.value }.map { String(format: "%@ %.3f", $0.key, $0.value / 5) }
            print(String(format: "  profile batch %d (eager, per run, ms): total %.3f: ", batch, total / 5) + parts.joined(separator: ", "))
        }
    }
}


/// Entry point of the probe: `arguments` without the program name; returns the exit status.
public enum GPUProbe {
    public static func main(_ arguments: [String]) -> Int32 {
        var arguments = arguments
        var calibration: String?
        if positionalCommand(arguments) == "check", let at = arguments.firstIndex(of: "--calibration"), at + 1 < arguments.count {
            calibration = arguments[at + 1]
            arguments.removeSubrange(at...(at + 1))
        }
        let flags = Set(arguments.filter { $0.hasPrefix("--") })
        let positional = arguments.filter { !$0.hasPrefix("--") }
        do {
            switch positional.first ?? "info" {
            case "info": try info()
            case "check" where positional.count >= 2:
                try check(positional[1], outDirectory: positional.count > 2 ? positional[2] : nil, int8: flags.contains("--int8"), calibration: calibration)
            case "int8-gemm":
                return try checkInt8Gemms(hostEvaluator: hostEvaluator) ? 0 : 1
            case "verify":
                guard let options = parseVerify(Array(arguments.dropFirst())) else {
                    print("usage: verify MODEL.onnx --data PATH [--data PATH ...] [--calibration CACHE [--keep-fp32 NODE ...]] [--samples N] [--json FILE]")
                    return 2
                }
                return try verify(options) ? 0 : 1
            case "bench" where positional.count >= 4:
                try bench(positional[1], sequence: Int(positional[2])!, batches: positional[3].split(separator: ",").map { Int($0)! },
                          graphs: !flags.contains("--no-graphs"), autotune: !flags.contains("--no-autotune"), int8: flags.contains("--int8"))
            default:
                print("usage: kiln-gpu-probe info | check MODEL.onnx [OUT_DIR] [--int8 [--calibration CACHE]] | int8-gemm | bench MODEL.onnx SEQ BATCHES [--no-graphs] [--no-autotune] [--int8] | verify MODEL.onnx --data PATH [--calibration CACHE] [--samples N]")
                return 2
            }
        } catch {
            print("error: \(error)")
            return 1
        }
        return 0
    }
}

/// The subcommand: the first argument that is not a flag.
private func positionalCommand(_ arguments: [String]) -> String? { arguments.first { !$0.hasPrefix("--") } }
