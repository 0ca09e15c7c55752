import KilnCore

/// What a reference kernel sees: the node, its input tensors and the model's opset.
public struct OpContext: Sendable {
    /// The node being executed (attributes, names for error messages).
    public let node: Node
    /// Input tensors by position; nil where an optional input was omitted.
    public let inputs: [Tensor?]
    /// The default-domain opset of the model (per-opset semantics depend on it).
    public let opset: Int

    public init(node: Node, inputs: [Tensor?], opset: Int) {
        self.node = node
        self.inputs = inputs
        self.opset = opset
    }

    /// The required input at `index`.
    public func input(_ index: Int) throws -> Tensor {
        guard index < inputs.count, let tensor = inputs[index] else {
            throw failure("missing required input #\(index)")
        }
        return tensor
    }

    /// The optional input at `index`, or nil.
    public func optionalInput(_ index: Int) -> Tensor? {
        index < inputs.count ? inputs[index] : nil
    }

    /// An error about this node.
    public func failure(_ message: String) -> KilnError {
        .invalidNode(node: node.name, opType: node.opType, message: message)
    }

    /// Normalizes a possibly negative axis against `rank`, or throws.
    public func axis(_ value: Int64, rank: Int) throws -> Int {
        let axis = Int(value) < 0 ? Int(value) + rank : Int(value)
        guard axis >= 0 && axis < max(rank, 1) else { throw failure("axis \(value) is out of range for rank \(rank)") }
        return axis
    }
}

/// A reference kernel: inputs in, outputs out, no state.
public typealias ReferenceKernel = @Sendable (OpContext) throws -> [Tensor]

/// The slow, obviously-correct implementation of every operator Kiln supports.
///
/// Each kernel follows the ONNX specification literally (including per-opset differences) and
/// computes in `Float`/`Int64`; fast kernels are tested against these.
public enum ReferenceKernels {
    /// Kernels by op type: plain for the default ONNX domain, `domain::OpType` otherwise
    /// (Kiln's fused operators are `kiln::FusedMatMul` and so on).
    public static let table: [String: ReferenceKernel] = {
        var table: [String: ReferenceKernel] = [:]
        ElementwiseKernels.register(into: &table)
        UnaryKernels.register(into: &table)
        ActivationKernels.register(into: &table)
        ReductionKernels.register(into: &table)
        LinearAlgebraKernels.register(into: &table)
        ShapeKernels.register(into: &table)
        IndexingKernels.register(into: &table)
        GeneratorKernels.register(into: &table)
        KilnDomainKernels.register(into: &table)
        return table
    }()

    /// Runs `node` on `inputs`.
    /// - Returns: one tensor per node output (optional outputs included).
    public static func run(_ node: Node, inputs: [Tensor?], opset: Int) throws -> [Tensor] {
        guard let kernel = kernel(for: node) else {
            throw KilnError.unsupportedOperator(
                opType: node.opType, domain: node.domain, node: node.name, opset: opset, supported: table.keys.sorted())
        }
        return try kernel(OpContext(node: node, inputs: inputs, opset: opset))
    }

    /// The table key of an operator: `OpType` in the default domain, `domain::OpType` otherwise.
    public static func key(opType: String, domain: String) -> String {
        domain.isEmpty || domain == "ai.onnx" ? opType : "\(domain)::\(opType)"
    }

    /// The kernel for `node`, or nil when there is none. An int8 `FusedMatMul` (int8 weights plus
    /// scales) gets the int8 reference: the fp32 kernel would multiply the raw levels and ignore the
    /// scales, so the reference executor (and the GPU checks built on it) would be silently wrong.
    public static func kernel(for node: Node) -> ReferenceKernel? {
        node.isInt8MatMul ? Int8MatMulReference.kernel : table[key(opType: node.opType, domain: node.domain)]
    }
}
