import Foundation
import KilnCore
import KilnONNX
import KilnRuntime
import Testing

/// Importer edge cases from Tests/Fixtures/import: every initializer dtype in raw and typed
/// storage, external data, old-style initializers listed as inputs, symbolic dims, and the
/// models Kiln must refuse with a clear message.
@Suite struct ImportFixtureTests {
    func fixture(_ name: String) throws -> GoldenFixture {
        try #require(GoldenFixture.all(in: "import").first { $0.name == name }, "fixture import/\(name) missing")
    }

    @Test(arguments: ["initializer-dtypes", "external-data", "initializers-as-inputs"])
    func importedValuesMatchONNXRuntime(_ name: String) throws {
        try checkFixture(try fixture(name))
    }

    @Test func missingExternalDataSaysWhichFile() throws {
        let error = try #require(throws: KilnError.self) { try ONNXImporter().load(try fixture("missing-external").modelURL) }
        #expect(error.description.contains("not found next to the model"), "\(error)")
    }

    @Test(arguments: ["unsupported-op-conv", "unsupported-op-custom-domain"])
    func unsupportedOperatorNamesTheOperatorAndTheSupportedList(_ name: String) throws {
        let error = try #require(throws: KilnError.self) { try ONNXImporter().load(try fixture(name).modelURL) }
        guard case let .unsupportedOperator(opType, _, node, opset, supported) = error else {
            Issue.record("expected unsupportedOperator, got \(error)")
            return
        }
        #expect(!opType.isEmpty && !node.isEmpty && opset > 0)
        #expect(supported.contains("MatMul"))
        #expect(error.description.contains(opType) && error.description.contains(node))
    }

    @Test func tooOldOpsetIsRefused() throws {
        let error = try #require(throws: KilnError.self) { try ONNXImporter().load(try fixture("opset7-too-old").modelURL) }
        guard case .unsupportedOpset(_, 7, _) = error else {
            Issue.record("expected unsupportedOpset 7, got \(error)")
            return
        }
    }

    @Test func symbolicDimensionsKeepTheirNames() throws {
        let graph = try ONNXImporter().load(try fixture("value-info-symbolic-dims").modelURL)
        let dims = graph.inputs.flatMap { $0.shape ?? [] }
        #expect(dims.contains(.symbolic("batch")) && dims.contains(.symbolic("seq")), "\(graph.inputs.map(\.signature))")
        #expect(!graph.valueInfo.isEmpty)
    }
}

/// The executor checks callers' inputs against the model's signature before running.
@Suite struct InputValidationTests {
    func model() throws -> (ReferenceExecutor, [String: Tensor]) {
        let fixture = try #require(GoldenFixture.all(in: "models").first, "no model fixtures")
        let executor = try ReferenceExecutor(graph: try ONNXImporter().load(fixture.modelURL))
        return (executor, try fixture.tensors("inputs"))
    }

    @Test func wrongNameDTypeRankAndMissingInputAreClearErrors() throws {
        let (executor, inputs) = try model()
        let name = try #require(inputs.keys.sorted().first)
        var renamed = inputs
        renamed["not_an_input"] = renamed.removeValue(forKey: name)
        #expect(throws: KilnError.self) { try executor.run(renamed) }

        var wrongType = inputs
        wrongType[name] = try Tensor(floats: inputs[name]!.floats, shape: inputs[name]!.shape)
        let dtypeError = try #require(throws: KilnError.self) { try executor.run(wrongType) }
        #expect(dtypeError.description.contains("dtype"))

        var wrongRank = inputs
        wrongRank[name] = try inputs[name]!.reshaped([inputs[name]!.count])
        let rankError = try #require(throws: KilnError.self) { try executor.run(wrongRank) }
        #expect(rankError.description.contains("rank"))

        var missing = inputs
        missing[name] = nil
        let missingError = try #require(throws: KilnError.self) { try executor.run(missing) }
        #expect(missingError.description.contains("missing"))
    }

    @Test func mismatchedSymbolicDimensionIsAClearError() throws {
        let (executor, inputs) = try model()
        guard inputs.count >= 2 else { return }
        let name = try #require(inputs.keys.sorted().last)
        let tensor = inputs[name]!
        // Drop the last column of one input only: `seq` now disagrees between inputs.
        let shorter = try Tensor(ints: Array(tensor.ints.prefix(tensor.shape[0] * (tensor.shape[1] - 1))), shape: [tensor.shape[0], tensor.shape[1] - 1])
        var mismatched = inputs
        mismatched[name] = shorter
        #expect(throws: KilnError.self) { try executor.run(mismatched) }
    }
}
