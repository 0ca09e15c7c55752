import Foundation
import KilnCore
import KilnONNX
import KilnRuntime
import Testing

/// Padding-free (packed) execution of right-padded ragged batches: the same values at every
/// real token and every per-sequence output as the padded run (5e-5) and as the reference
/// executor on the unoptimized graph (1e-4); zeros at padding positions of per-token outputs;
/// padded execution for graphs or masks that don't qualify.
@Suite struct PackedExecutionTests {
    /// Packed vs padded: the GEMMs see a different row count, so oneDNN may pick another blocking
    /// and sum in another order; on logits of magnitude ~10 that moves the last fp32 bits (1.5e-5
    /// seen in a CI run), far below the 1e-4 bound both keep against the reference.
    static let packedVersusPaddedTolerance: Float = 5e-5
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shippedModels = ["snips", "support-en", "banking77", "support-zh"]

    /// Engines with packing on and off for one graph, plus the unoptimized graph.
    static func engines(_ graph: Graph) throws -> (packed: Engine, padded: Engine) {
        let (packed, result) = try EngineGoldenTests.compile(graph: graph)
        return (packed, try Engine(graph: result.graph, packedExecution: false))
    }

    /// A ragged right-padded batch: lengths 12, 5, 9, 1 (CLS only) in S = 12, ids below `vocabulary`.
    static func raggedBatch(_ graph: Graph, lengths: [Int] = [12, 5, 9, 1], sequence: Int = 12) throws -> [String: Tensor] {
        var inputs: [String: Tensor] = [:]
        for input in graph.inputs {
            var values = [Int64](repeating: 0, count: lengths.count * sequence)
            for (row, length) in lengths.enumerated() {
                for column in 0..<length {
                    let index = row * sequence + column
                    switch input.name {
                    case "attention_mask": values[index] = 1
                    case "token_type_ids": values[index] = 0
                    default: values[index] = column == 0 ? 101 : Int64(200 + (index * 37) % 1000)
                    }
                }
            }
            inputs[input.name] = try Tensor(ints: values, shape: [lengths.count, sequence])
        }
        return inputs
    }

