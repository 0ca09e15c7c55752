// Warm-up at model load. Pattern: run each engine instance once per common shape (batch 1 and the
// largest batch, a few sequence buckets) before the version is registered, so the first requests do
// not pay first-call costs (oneDNN primitive creation per new row count, lazy packing, page faults in
// the arena). An engine shared by N instances then runs the largest shape on N threads at once: each
// concurrent call takes its own execution context, so N contexts hold the largest buffers from the
// start instead of the 2nd..Nth being filled under load (a 10-minute soak with 2 instances saw RSS
// climb 7.6% over its first five minutes, then stay flat). Why safe: it runs the same BatchAssembler
// path as serving on tokens the tokenizer produced, before any request can reach the version, and
// throws if the engine fails (a version that cannot run its shapes must not report ready).
import Foundation
import KilnRuntime
import Synchronization

/// Runs a freshly built model version's engines on its common shapes.
struct EngineWarmUp {
    /// Sequence lengths (tokens, special tokens included) warmed up, capped at the model's limit.
    static let sequenceBuckets = [8, 16, 32, 64]

    /// The shapes (rows, tokens) to run: batch 1 and `maxBatch`, each sequence bucket up to `maxLength`.
    static func shapes(maxBatch: Int, maxLength: Int) -> [(rows: Int, length: Int)] {
        let lengths = Array(Set(sequenceBuckets.map { min($0, maxLength) } + [min(maxLength, sequenceBuckets.last!)])).sorted()
        let batches = Array(Set([1, max(1, maxBatch)])).sorted()
        return batches.flatMap { rows in lengths.map { (rows, $0) } }
    }

    /// Warms every distinct engine and returns the seconds it took.
    /// - Parameters:
    ///   - engines: the instances (a shared engine listed twice is warmed once, then on two threads at once).
    ///   - encoder: the model's tokenizer stage, for realistic token ids.
    ///   - assembler: the model's batch stage.
    ///   - maxBatch: the largest batch the batcher forms.
    static func run(_ engines: [any InferenceEngine], encoder: TextEncoder, assembler: BatchAssembler, maxBatch: Int) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let row = try tokens(encoder: encoder)
        let shapes = shapes(maxBatch: maxBatch, maxLength: encoder.maxLength)
        for (engine, sharers) in distinct(engines) {
            for (rows, length) in shapes {
                _ = try assembler.run([input(row: row, rows: rows, length: length)], on: engine)
            }
            if sharers > 1, let largest = shapes.last {
                try runConcurrently(input(row: row, rows: largest.rows, length: largest.length), copies: sharers, on: engine, assembler: assembler)
            }
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// The distinct engines in order, each with the number of instances that share it.
    private static func distinct(_ engines: [any InferenceEngine]) -> [(engine: any InferenceEngine, sharers: Int)] {
        var result: [(engine: any InferenceEngine, sharers: Int)] = []
        var position: [ObjectIdentifier: Int] = [:]
        for engine in engines {
            let identity = identity(of: engine)
            if let identity, let index = position[identity] {
                result[index].sharers += 1
                continue
            }
            if let identity { position[identity] = result.count }
            result.append((engine, 1))
        }
        return result
    }

    /// Runs one input on `copies` threads at once (threads of their own, so the calls overlap even
    /// when the shared thread pools are busy); rethrows the first failure.
    private static func runConcurrently(_ input: EngineInput, copies: Int, on engine: any InferenceEngine, assembler: BatchAssembler) throws {
        let failures = Mutex<[any Error]>([])
        let finished = DispatchSemaphore(value: 0)
        let call = { @Sendable in
            do { _ = try assembler.run([input], on: engine) } catch { failures.withLock { $0.append(error) } }
        }
        for _ in 1..<copies {
            let thread = Thread { call(); finished.signal() }
            thread.stackSize = 8 << 20  // as the batcher's threads: kernels keep scratch on the stack
            thread.start()
        }
        call()
        for _ in 1..<copies { finished.wait() }
        if let failure = failures.withLock({ $0.first }) { throw failure }
    }

    /// The object behind an engine (through ``DescribedEngine``), so a shared engine is warmed once.
    private static func identity(of engine: any InferenceEngine) -> ObjectIdentifier? {
        if let described = engine as? DescribedEngine { return identity(of: described.base) }
        return type(of: engine) is AnyClass ? ObjectIdentifier(engine as AnyObject) : nil
    }

    /// One long row of real token ids: a tokenized sentence repeated up to the model's length.
    private static func tokens(encoder: TextEncoder) throws -> [Int64] {
        let sentence = Array(repeating: "please book a table for two at the hotel in london next friday", count: 16).joined(separator: " ")
        let input = try encoder.encode(sentence).engineInput
        return zip(input.inputIds, input.attentionMask).filter { $0.1 != 0 }.map(\.0)
    }

    /// `rows` copies of the row cut to `length` tokens, all attended.
    private static func input(row: [Int64], rows: Int, length: Int) -> EngineInput {
        let length = min(length, row.count)
        var ids = Array(row.prefix(length))
        if let last = row.last, length > 1 { ids[length - 1] = last }  // keep the closing special token
        return EngineInput(
            rows: rows, length: length, inputIds: Array([[Int64]](repeating: ids, count: rows).joined()),
            attentionMask: [Int64](repeating: 1, count: rows * length), tokenTypeIds: [Int64](repeating: 0, count: rows * length))
    }
}
