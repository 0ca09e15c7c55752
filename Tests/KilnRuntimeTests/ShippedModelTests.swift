import Foundation
import KilnCore
import KilnONNX
import KilnRuntime
import Testing

/// Every model Kiln ships in models/ must give ONNX Runtime's outputs (1e-4 max-abs) on the
/// reference executor and on the compiled engine. ONNX Runtime's outputs come from
/// tools/model_reference.py, which scripts/test runs (it sets KILN_REFERENCE_DIR).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["KILN_REFERENCE_DIR"] != nil, "needs KILN_REFERENCE_DIR (scripts/test sets it)"))
struct ShippedModelTests {
    static var cases: [GoldenFixture] {
        guard let root = ProcessInfo.processInfo.environment["KILN_REFERENCE_DIR"] else { return [] }
        let folder = URL(fileURLWithPath: root).appendingPathComponent("models")
        let entries = (try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? []
        return entries.sorted { $0.path < $1.path }.map { GoldenFixture(directory: $0, tolerance: 1e-4) }
    }

    static func modelURL(_ reference: GoldenFixture) throws -> URL {
        let data = try Data(contentsOf: reference.directory.appendingPathComponent("manifest.json"))
        let manifest = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let relative = try #require(manifest["model"] as? String)
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repository.appendingPathComponent(relative)
    }

    @Test func everyShippedModelHasAReference() throws {
        #expect(Self.cases.count >= 4, "expected references for support-en, banking77, snips, support-zh")
    }

    @Test(arguments: ShippedModelTests.cases)
    func referenceExecutorAndCompiledEngineMatchONNXRuntime(_ reference: GoldenFixture) throws {
        let graph = try ONNXImporter().load(try Self.modelURL(reference))
        let (engine, _) = try EngineGoldenTests.compile(graph: graph)
        let inputs = try reference.tensors("inputs")
        let expected = try reference.tensors("outputs")
        for (label, outputs) in [("reference", try ReferenceExecutor(graph: graph).run(inputs)), ("engine", try engine.run(inputs))] {
            for (name, tensor) in expected {
                let actual = try #require(outputs[name], "\(reference.name): \(name) missing")
                let error = maxAbsDifference(actual, tensor)
                #expect(error <= reference.tolerance, "\(reference.name) \(label): \(name) max-abs \(error)")
            }
        }
    }
}
