import ArgumentParser
import Foundation
import KilnCore
import KilnKernels
import KilnRuntime

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

    func validate() throws {
        guard batch.allSatisfy({ $0 >= 1 }), seq.allSatisfy({ $0 >= 2 }) else { throw ValidationError("--batch must be >= 1 and --seq >= 2") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
    }

    func run() throws {
        if let threads { CPUThreading.configure(threadCount: threads) }
        let engine = try makeEngine()
        if !json { print("shape              seq/s     p50 ms    p90 ms    p99 ms   runs") }
        for batchSize in batch {
            for length in seq {
                let inputs = try EngineCheck.sampleInputs(for: engine.inputSignature, batch: batchSize, sequence: length, vocabularyLimit: 100)
                for _ in 0..<2 { _ = try engine.run(inputs) }
                var latencies: [Double] = []
                let start = ContinuousClock.now
                let budget = Duration.milliseconds(Int64(seconds * 1000))
                repeat {
                    let t0 = ContinuousClock.now
                    _ = try engine.run(inputs)
                    latencies.append(Self.milliseconds(ContinuousClock.now - t0))
                } while ContinuousClock.now - start < budget || latencies.count < 3
                report(batch: batchSize, seq: length, latencies: latencies, elapsed: Self.milliseconds(ContinuousClock.now - start))
            }
        }
    }

    private func makeEngine() throws -> any InferenceEngine {
        if ModelLoading.isPlan(model) { return try Engine(plan: PlanFile.read(URL(fileURLWithPath: model))) }
        let loaded = try ModelLoading.load(model)
        if reference { return try ReferenceExecutor(graph: loaded.graph) }
        let compiled = try PlanCompiler().compile(URL(fileURLWithPath: model), log: { _ in })
        return try Engine(plan: compiled.plan)
    }

    private func report(batch: Int, seq: Int, latencies: [Double], elapsed: Double) {
        let sorted = latencies.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p / 100) * Double(sorted.count)))] }
        let throughput = Double(batch * latencies.count) / (elapsed / 1000)
        if json {
            print("{\"batch\":\(batch),\"seq\":\(seq),\"seq_per_s\":\(throughput),\"p50_ms\":\(percentile(50)),\"p90_ms\":\(percentile(90)),\"p99_ms\":\(percentile(99)),\"runs\":\(latencies.count)}")
        } else {
            let shape = "batch \(batch), seq \(seq)".padding(toLength: 16, withPad: " ", startingAt: 0)
            print(String(format: "%@ %9.1f %9.2f %9.2f %9.2f %6d", shape, throughput, percentile(50), percentile(90), percentile(99), latencies.count))
        }
    }

    static func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}
