import Foundation
import KilnCore
import KilnONNX
import KilnRuntime
import Testing

/// Whole-model golden tests: every fixture under Tests/Fixtures/models (BERT, DistilBERT,
/// RoBERTa, ALBERT, ELECTRA, MiniLM... exported by both PyTorch exporters) must match ONNX
/// Runtime's outputs within the manifest's tolerance (1e-4 max-abs).
@Suite struct GoldenModelTests {
    @Test func fixturesArePresent() {
        #expect(GoldenFixture.all(in: "models").count >= 10, "expected model fixtures; regenerate with tools/make_fixtures.py")
    }

    @Test(arguments: GoldenFixture.all(in: "models"))
    func matchesONNXRuntime(_ fixture: GoldenFixture) throws {
        try checkFixture(fixture)
    }
}

/// Runs every input set of `fixture` and compares every output with ONNX Runtime's.
func checkFixture(_ fixture: GoldenFixture) throws {
    let graph = try ONNXImporter().load(fixture.modelURL)
    let executor = try ReferenceExecutor(graph: graph)
    #expect(!fixture.inputSets.isEmpty, "\(fixture.name) has no inputs folder")
    for set in fixture.inputSets {
        let outputs = try executor.run(try fixture.tensors(set.inputs))
        let expected = try fixture.tensors(set.outputs)
        #expect(!expected.isEmpty)
        for (name, reference) in expected {
            let actual = try #require(outputs[name], "\(fixture.name): output \(name) missing")
            #expect(actual.shape == reference.shape, "\(fixture.name)/\(set.inputs): \(name) shape \(actual.shape) vs \(reference.shape)")
            if reference.dtype.isFloatingPoint {
                let error = maxAbsDifference(actual, reference)
                #expect(error <= fixture.tolerance, "\(fixture.name)/\(set.inputs): \(name) max-abs \(error) > \(fixture.tolerance)")
            } else {
                #expect(actual.ints == reference.ints || actual.bools == reference.bools, "\(fixture.name)/\(set.inputs): \(name) differs")
            }
        }
    }
}
