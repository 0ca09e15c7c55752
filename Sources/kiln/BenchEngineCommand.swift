import ArgumentParser
import Foundation
import KilnCore
import KilnKernels
import KilnRuntime
import KilnText

/// `kiln bench-engine MODEL.kiln`: offline throughput and latency of a compiled engine.
struct BenchEngineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-engine",
        abstract: "Measure an engine's throughput and latency on synthetic batches (no server).",
        discussion: """
            Runs the engine on fixed-shape batches (token ids cycle through the vocabulary's
            first ids; one row of each batch is half padding) and reports sequences per second
            and latency percentiles per (batch, seq) shape. Accepts a .kiln plan, or an .onnx
            model, which is compiled in memory first (--reference runs the unoptimized
            reference executor instead, for comparison).

            Example:
              kiln bench-engine model.kiln --batch 1 --batch 16 --seq 32 --seconds 5 --threads 2
            """
    )

    @Argument(help: "A .kiln plan, or an .onnx model (compiled in memory).")
    var model: String

    @Option(help: "Batch sizes to measure (repeatable).")
    var batch: [Int] = [1, 16]

    @Option(help: "Sequence lengths to measure (repeatable).")
    var seq: [Int] = [32]

    @Option(help: "Seconds to measure each shape for (after warm-up).")
    var seconds: Double = 3

    @Option(help: "CPU threads for the kernels (default: all cores).")
    var threads: Int?

    @Flag(help: "Run an .onnx model on the reference executor instead of compiling it.")
    var reference = false

    @Flag(help: "Print the results as JSON lines.")
    var json = false

    @Option(help: "Real utterances, one per line: run them in batches of --batch (file order), each padded to its longest, instead of synthetic shapes.")
    var texts: String?

    @Option(help: "The tokenizer.json for --texts.")
    var tokenizer: String?

    @Option(help: "Truncate --texts to this many tokens.")
    var maxLength: Int = 128

    @Flag(help: "Print where a call's time goes, per step (padded path; also KILN_PROFILE=1), after the measurements.")
    var profile = false

    func validate() throws {
        guard batch.allSatisfy({ $0 >= 1 }), seq.allSatisfy({ $0 >= 2 }) else { throw ValidationError("--batch must be >= 1 and --seq >= 2") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        if texts != nil && tokenizer == nil { throw ValidationError("--texts needs --tokenizer tokenizer.json") }
    }

    func run() throws {
        if let threads { CPUThreading.configure(threadCount: threads) }
        let engine = try makeEngine()
        if let compiled = engine as? Engine {
            // Ragged batches run padding-free unless KILN_PACKED=0; say which, and why not.
            let state = compiled.usesPackedExecution ? "on" : "off"
            FileHandle.standardError.write(Data("\(compiled.packingDescription); packed execution \(state)\n".utf8))
        }
        if let texts, let tokenizer {
            try runUtterances(engine, texts: texts, tokenizer: tokenizer)
            return
        }
        if !json { print("shape              seq/s     p50 ms    p90 ms    p99 ms   runs") }
        for batchSize in batch {
            for length in seq {
                let inputs = try EngineCheck.sampleInputs(for: engine.inputSignature, batch: batchSize, sequence: length, vocabularyLimit: 100)
                for _ in 0..<2 { _ = try engine.run(inputs) }
                var latencies: [Double] = []
                let cpuStart = Self.processCPUMilliseconds()
                let start = ContinuousClock.now
                let budget = Duration.milliseconds(Int64(seconds * 1000))
                repeat {
                    let t0 = ContinuousClock.now
                    _ = try engine.run(inputs)
                    latencies.append(Self.milliseconds(ContinuousClock.now - t0))
                } while ContinuousClock.now - start < budget || latencies.count < 3
                report(batch: batchSize, seq: length, latencies: latencies, elapsed: Self.milliseconds(ContinuousClock.now - start),
                       cpu: Self.processCPUMilliseconds() - cpuStart)
                if profile || ProcessInfo.processInfo.environment["KILN_PROFILE"] == "1", let compiled = engine as? Engine {
                    try printProfile(compiled, inputs: inputs, label: "batch \(batchSize), seq \(length)")
                }
            }
        }
    }

    /// Real-utterance mode: every line once per pass, batches in file order, for --seconds.
    private func runUtterances(_ engine: any InferenceEngine, texts: String, tokenizer: String) throws {
        let lines = try String(contentsOfFile: texts, encoding: .utf8).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw ValidationError("\(texts) holds no utterances") }
        let wordPiece = try WordPieceTokenizer(contentsOf: URL(fileURLWithPath: tokenizer))
        let names = Set(engine.inputSignature.map(\.name))
        for batchSize in batch {
            let batches = try stride(from: 0, to: lines.count, by: batchSize).map { start in
                let encodings = try wordPiece.encodeBatch(Array(lines[start..<min(start + batchSize, lines.count)]), maxLength: maxLength)
                return try TokenizedInputs.tensors(encodings).filter { names.contains($0.key) }
            }
            _ = try engine.run(batches[0])
            var latencies: [Double] = []
            var sequences = 0
            let cpuStart = Self.processCPUMilliseconds()
            let start = ContinuousClock.now
            repeat {
                for inputs in batches {
                    let t0 = ContinuousClock.now
                    _ = try engine.run(inputs)
                    latencies.append(Self.milliseconds(ContinuousClock.now - t0))
                    sequences += inputs.values.first?.shape.first ?? 0
                }
            } while ContinuousClock.now - start < .milliseconds(Int64(seconds * 1000))
            let elapsed = Self.milliseconds(ContinuousClock.now - start)
            let cpuPerSequence = (Self.processCPUMilliseconds() - cpuStart) / Double(max(sequences, 1))
            let sorted = latencies.sorted()
            func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p / 100) * Double(sorted.count)))] }
            let throughput = Double(sequences) / (elapsed / 1000)
            if json {
                print("{\"mode\":\"utterances\",\"batch\":\(batchSize),\"seq_per_s\":\(throughput),\"p50_ms\":\(percentile(50)),\"p99_ms\":\(percentile(99)),\"batches\":\(latencies.count),\"cpu_ms_per_seq\":\(cpuPerSequence)}")
            } else {
                print(String(format: "utterances, batch %d: %.1f seq/s, batch p50 %.2f ms, p99 %.2f ms (%d batches)", batchSize, throughput, percentile(50), percentile(99), latencies.count))
            }
        }
    }

    /// Per-step mean times of 20 padded calls, grouped by operator and kernel, then the 15
    /// slowest steps (to stderr, so --json output stays parseable).
    private func printProfile(_ engine: Engine, inputs: [String: Tensor], label: String) throws {
        let timings = try engine.profile(inputs, runs: 20)
        let total = timings.reduce(0) { $0 + $1.milliseconds }
        var lines = [String(format: "profile, %@: %.3f ms in %d steps (sum of step times, padded path)", label, total, timings.count)]
        var groups: [String: (ms: Double, count: Int)] = [:]
        for timing in timings { groups["\(timing.op) [\(timing.kernel)]", default: (0, 0)].ms += timing.milliseconds; groups["\(timing.op) [\(timing.kernel)]"]!.count += 1 }
        for (key, value) in groups.sorted(by: { $0.value.ms > $1.value.ms }) {
            lines.append(String(format: "  %7.3f ms %5.1f%%  %3dx %@", value.ms, 100 * value.ms / max(total, 1e-9), value.count, key))
        }
        lines.append("  slowest steps:")
        for timing in timings.sorted(by: { $0.milliseconds > $1.milliseconds }).prefix(15) {
            lines.append(String(format: "  %7.3f ms  %@ (%@, %@)", timing.milliseconds, timing.node, timing.op, timing.kernel))
        }
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }

    private func makeEngine() throws -> any InferenceEngine {
        if ModelLoading.isPlan(model) { return try Engine(plan: PlanFile.read(URL(fileURLWithPath: model))) }
        let loaded = try ModelLoading.load(model)
        if reference { return try ReferenceExecutor(graph: loaded.graph) }
        let compiled = try PlanCompiler().compile(URL(fileURLWithPath: model), log: { _ in })
        return try Engine(plan: compiled.plan)
    }

    private func report(batch: Int, seq: Int, latencies: [Double], elapsed: Double, cpu: Double) {
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p / 100) * Double(sorted.count)))] }
        let throughput = Double(batch * latencies.count) / (elapsed / 1000)
        if json {
            print("{\"batch\":\(batch),\"seq\":\(seq),\"seq_per_s\":\(throughput),\"p50_ms\":\(percentile(50)),\"p90_ms\":\(percentile(90)),\"p99_ms\":\(percentile(99)),\"runs\":\(latencies.count),\"cpu_ms_per_seq\":\(cpu / Double(batch * latencies.count))}")
        } else {
            let shape = "batch \(batch), seq \(seq)".padding(toLength: 16, withPad: " ", startingAt: 0)
            print(String(format: "%@ %9.1f %9.2f %9.2f %9.2f %6d", shape, throughput, percentile(50), percentile(90), percentile(99), latencies.count))
        }
    }

    /// CPU time of the whole process (all threads) so far: on a shared, busy machine, CPU time
    /// per sequence is steadier than wall time (it also counts OpenMP spin-waiting).
    static func processCPUMilliseconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) * 1000 + Double(time.tv_nsec) / 1e6
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}
