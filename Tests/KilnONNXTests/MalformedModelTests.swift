import Foundation
import KilnCore
import KilnONNX
import Testing

/// Files that are not valid ONNX models must give a KilnError with a message, never a crash.
@Suite struct MalformedModelTests {
    static var sampleModel: URL {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models")
        let folders = (try? FileManager.default.contentsOfDirectory(at: fixtures, includingPropertiesForKeys: nil)) ?? []
        return folders.sorted { $0.path < $1.path }.first!.appendingPathComponent("model.onnx")
    }

    @Test func nonONNXFilesAreRejected() throws {
        for bytes in [Data(), Data("hello, this is not a model\n".utf8), Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), Data(repeating: 0xFF, count: 64)] {
            let error = try #require(throws: KilnError.self) { try ONNXImporter().load(data: bytes) }
            #expect(error.description.contains("ONNX"), "\(error)")
        }
    }

    @Test func missingFileIsAnIOError() throws {
        let error = try #require(throws: KilnError.self) { try ONNXImporter().load(URL(fileURLWithPath: "/nonexistent/model.onnx")) }
        #expect(error.description.contains("/nonexistent/model.onnx"))
    }

    @Test func truncatedModelsAreRejected() throws {
        let bytes = try Data(contentsOf: Self.sampleModel)
        let full = try ONNXImporter().load(data: bytes)
        #expect(!full.nodes.isEmpty)
        // Every cut point through the file: each must fail cleanly (or, rarely, parse a prefix
        // that is itself a valid model, which the importer then validates).
        var rejected = 0
        for cut in stride(from: 0, to: bytes.count - 1, by: max(1, bytes.count / 97)) {
            do { _ = try ONNXImporter().load(data: bytes.prefix(cut)) } catch is KilnError { rejected += 1 }
        }
        #expect(rejected > 90)
    }

    @Test func corruptedBytesNeverCrashTheImporter() throws {
        let original = [UInt8](try Data(contentsOf: Self.sampleModel))
        var generator = SplitMix64(seed: 42)
        var outcomes = (loaded: 0, rejected: 0)
        for _ in 0..<300 {
            var bytes = original
            for _ in 0..<4 {
                let position = Int(generator.next() % UInt64(bytes.count))
                bytes[position] = UInt8(truncatingIfNeeded: generator.next())
            }
            do {
                _ = try ONNXImporter().load(data: Data(bytes))
                outcomes.loaded += 1
            } catch is KilnError {
                outcomes.rejected += 1
            }
        }
        #expect(outcomes.loaded + outcomes.rejected == 300)
        #expect(outcomes.rejected > 0)
    }
}

/// A small deterministic random generator so the corruption test is reproducible.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E4B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
