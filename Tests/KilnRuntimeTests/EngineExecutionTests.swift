import KilnCore
import KilnKernels
@testable import KilnRuntime
import Testing

/// How the compiled engine executes, beyond its numbers (those are the golden tests'): the QKV
/// split elision binds where it should and its fallback gives the unrewritten operands; reused
/// output buffers never leak one call's values into another's.
@Suite struct EngineExecutionTests {
    @Test("every QKV Split feeding one attention is passed through, attention reads QKV packed")
    func qkvSplitElisionBinds() throws {
        let fixture = try #require(GoldenFixture.all(in: "models").first { $0.name == "bert-torchscript-opset17" })
        let (engine, result) = try EngineGoldenTests.compile(fixture)
        let attentions = try #require(result.opCounts["kiln::Attention"])
        #expect(result.opCounts["Split"] == attentions, "qkv-fusion leaves one Split per attention: \(result.opCounts)")
        #expect(engine.kernelSummary["Split"] == "\(attentions) fast, 0 reference", "\(engine.kernelSummary)")
    }

    @Test("packed attention equals attention on split Q/K/V; unpack gives the split operands (≤ 1e-6)")
    func packedAttentionMatchesSplit() throws {
        let (batch, sequence, hidden, heads) = (2, 7, 24, 3)
        var qkvValues: [Float] = []
        for index in 0..<(batch * sequence * 3 * hidden) { qkvValues.append(Float((index * 37) % 101) / 50 - 1) }
        let qkv = try Tensor(floats: qkvValues, shape: [batch, sequence, 3 * hidden])
        var maskValues = [Float](repeating: 0, count: batch * sequence)
        maskValues[sequence + 5] = -10_000
        maskValues[sequence + 6] = -10_000
        let mask = try Tensor(floats: maskValues, shape: [batch, 1, 1, sequence])
        let split = try QKVSplitElision.unpack([qkv, qkv, qkv, mask], opset: 17)
        #expect(split.count == 4 && split[3] == mask)
        let q = try #require(split[0])
        #expect(q.shape == [batch, sequence, hidden])
        #expect(q.floats[hidden - 1] == qkvValues[hidden - 1] && q.floats[hidden] == qkvValues[3 * hidden])
        let context = try ExecutionContext()
        let packed = try #require(try FastKernels.attention(numHeads: heads, scale: nil, nanToZero: false, packedQKV: true, [qkv, qkv, qkv, mask], context: context))
        let unpacked = try #require(try FastKernels.attention(numHeads: heads, scale: nil, nanToZero: false, packedQKV: false, split, context: context))
        #expect(packed[0].shape == [batch, sequence, hidden])
        #expect(maxAbsDifference(packed[0], unpacked[0]) <= 1e-6)
    }

