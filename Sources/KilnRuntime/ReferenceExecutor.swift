import KilnCore
import KilnKernels

/// Runs a graph node by node with the reference kernels: slow, readable, and the yardstick
/// every optimized engine is tested against.
public struct ReferenceExecutor: InferenceEngine {
    /// The graph being executed.
    public let graph: Graph
    private let interpreter: GraphInterpreter

    /// Prepares `graph` for execution.
    /// Throws when the graph reads undefined values or uses an operator without a kernel.
    public init(graph: Graph) throws {
        self.graph = graph
        interpreter = try GraphInterpreter(graph: graph)
        for node in interpreter.order where ReferenceKernels.kernel(for: node) == nil {
            throw KilnError.unsupportedOperator(
                opType: node.opType, domain: node.domain, node: node.name, opset: graph.opset,
                supported: ReferenceKernels.table.keys.sorted())
        }
    }

    public var inputSignature: [ValueInfo] { graph.inputs }
    public var outputSignature: [ValueInfo] { graph.outputs }

    /// Runs the graph.
    /// - Parameter inputs: one tensor per graph input, checked against the declared signature.
    /// - Returns: the graph outputs by name.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        try InputValidator.validate(inputs, against: graph.inputs)
        let opset = graph.opset
        return try interpreter.run(inputs) { _, node, operands in
            try ReferenceKernels.run(node, inputs: operands, opset: opset)
        }
    }
}
