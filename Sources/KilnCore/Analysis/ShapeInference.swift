/// What shape inference knows about one value.
public struct ValueType: Sendable, Equatable, CustomStringConvertible {
    /// The element type, when known.
    public var dtype: DType?
    /// The shape with symbolic dimensions; nil when not even the rank is known.
    public var shape: SymbolicShape?
    /// For small integer (and bool, as 0/1) tensors: the elements, possibly symbolic (the
    /// output of `Shape(x)` is `[batch, seq, 384]`). This is what lets shape subgraphs fold.
    public var contents: [SymbolicDim]?
    /// The value itself, when it is a small constant (computed by the evaluator).
    public var constant: Tensor?

    public init(dtype: DType?, shape: SymbolicShape?, contents: [SymbolicDim]? = nil, constant: Tensor? = nil) {
        self.dtype = dtype
        self.shape = shape
        self.contents = contents
        self.constant = constant
    }

    /// The type of a known tensor (contents kept when it is a small integer or bool tensor).
    public init(tensor: Tensor) {
        let small = tensor.count <= ShapeInference.contentsLimit && !tensor.dtype.isFloatingPoint
        self.init(
            dtype: tensor.dtype, shape: tensor.shape.map { SymbolicDim($0) },
            contents: small ? tensor.ints.map { SymbolicDim(Int($0)) } : nil,
            constant: tensor.count <= ShapeInference.constantLimit ? tensor : nil)
    }

    /// The value when it is fully known: the evaluated constant or concrete contents.
    public var knownValue: Tensor? { constant ?? ShapeInference.tensorFromContents(self) }

    /// The contents when every element is a concrete number.
    public var concreteContents: [Int]? { contents?.concreteSizes }

    /// `float32[batch, seq, 384]`
    public var description: String {
        let type = dtype?.rawValue ?? "?"
        let dims = shape?.symbolicDescription ?? "[?]"
        if let contents { return "\(type)\(dims) = \(contents.symbolicDescription)" }
        return "\(type)\(dims)"
    }
}

/// Evaluates one node on known input tensors (the caller wires it to the reference kernels,
/// which Core cannot import): `{ node, inputs in try ReferenceKernels.run(node, inputs: inputs, opset: graph.opset) }`.
public typealias NodeEvaluator = @Sendable (Node, [Tensor?]) throws -> [Tensor]

/// Shape and dtype inference with symbolic dimensions.
///
/// Given the graph's declared input shapes (`[batch, seq]`) or concrete ones, it gives every
/// value a dtype and a shape whose dimensions are numbers or products of symbols. Small
/// integer tensors also carry their (symbolic) contents, so shape arithmetic such as
/// `Shape → Gather → Unsqueeze → Concat` is followed exactly; nodes whose inputs are all
/// known are evaluated with the caller's ``NodeEvaluator``.
public struct ShapeInference: Sendable {
    /// Integer tensors up to this many elements carry their contents.
    public static let contentsLimit = 64
    /// Evaluated results up to this many elements are kept as constants.
    public static let constantLimit = 4096
    /// Nodes are evaluated only when their known inputs hold at most this many elements in all.
    public static let evaluationLimit = 1 << 16

    /// The inferred type of every value (graph inputs, initializers, node outputs).
    public private(set) var types: [String: ValueType] = [:]
    private var unknownCounter = 0

    /// Infers types for `graph`.
    /// - Parameters:
    ///   - graph: the graph; its nodes are visited in topological order.
    ///   - inputShapes: concrete shapes for some or all inputs; the others use their declared
    ///     (possibly symbolic) shapes. An anonymous symbolic dimension becomes `<input>_<axis>`.
    ///   - evaluate: evaluates a node whose inputs are all known; nil disables evaluation.
    /// - Returns: the inference, queried with ``subscript(_:)``.
    public init(graph: Graph, inputShapes: [String: [Int]] = [:], evaluate: NodeEvaluator? = nil) throws {
        for input in graph.inputs {
            let shape: SymbolicShape?
            if let concrete = inputShapes[input.name] {
                shape = concrete.map { SymbolicDim($0) }
            } else {
                shape = input.shape?.enumerated().map { axis, dimension in
                    switch dimension {
                    case .fixed(let size): return SymbolicDim(size)
                    case .symbolic(let name): return SymbolicDim(symbol: name.isEmpty ? "\(input.name)_\(axis)" : name)
                    }
                }
            }
            types[input.name] = ValueType(dtype: input.dtype, shape: shape)
        }
        for (name, tensor) in graph.initializers { types[name] = ValueType(tensor: tensor) }
        for node in try graph.topologicallySorted() {
            let inputs = node.inputs.map { $0.isEmpty ? nil : types[$0] }
            let outputs = infer(node, inputs: inputs, opset: graph.opset, evaluate: evaluate)
            for (name, type) in zip(node.outputs, outputs) where !name.isEmpty { types[name] = type }
        }
    }

    /// The type of `value`, or nil when the graph has no such value.
    public subscript(_ value: String) -> ValueType? { types[value] }

    /// The symbolic shape of `value`, when known.
    public func shape(of value: String) -> SymbolicShape? { types[value]?.shape }

    /// A fresh dimension nothing is known about.
    mutating func unknownDim() -> SymbolicDim {
        unknownCounter += 1
        return .unknown(unknownCounter)
    }

    private mutating func infer(_ node: Node, inputs: [ValueType?], opset: Int, evaluate: NodeEvaluator?) -> [ValueType] {
        if let evaluate, let evaluated = Self.evaluateIfKnown(node, inputs: inputs, evaluate: evaluate) {
            return evaluated
        }
        var rules = ShapeRules(node: node, inputs: inputs, opset: opset, inference: self)
        let result = rules.outputs()
        unknownCounter = rules.inference.unknownCounter
        return result
    }

    /// Runs the node when every input it reads is a known constant.
    private static func evaluateIfKnown(_ node: Node, inputs: [ValueType?], evaluate: NodeEvaluator) -> [ValueType]? {
        guard node.domain.isEmpty || node.domain == "ai.onnx" else { return nil }
        var tensors: [Tensor?] = []
        var total = 0
        for (name, type) in zip(node.inputs, inputs) {
            if name.isEmpty { tensors.append(nil); continue }
            guard let tensor = type?.constant ?? type.flatMap(Self.tensorFromContents) else { return nil }
            total += tensor.count
            tensors.append(tensor)
        }
        guard total <= evaluationLimit, let results = try? evaluate(node, tensors) else { return nil }
        return results.map { ValueType(tensor: $0) }
    }

    /// A concrete integer (or bool) tensor from fully known contents, or nil.
    public static func tensorFromContents(_ type: ValueType) -> Tensor? {
        guard let values = type.concreteContents, let dtype = type.dtype, let shape = type.shape?.concreteSizes else { return nil }
        if dtype == .bool { return try? Tensor(bools: values.map { $0 != 0 }, shape: shape) }
        guard dtype.isInteger else { return nil }
        return try? Tensor(ints: values.map(Int64.init), shape: shape, dtype: dtype)
    }
}

extension Graph {
    /// Infers every value's type from the declared input shapes.
    /// - Parameter evaluate: evaluates small constant subgraphs (see ``NodeEvaluator``).
    public func inferShapes(evaluate: NodeEvaluator? = nil) throws -> ShapeInference {
        try ShapeInference(graph: self, evaluate: evaluate)
    }
}
