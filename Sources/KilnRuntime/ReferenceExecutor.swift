import KilnCore
import KilnKernels

/// Runs a graph node by node with the reference kernels: slow, readable, and the yardstick
/// every optimized engine is tested against.
public struct ReferenceExecutor: InferenceEngine {
    /// How the float32 results of nodes are kept between nodes.
    public enum ActivationStorage: Sendable {
        /// As computed (the reference).
        case float32
        /// Rounded to fp16 after every node, as a GPU engine with fp16 activations stores them.
        /// Comparing this run with the float32 one shows how far fp16 storage alone moves a
        /// graph's outputs: the floor for a GPU engine's difference from the reference, which
        /// is large for graphs that amplify small changes (an int8 graph whose activations sit
        /// on rounding boundaries, say).
        case float16
    }

    /// The graph being executed.
    public let graph: Graph
    /// How node results are stored between nodes.
    public let activationStorage: ActivationStorage
    private let interpreter: GraphInterpreter

    /// Prepares `graph` for execution.
    /// Throws when the graph reads undefined values or uses an operator without a kernel.
    public init(graph: Graph, activationStorage: ActivationStorage = .float32) throws {
        self.graph = graph
        self.activationStorage = activationStorage
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
        let storage = activationStorage
        return try interpreter.run(inputs) { _, node, operands in
            let results = try ReferenceKernels.run(node, inputs: operands, opset: opset)
            return storage == .float16 ? try results.map(Self.roundedToFloat16) : results
        }
    }

    /// `tensor` with every float32 element rounded to the nearest fp16 value (other dtypes as they are).
    static func roundedToFloat16(_ tensor: Tensor) throws -> Tensor {
        guard tensor.dtype == .float32 else { return tensor }
        return try Tensor(floats: tensor.floats.map { Float(Float16($0)) }, shape: tensor.shape)
    }
}
