// Warm-up at model load. Pattern: run each engine instance once per common shape (batch 1 and the
// largest batch, a few sequence buckets) before the version is registered, so the first requests do
// not pay first-call costs (oneDNN primitive creation per new row count, lazy packing, page faults in
// the arena). Why safe: it runs the same BatchAssembler path as serving on tokens the tokenizer
// produced, before any request can reach the version, and throws if the engine fails (a version
// that cannot run its shapes must not report ready).
import Foundation
import KilnRuntime

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
    ///   - engines: the instances (a shared engine listed twice is warmed once).
    ///   - encoder: the model's tokenizer stage, for realistic token ids.
    ///   - assembler: the model's batch stage.
    ///   - maxBatch: the largest batch the batcher forms.
    static func run(_ engines: [any InferenceEngine], encoder: TextEncoder, assembler: BatchAssembler, maxBatch: Int) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let row = try tokens(encoder: encoder)
        var seen: Set<ObjectIdentifier> = []
        for engine in engines {
            if let identity = identity(of: engine), !seen.insert(identity).inserted { continue }
            for (rows, length) in shapes(maxBatch: maxBatch, maxLength: encoder.maxLength) {
                let input = Self.input(row: row, rows: rows, length: length)
                _ = try assembler.run([input], on: engine)
            }
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
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
