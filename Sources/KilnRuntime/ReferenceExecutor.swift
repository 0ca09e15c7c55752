import KilnCore
import KilnKernels

/// Runs a graph node by node with the reference kernels: slow, readable, and the yardstick
/// every optimized engine is tested against.
public struct ReferenceExecutor: InferenceEngine {
    /// The graph being executed.
    public let graph: Graph
    private let order: [Node]
    /// For each value, the position of the last node that reads it (so it can be freed early).
    private let lastUse: [String: Int]

    /// Prepares `graph` for execution.
    /// Throws when the graph reads undefined values or uses an operator without a kernel.
    public init(graph: Graph) throws {
        self.graph = graph
        self.order = try graph.topologicallySorted()
        for node in order where ReferenceKernels.kernel(for: node) == nil {
            throw KilnError.unsupportedOperator(
                opType: node.opType, domain: node.domain, node: node.name, opset: graph.opset,
                supported: ReferenceKernels.table.keys.sorted())
        }
        var lastUse: [String: Int] = [:]
        for (position, node) in order.enumerated() {
            for input in node.inputs where !input.isEmpty { lastUse[input] = position }
        }
        for output in graph.outputs { lastUse[output.name] = order.count }
        self.lastUse = lastUse
    }

    public var inputSignature: [ValueInfo] { graph.inputs }
    public var outputSignature: [ValueInfo] { graph.outputs }

    /// Runs the graph.
    /// - Parameter inputs: one tensor per graph input, checked against the declared signature.
    /// - Returns: the graph outputs by name.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        try InputValidator.validate(inputs, against: graph.inputs)
        var values = inputs
        for (position, node) in order.enumerated() {
            let operands = try node.inputs.map { name -> Tensor? in
                if name.isEmpty { return nil }
                if let value = values[name] ?? graph.initializers[name] { return value }
                throw KilnError.invalidModel("node '\(node.name)' reads '\(name)', which has no value")
            }
            let results = try ReferenceKernels.run(node, inputs: operands, opset: graph.opset)
            for (name, tensor) in zip(node.outputs, results) where !name.isEmpty {
                values[name] = tensor
            }
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
