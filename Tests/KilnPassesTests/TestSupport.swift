import Foundation
import KilnCore
import KilnKernels
import KilnONNX
import KilnPasses
import KilnRuntime

/// The reference kernels as a ``NodeEvaluator`` for `graph`'s opset.
func referenceEvaluator(opset: Int) -> NodeEvaluator {
    { node, inputs in try ReferenceKernels.run(node, inputs: inputs, opset: opset) }
}

/// Runs `graph` node by node and returns every value it computes (inputs and initializers included).
func allValues(of graph: Graph, inputs: [String: Tensor]) throws -> [String: Tensor] {
    var values = inputs.merging(graph.initializers) { lhs, _ in lhs }
    for node in try graph.topologicallySorted() {
        let operands = node.inputs.map { $0.isEmpty ? nil : values[$0] }
        let results = try ReferenceKernels.run(node, inputs: operands, opset: graph.opset)
        for (name, tensor) in zip(node.outputs, results) where !name.isEmpty { values[name] = tensor }
    }
    return values
}

extension GoldenFixture {
    /// The imported model.
    func loadGraph() throws -> Graph { try ONNXImporter().load(modelURL) }

    /// The manifest's `exporter` and `family`.
    var manifest: [String: Any] {
        let data = (try? Data(contentsOf: directory.appendingPathComponent("manifest.json"))) ?? Data()
        return ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]) ?? [:]
    }
}

/// The model fixtures, by name (for parameterized tests).
let modelFixtureNames: [String] = GoldenFixture.all(in: "models").map(\.name)

func modelFixture(_ name: String) -> GoldenFixture {
    GoldenFixture.all(in: "models").first { $0.name == name }!
}
