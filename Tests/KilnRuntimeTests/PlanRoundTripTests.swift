import Foundation
import KilnCore
import KilnONNX
import KilnRuntime
import Testing

/// A real model written to a plan and read back runs exactly as before.
@Suite struct PlanRoundTripTests {
    @Test(arguments: GoldenFixture.all(in: "models").prefix(4))
    func planOfAFixtureRunsIdentically(_ fixture: GoldenFixture) throws {
        let graph = try ONNXImporter().load(fixture.modelURL)
        let header = PlanHeader(
            kilnVersion: "test", target: PlanTarget(kind: "cpu", architecture: "any", requiredFeatures: []), precision: "fp32",
            sourceModelSHA256: "", sourceModelName: fixture.name, inputs: graph.inputs, outputs: graph.outputs,
            createdAt: "")
        let decoded = try PlanFile.decode(try PlanFile.encode(Plan(header: header, graph: graph)))
        #expect(decoded.graph.initializers == graph.initializers)
        let inputs = try fixture.tensors("inputs")
        #expect(try ReferenceExecutor(graph: decoded.graph).run(inputs) == ReferenceExecutor(graph: graph).run(inputs))
    }
}
