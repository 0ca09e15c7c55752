import Foundation
import KilnCore
import KilnKernels
import KilnONNX
import KilnPasses
import KilnRuntime
import Testing

@testable import KilnCUDA

/// Shape buckets (CPU-only: policy, padding, slicing) and, on a GPU, graph replays that restage
/// new inputs of the same bucket.
@Suite struct ShapeBucketTests {
    static let snipsURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../models/snips/1/model.onnx").standardized

    static func snips() throws -> Graph {
        let data = try Data(contentsOf: snipsURL)
        return try ONNXImporter().load(data: data, directory: snipsURL.deletingLastPathComponent(), source: "model.onnx")
    }

    @Test func bucketPolicy() {
        #expect((1...9).map { ShapeBuckets.batchBucket($0, max: 64) } == [1, 2, 4, 4, 8, 8, 8, 8, 16])
        #expect(ShapeBuckets.batchBucket(17, max: 64) == 24)
        #expect(ShapeBuckets.batchBucket(60, max: 61) == 61)  // capped by the engine's max batch
        #expect(ShapeBuckets.batchBucket(70, max: 64) == 70)  // never below the request
        #expect(ShapeBuckets.sequenceBucket(7, max: 128) == 16)
        #expect(ShapeBuckets.sequenceBucket(33, max: 40) == 40)
        #expect(ShapeBuckets.batchBuckets(upTo: 32) == [1, 2, 4, 8, 16, 24, 32])
        #expect(ShapeBuckets.sequenceBuckets(upTo: 40) == [16, 32, 40])
    }

    @Test func padsMaskedAndSlicesBack() throws {
        let buckets = try #require(ShapeBuckets(graph: Self.snips()))
        let ids: [Int64] = [101, 7, 8, 102, 0, 101, 9, 102, 0, 0, 101, 5, 6, 7, 102]
        let mask: [Int64] = ids.map { $0 == 0 ? 0 : 1 }
        let inputs: [String: Tensor] = [
            "input_ids": try Tensor(ints: ids, shape: [3, 5]), "attention_mask": try Tensor(ints: mask, shape: [3, 5]),
            "token_type_ids": try Tensor(ints: [Int64](repeating: 0, count: 15), shape: [3, 5]),
        ]
        let (padded, original) = try buckets.pad(inputs, maxBatch: 16, maxSequence: 128)
        #expect(original.batch == 3 && original.sequence == 5)
        #expect(padded["input_ids"]!.shape == [4, 16])
        let paddedMask = padded["attention_mask"]!.ints
        #expect(paddedMask.reduce(0, +) == mask.reduce(0, +))  // no padded position is attended
        #expect(Array(padded["input_ids"]!.ints[16..<21]) == Array(ids[5..<10]))
        // Outputs at the padded shape: value = row * 100 + token (* 10 + class for slots).
        var intentValues: [Float] = []
        for row in 0..<4 { for label in 0..<7 { intentValues.append(Float(row * 100 + label)) } }
        var slotValues: [Float] = []
        for row in 0..<4 { for token in 0..<16 { for label in 0..<2 { slotValues.append(Float(row * 100 + token * 10 + label)) } } }
        let intent = try Tensor(floats: intentValues, shape: [4, 7])
        let slots = try Tensor(floats: slotValues, shape: [4, 16, 2])
        let sliced = try buckets.slice(["intent_logits": intent, "slot_logits": slots], to: original)
        #expect(sliced["intent_logits"]!.shape == [3, 7])
        #expect(sliced["intent_logits"]!.floats.last == 206)
        #expect(sliced["slot_logits"]!.shape == [3, 5, 2])
        #expect(Array(sliced["slot_logits"]!.floats[10..<14]) == [100, 101, 110, 111])
        #expect(sliced["slot_logits"]!.floats.last == 241)
    }

    @Test func exactBucketIsLeftAlone() throws {
        let buckets = try #require(ShapeBuckets(graph: Self.snips()))
        let ones = try Tensor(ints: [Int64](repeating: 1, count: 32), shape: [2, 16])
        let (padded, _) = try buckets.pad(["input_ids": ones, "attention_mask": ones, "token_type_ids": ones], maxBatch: 8, maxSequence: 64)
        #expect(padded["input_ids"]!.shape == [2, 16])
    }

    static let gpu = CUDADriver.isAvailable && (try? CUDALibraries.loadAll()) != nil

    /// Replays of one bucket with different ids, masks and exact shapes must restage each
    /// request's inputs: every run is compared with the reference executor.
    @Test(.enabled(if: gpu, "no NVIDIA GPU / CUDA 13 libraries"))
    func replaysRestageNewInputs() throws {
        let source = try Self.snips()
        let opset = source.opset
        let optimized = try KilnOptimizer.optimize(
            source, evaluate: { try ReferenceKernels.run($0, inputs: $1, opset: opset) }, options: OptimizationOptions(memoryPlanShape: nil)).graph
        let engine = try CUDAEngine(graph: optimized, options: CUDAEngineOptions(maxBatch: 8, maxSequence: 32)) {
            try ReferenceKernels.run($0, inputs: $1, opset: $2)
        }
        let reference = try ReferenceExecutor(graph: source)
        for (index, (batch, sequence)) in [(3, 20), (4, 32), (3, 17), (4, 25), (2, 9)].enumerated() {
            let count = batch * sequence
            let ids: [Int64] = (0..<count).map { Int64(($0 * 31 + index * 97) % 900 + 5) }
            let mask: [Int64] = (0..<count).map { $0 % sequence < sequence - ($0 / sequence) * 3 ? 1 : 0 }
            let inputs: [String: Tensor] = [
                "input_ids": try Tensor(ints: ids, shape: [batch, sequence]), "attention_mask": try Tensor(ints: mask, shape: [batch, sequence]),
                "token_type_ids": try Tensor(ints: [Int64](repeating: 0, count: count), shape: [batch, sequence]),
            ]
            let expected = try reference.run(inputs)
            let got = try engine.run(inputs)
            for (name, tensor) in expected {
                #expect(got[name]!.shape == tensor.shape)
                let difference = zip(got[name]!.floats, tensor.floats).map { abs($0 - $1) }.max()!
                #expect(difference <= 2e-2, "case \(index) \(name): max-abs \(difference)")
            }
        }
    }
}
