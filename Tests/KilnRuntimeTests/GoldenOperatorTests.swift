import Foundation
import KilnCore
import KilnKernels
import KilnONNX
import KilnRuntime
import Testing

/// Single-operator golden tests: each fixture under Tests/Fixtures/ops is one ONNX operator
/// (with a particular opset, attribute set and broadcasting case) and ONNX Runtime's output;
/// the reference kernel must match within the manifest's tolerance.
@Suite struct GoldenOperatorTests {
    @Test func fixturesArePresent() {
        #expect(GoldenFixture.all(in: "ops").count >= 40, "expected operator fixtures; regenerate with tools/make_fixtures.py")
    }

    @Test(arguments: GoldenFixture.all(in: "ops"))
    func matchesONNXRuntime(_ fixture: GoldenFixture) throws {
        try checkFixture(fixture)
    }

    /// The coverage table the importer enforces and the kernels must agree.
    @Test func everySupportedOperatorHasAReferenceKernel() {
        let missing = OperatorCoverage.operatorNames.filter { ReferenceKernels.table[$0] == nil }
        #expect(missing.isEmpty, "operators without a reference kernel: \(missing)")
        let unlisted = ReferenceKernels.table.keys.filter { !$0.contains("::") && OperatorCoverage.operators[$0] == nil }
        #expect(unlisted.isEmpty, "kernels missing from OperatorCoverage: \(unlisted)")
    }
}
