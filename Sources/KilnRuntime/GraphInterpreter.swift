import KilnCore

/// The node-by-node walk that both the reference executor and the compiled engine do: feed
/// each node its operands (graph inputs, weights or earlier results), keep its results, free
/// each value after its last reader, and collect the graph outputs.
struct GraphInterpreter: Sendable {
    let graph: Graph
    /// Nodes in execution order.
    let order: [Node]
    /// For each value, the position of the last node that reads it.
    private let lastUse: [String: Int]

    init(graph: Graph) throws {
        self.graph = graph
        order = try graph.topologicallySorted()
        var lastUse: [String: Int] = [:]
        for (position, node) in order.enumerated() {
            for input in node.inputs where !input.isEmpty { lastUse[input] = position }
        }
        for output in graph.outputs { lastUse[output.name] = order.count }
        self.lastUse = lastUse
    }

    /// Runs every node with `execute(position, node, operands)` and returns the graph outputs.
    func run(_ inputs: [String: Tensor], execute: (Int, Node, [Tensor?]) throws -> [Tensor]) throws -> [String: Tensor] {
        var values = inputs
        for (position, node) in order.enumerated() {
            let operands = try node.inputs.map { name -> Tensor? in
                if name.isEmpty { return nil }
                if let value = values[name] ?? graph.initializers[name] { return value }
                throw KilnError.invalidModel("node '\(node.name)' reads '\(name)', which has no value")
            }
            let results = try execute(position, node, operands)
            for (name, tensor) in zip(node.outputs, results) where !name.isEmpty { values[name] = tensor }
            for name in node.inputs where lastUse[name] == position { values[name] = nil }
        }
        var outputs: [String: Tensor] = [:]
        for output in graph.outputs {
            guard let tensor = values[output.name] ?? graph.initializers[output.name] else {
                throw KilnError.invalidModel("output '\(output.name)' was never produced")
            }
            outputs[output.name] = tensor
        }
        return outputs
    }
}