    @Test("reused buffers: alternating shapes give the same outputs as a fresh engine, every time")
    func bufferReuseAcrossShapes() throws {
        let fixture = try #require(GoldenFixture.all(in: "models").first { $0.name == "minilm-torchscript-opset14" })
        let (engine, _) = try EngineGoldenTests.compile(fixture)
        let shapes = [(2, 9), (1, 5), (2, 9), (3, 4), (1, 5)]
        let inputs = try shapes.map { try EngineCheck.sampleInputs(for: engine.inputSignature, batch: $0.0, sequence: $0.1, vocabularyLimit: 50) }
        var first: [Int: [String: Tensor]] = [:]
        for (index, feed) in inputs.enumerated() {
            let outputs = try engine.run(feed)
            let key = shapes[index].0 * 100 + shapes[index].1
            if let earlier = first[key] { #expect(outputs == earlier, "shape \(shapes[index]) changed between calls") }
            first[key] = first[key] ?? outputs
        }
        let (fresh, _) = try EngineGoldenTests.compile(fixture)
        for (index, feed) in inputs.enumerated() {
            let key = shapes[index].0 * 100 + shapes[index].1
            let expected = try fresh.run(feed)
            for (name, tensor) in expected { #expect(maxAbsDifference(tensor, first[key]![name]!) == 0, "\(name) \(shapes[index])") }
        }
    }

    @Test("weights only packed GEMMs read are dropped from the engine's graph; results unchanged; a misfit input is a clear error")
    func packedWeightsAreNotKeptTwice() throws {
        let (rows, inputSize, outputSize) = (3, 5, 4)
        let weights = (0..<(inputSize * outputSize)).map { Float($0 % 7) / 4 - 0.5 }
        let bias = (0..<outputSize).map { Float($0) / 8 }
        let node = Node(name: "fc", opType: KilnOperators.fusedMatMul, domain: KilnOperators.domain, inputs: ["x", "W", "b"], outputs: ["y"])
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, shape: nil)], outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)],
            initializers: ["W": try Tensor(floats: weights, shape: [inputSize, outputSize]), "b": try Tensor(floats: bias, shape: [outputSize])],
            nodes: [node], opsetImports: ["": 17, KilnOperators.domain: 1])
        let engine = try Engine(graph: graph)
        #expect(engine.graph.initializers["W"] == nil, "the packed kernel holds W")
        #expect(engine.graph.initializers["b"] != nil, "the bias is small and read as an operand")
        let input = (0..<(rows * inputSize)).map { Float($0) / 10 }
        let output = try #require(try engine.run(["x": try Tensor(floats: input, shape: [rows, inputSize])])["y"])
        for row in 0..<rows {
            for column in 0..<outputSize {
                var expected = bias[column]
                for k in 0..<inputSize { expected += input[row * inputSize + k] * weights[k * outputSize + column] }
                #expect(abs(output.floats[row * outputSize + column] - expected) <= 1e-5)
            }
        }
        #expect(throws: KilnError.self) { try engine.run(["x": try Tensor(floats: [1, 2, 3], shape: [1, 3])]) }
    }

    @Test("int8 weight levels only the packed int8 GEMM reads are dropped from the engine's graph; results equal the reference")
    func packedInt8WeightsAreNotKeptTwice() throws {
        let (rows, inputSize, outputSize) = (3, 8, 4)
        let levels = (0..<(inputSize * outputSize)).map { Int64($0 % 15) - 7 }
        let scales = (0..<outputSize).map { 0.01 + Float($0) / 100 }
        var node = Node(name: "fc", opType: KilnOperators.fusedMatMul, domain: KilnOperators.domain, inputs: ["x", "Wq", "", "s"], outputs: ["y"])
        node.attributes[KilnOperators.precisionAttribute] = .string(KilnOperators.int8Precision)
        node.attributes[KilnOperators.inputScaleAttribute] = .float(0.02)
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, shape: nil)], outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil)],
            initializers: ["Wq": try Tensor(ints: levels, shape: [inputSize, outputSize], dtype: .int8), "s": try Tensor(floats: scales, shape: [outputSize])],
            nodes: [node], opsetImports: ["": 17, KilnOperators.domain: 1])
        let input = try Tensor(floats: (0..<(rows * inputSize)).map { Float($0 % 11) / 5 - 1 }, shape: [rows, inputSize])
        let expected = try #require(try ReferenceExecutor(graph: graph).run(["x": input])["y"])
        let engine = try Engine(graph: graph)
        #expect(engine.kernelSummary["kiln:FusedMatMul"] == "1 fast, 0 reference", "the int8 node runs on the packed kernel")
        #expect(engine.graph.initializers["Wq"] == nil, "the packed int8 kernel holds the levels")
        #expect(engine.graph.initializers["s"] != nil, "the scales are small and stay")
        let output = try #require(try engine.run(["x": input])["y"])
        #expect(maxAbsDifference(output, expected) <= 1e-5)
        #expect(throws: KilnError.self) { try engine.run(["x": try Tensor(floats: [1, 2, 3], shape: [1, 3])]) }
    }

    @Test("a weight two GEMMs share is dropped only after both are bound; one another node reads stays")
    func sharedWeightsAreReleasedOnlyAfterTheirLastReader() throws {
        let (inputSize, outputSize) = (4, 4)
        let weights = (0..<(inputSize * outputSize)).map { Float($0 % 5) / 3 - 0.5 }
        let other = (0..<(inputSize * outputSize)).map { Float($0 % 3) / 2 }
        func gemm(_ name: String, _ input: String, _ weight: String, _ output: String) -> Node {
            Node(name: name, opType: KilnOperators.fusedMatMul, domain: KilnOperators.domain, inputs: [input, weight], outputs: [output])
        }
        let graph = Graph(
            inputs: [ValueInfo(name: "x", dtype: .float32, shape: nil)],
            outputs: [ValueInfo(name: "y", dtype: .float32, shape: nil), ValueInfo(name: "z", dtype: .float32, shape: nil)],
            initializers: ["W": try Tensor(floats: weights, shape: [inputSize, outputSize]), "V": try Tensor(floats: other, shape: [inputSize, outputSize])],
            nodes: [gemm("first", "x", "W", "h"), gemm("second", "h", "W", "y"), gemm("third", "x", "V", "v"),
                    Node(name: "plus", opType: "Add", inputs: ["v", "V"], outputs: ["z"])],
            opsetImports: ["": 17, KilnOperators.domain: 1])
        let engine = try Engine(graph: graph)
        #expect(engine.graph.initializers["W"] == nil, "both readers of W are packed GEMMs")
        #expect(engine.graph.initializers["V"] != nil, "the Add still reads V")
        // Four rows, so that the Add's [4, 4] + V[4, 4] is well-formed.
        let input = (0..<(4 * inputSize)).map { Float($0) / 10 - 0.3 }
        let outputs = try engine.run(["x": try Tensor(floats: input, shape: [4, inputSize])])
        let reference = try ReferenceExecutor(graph: graph).run(["x": try Tensor(floats: input, shape: [4, inputSize])])
        for name in ["y", "z"] { #expect(maxAbsDifference(try #require(outputs[name]), try #require(reference[name])) <= 1e-5, "\(name)") }
    }
}
