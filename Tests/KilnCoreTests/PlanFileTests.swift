import Foundation
import KilnCore
import Testing

@Suite struct PlanFileTests {
    static func samplePlan(requiredFeatures: [String] = []) throws -> Plan {
        let graph = Graph(
            name: "tiny",
            inputs: [ValueInfo(name: "x", dtype: .float32, shape: [.symbolic("batch"), .fixed(3)])],
            outputs: [ValueInfo(name: "y", dtype: .float32, shape: [.symbolic("batch"), .fixed(2)])],
            initializers: [
                "w": try Tensor(floats: [1, 2, 3, 4, 5, 6], shape: [3, 2]),
                "half": try Tensor(floats: [0.1, -2], shape: [2], dtype: .float16),
                "ids": try Tensor(ints: [1, -2, 3], shape: [3]),
                "flags": try Tensor(bools: [true, false], shape: [2]),
            ],
            nodes: [
                Node(name: "mm", opType: "MatMul", inputs: ["x", "w"], outputs: ["y"]),
                Node(name: "fill", opType: "ConstantOfShape", inputs: ["ids"], outputs: ["z"], attributes: ["value": .tensor(try Tensor(floats: [-.infinity], shape: [1]))]),
            ],
            opsetImports: ["": 17])
        let header = PlanHeader(
            kilnVersion: "test", target: PlanTarget(kind: "cpu", architecture: "avx512", requiredFeatures: requiredFeatures),
            precision: "fp32", sourceModelSHA256: SHA256.hexDigest(Array("model".utf8)), sourceModelName: "tiny.onnx",
            inputs: graph.inputs, outputs: graph.outputs, buildOptions: ["max_seq": "64"], createdAt: "2026-11-25T00:00:00Z")
        return Plan(header: header, graph: graph, sections: ["memory-plan": Data("{\"arena\":128}".utf8)])
    }

    @Test func roundTripsGraphWeightsAndSections() throws {
        let plan = try Self.samplePlan()
        let decoded = try PlanFile.decode(try PlanFile.encode(plan), cpu: CPUFeatures(flags: []))
        #expect(decoded.header == plan.header)
        #expect(decoded.graph == plan.graph)
        #expect(decoded.sections == plan.sections)
    }

    @Test func sha256MatchesKnownVectors() {
        #expect(SHA256.hexDigest([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hexDigest(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hexDigest(long) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func otherFormatVersionSaysRebuild() throws {
        var bytes = [UInt8](try PlanFile.encode(try Self.samplePlan()))
        bytes[8] = 99
        let error = try #require(throws: KilnError.self) { try PlanFile.decode(Data(bytes)) }
        #expect(error.description.contains("format 99") && error.description.contains("kiln build"))
    }

    @Test func missingCPUFeatureSaysWhichAndRebuild() throws {
        let bytes = try PlanFile.encode(try Self.samplePlan(requiredFeatures: ["avx512_bf16"]))
        let error = try #require(throws: KilnError.self) { try PlanFile.decode(bytes, cpu: CPUFeatures(flags: ["avx2"])) }
        #expect(error.description.contains("avx512_bf16") && error.description.contains("rebuild"))
        #expect(try PlanFile.decode(bytes, cpu: CPUFeatures(flags: ["avx512_bf16"])).graph.nodes.count == 2)
    }

    /// Fuzz: every truncation point and a few hundred random byte corruptions must give a
    /// KilnError, never a crash and never a plan that silently differs.
    @Test func truncatedOrCorruptedPlansAreRejected() throws {
        let original = [UInt8](try PlanFile.encode(try Self.samplePlan()))
        for cut in 0..<original.count {
            #expect(throws: KilnError.self) { try PlanFile.decode(Data(original[..<cut])) }
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            var bytes = original
            let position = Int.random(in: 0..<bytes.count, using: &generator)
            bytes[position] ^= UInt8.random(in: 1...255, using: &generator)
            #expect(throws: KilnError.self, "flipping byte \(position) went unnoticed") { try PlanFile.decode(Data(bytes)) }
        }
    }

    /// `read` streams the file (checksum in chunks, fp32 weights straight into their tensors):
    /// same plan as decoding the bytes, and truncated or corrupted files still fail cleanly.
    @Test func readingAFileMatchesDecodingItsBytes() throws {
        var plan = try Self.samplePlan()
        // A weight larger than the 1 MiB checksum chunk, so the streamed checksum spans chunks.
        plan.graph.initializers["big"] = try Tensor(floats: (0..<300_000).map { Float($0) * 0.5 - 7 }, shape: [600, 500])
        let bytes = try PlanFile.encode(plan)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-planfile-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("tiny.kiln")
        try bytes.write(to: url)
        let read = try PlanFile.read(url, cpu: CPUFeatures(flags: []))
        #expect(read.graph == plan.graph)
        #expect(read.header == plan.header && read.sections == plan.sections)
        for cut in [0, 23, 24 + 10, bytes.count / 2, bytes.count - 1] {
            try bytes.prefix(cut).write(to: url)
            #expect(throws: KilnError.self, "a plan cut at \(cut) bytes was read") { try PlanFile.read(url, cpu: CPUFeatures(flags: [])) }
        }
        var corrupted = [UInt8](bytes)
        corrupted[corrupted.count - 5] ^= 0x40
        try Data(corrupted).write(to: url)
        let error = try #require(throws: KilnError.self) { try PlanFile.read(url, cpu: CPUFeatures(flags: [])) }
        #expect(error.description.contains("checksum"))
        #expect(throws: KilnError.self) { try PlanFile.read(directory.appendingPathComponent("missing.kiln")) }
    }

    @Test func notAPlanSaysHowToBuildOne() throws {
        let error = try #require(throws: KilnError.self) { try PlanFile.decode(Data("{\"json\": true}".utf8), source: "model.kiln") }
        #expect(error.description.contains("kiln build"))
    }
}