    @Test(arguments: shippedModels)
    func shippedModelRunsPackedAndMatchesPaddedAndReference(_ model: String) throws {
        let graph = try ONNXImporter().load(Self.repository.appendingPathComponent("models/\(model)/1/model.onnx"))
        let (packed, padded) = try Self.engines(graph)
        #expect(packed.usesPackedExecution, "\(model): \(packed.packingDescription)")
        #expect(!padded.usesPackedExecution)
        let inputs = try Self.raggedBatch(graph)
        let mask = try #require(inputs["attention_mask"])
        let packedOutputs = try packed.run(inputs)
        let paddedOutputs = try padded.run(inputs)
        let referenceOutputs = try ReferenceExecutor(graph: graph).run(inputs)
        for output in graph.outputs {
            let actual = try #require(packedOutputs[output.name])
            let paddedValue = try #require(paddedOutputs[output.name])
            #expect(actual.shape == paddedValue.shape, "\(model): \(output.name) \(actual.shape) vs \(paddedValue.shape)")
            let versusPadded = maxAbsDifferenceAtRealTokens(actual, paddedValue, mask: mask)
            let versusReference = maxAbsDifferenceAtRealTokens(actual, try #require(referenceOutputs[output.name]), mask: mask)
            #expect(versusPadded <= Self.packedVersusPaddedTolerance, "\(model): \(output.name) packed vs padded \(versusPadded)")
            #expect(versusReference <= 1e-4, "\(model): \(output.name) packed vs reference \(versusReference)")
            if actual.rank >= 2 && actual.shape[1] == 12 {
                #expect(valuesAtPadding(actual, mask: mask).allSatisfy { $0 == 0 }, "\(model): \(output.name) padding not zero")
            }
        }
    }

    /// Both exporters' graphs (TorchScript and dynamo, every architecture in the fixtures): ORT's
    /// outputs on the fixtures' ragged batches at real tokens, packed vs padded within packedVersusPaddedTolerance.
    @Test(arguments: GoldenFixture.all(in: "models"))
    func fixturePackedMatchesPaddedAndONNXRuntime(_ fixture: GoldenFixture) throws {
        let graph = try ONNXImporter().load(fixture.modelURL)
        let (packed, padded) = try Self.engines(graph)
        for set in fixture.inputSets {
            let inputs = try fixture.tensors(set.inputs)
            let packedOutputs = try packed.run(inputs)
            let paddedOutputs = try padded.run(inputs)
            let mask = inputs["attention_mask"]
            for (name, expected) in try fixture.tensors(set.outputs) {
                let actual = try #require(packedOutputs[name])
                let paddedValue = try #require(paddedOutputs[name])
                let versusPadded = mask.map { maxAbsDifferenceAtRealTokens(actual, paddedValue, mask: $0) } ?? maxAbsDifference(actual, paddedValue)
                let versusORT = mask.map { maxAbsDifferenceAtRealTokens(actual, expected, mask: $0) } ?? maxAbsDifference(actual, expected)
                #expect(versusPadded <= Self.packedVersusPaddedTolerance, "\(fixture.name)/\(set.inputs): \(name) packed vs padded \(versusPadded) (\(packed.packingDescription))")
                #expect(versusORT <= 1e-4, "\(fixture.name)/\(set.inputs): \(name) packed vs ORT \(versusORT)")
            }
        }
    }

    /// The standard BERT exports of both exporters must qualify (the point of the feature).
    @Test(arguments: ["bert-torchscript-opset17", "bert-dynamo-opset18", "minilm-torchscript-opset14", "minilm-dynamo-opset18"])
    func standardBERTExportsQualify(_ name: String) throws {
        let fixture = try #require(GoldenFixture.all(in: "models").first { $0.name == name })
        let (packed, _) = try Self.engines(try ONNXImporter().load(fixture.modelURL))
        #expect(packed.usesPackedExecution, "\(name): \(packed.packingDescription)")
    }

    /// A graph with a node that mixes tokens (a mean over the sequence axis) runs padded, says
    /// why, and still gives the padded results.
    @Test func graphThatMixesTokensFallsBackToPadded() throws {
        var graph = try ONNXImporter().load(Self.repository.appendingPathComponent("models/snips/1/model.onnx"))
        let hidden = try #require(graph.nodes.first { $0.opType == "Gather" && (try? $0.int("axis", default: 0)) == 1 }?.inputs.first)
        graph.initializers["mean_axes"] = try Tensor(ints: [1], shape: [1])
        graph.nodes.append(Node(name: "mean_pool", opType: "ReduceMean", inputs: [hidden, "mean_axes"], outputs: ["mean_pooled"], attributes: ["keepdims": .int(0)]))
        graph.outputs.append(ValueInfo(name: "mean_pooled", dtype: .float32, shape: nil))
        let (engine, padded) = try Self.engines(graph)
        #expect(!engine.usesPackedExecution)
        #expect(engine.packingDescription.contains("mean_pool"), "\(engine.packingDescription)")
        let inputs = try Self.raggedBatch(graph)
        #expect(try engine.run(inputs) == (try padded.run(inputs)))
    }

    /// Masks that are not a right-padded 0/1 prefix (left padding, holes, all padding) run
    /// padded: bit-identical to the engine with packing off.
    @Test func nonPrefixMasksRunPadded() throws {
        let graph = try ONNXImporter().load(Self.repository.appendingPathComponent("models/snips/1/model.onnx"))
        let (packed, padded) = try Self.engines(graph)
        var inputs = try Self.raggedBatch(graph, lengths: [4, 4], sequence: 6)
        for mask in [[0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]] {
            inputs["attention_mask"] = try Tensor(ints: mask.map(Int64.init), shape: [2, 6])
            #expect(try packed.run(inputs) == (try padded.run(inputs)), "mask \(mask)")
        }
    }

    /// Single sequences with padding (batch 1) and varying shapes reuse one engine correctly.
    @Test func repeatedRaggedShapesStayCorrect() throws {
        let graph = try ONNXImporter().load(Self.repository.appendingPathComponent("models/snips/1/model.onnx"))
        let (packed, padded) = try Self.engines(graph)
        for lengths in [[3], [7, 2], [1, 1, 1], [16, 4, 9, 12, 5]] {
            let inputs = try Self.raggedBatch(graph, lengths: lengths, sequence: 16)
            let mask = try #require(inputs["attention_mask"])
            let a = try packed.run(inputs), b = try padded.run(inputs)
            for (name, tensor) in b {
                let error = maxAbsDifferenceAtRealTokens(try #require(a[name]), tensor, mask: mask)
                #expect(error <= Self.packedVersusPaddedTolerance, "\(lengths): \(name) \(error)")
            }
        }
    }

    @Test func packingCanBeTurnedOff() throws {
        let graph = try ONNXImporter().load(Self.repository.appendingPathComponent("models/snips/1/model.onnx"))
        let (packed, padded) = try Self.engines(graph)
        #expect(packed.usesPackedExecution && !padded.usesPackedExecution)
        #expect(padded.packingDescription.hasPrefix("padding-free batches: yes"), "qualifies even when turned off: \(padded.packingDescription)")
    }
}

/// Max-abs difference over the entries of real tokens: for `[B, S, ...]` tensors only
/// positions where `mask[b, s] == 1`; other tensors compare whole.
func maxAbsDifferenceAtRealTokens(_ actual: Tensor, _ expected: Tensor, mask: Tensor) -> Float {
    guard actual.shape == expected.shape else { return .infinity }
    guard actual.rank >= 2, Array(actual.shape.prefix(2)) == mask.shape else { return maxAbsDifference(actual, expected) }
    let rowSize = actual.shape.dropFirst(2).reduce(1, *)
    let (a, e, m) = (actual.floats, expected.floats, mask.ints)
    var worst: Float = 0
    for token in 0..<m.count where m[token] == 1 {
        for index in (token * rowSize)..<((token + 1) * rowSize) { worst = max(worst, abs(a[index] - e[index])) }
    }
    return worst
}

/// The entries of `[B, S, ...]` `tensor` at padding positions (`mask[b, s] == 0`).
func valuesAtPadding(_ tensor: Tensor, mask: Tensor) -> [Float] {
    let rowSize = tensor.shape.dropFirst(2).reduce(1, *)
    let (values, m) = (tensor.floats, mask.ints)
    return (0..<m.count).filter { m[$0] == 0 }.flatMap { values[($0 * rowSize)..<(($0 + 1) * rowSize)] }
}
