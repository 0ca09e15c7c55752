/// Kiln's graph IR: a model's inputs, outputs, constant weights and nodes.
///
/// Values are referred to by name (as in ONNX). Nodes are kept in a valid execution order
/// (``topologicallySorted()`` restores it after a rewrite).
public struct Graph: Sendable, Equatable {
    /// The graph's name.
    public var name: String
    /// Runtime inputs (initializers excluded).
    public var inputs: [ValueInfo]
    /// Outputs, in the model's order.
    public var outputs: [ValueInfo]
    /// Constant tensors (weights) by name.
    public var initializers: [String: Tensor]
    /// Operators, in execution order.
    public var nodes: [Node]
    /// What the model declares about intermediate values.
    public var valueInfo: [String: ValueInfo]
    /// Opset version per domain (`""` is the default ONNX domain).
    public var opsetImports: [String: Int]
    /// Free-form metadata (producer, model version, metadata_props).
    public var metadata: [String: String]

    public init(
        name: String = "graph", inputs: [ValueInfo], outputs: [ValueInfo], initializers: [String: Tensor] = [:],
        nodes: [Node], valueInfo: [String: ValueInfo] = [:], opsetImports: [String: Int] = ["": 17],
        metadata: [String: String] = [:]
    ) {
        self.name = name
        self.inputs = inputs
        self.outputs = outputs
        self.initializers = initializers
        self.nodes = nodes
        self.valueInfo = valueInfo
        self.opsetImports = opsetImports
        self.metadata = metadata
    }

    /// The default-domain opset version.
    public var opset: Int { opsetImports[""] ?? opsetImports["ai.onnx"] ?? 1 }

    /// Number of weight elements.
    public var parameterCount: Int { initializers.values.reduce(0) { $0 + $1.count } }

    /// How many nodes of each op type the graph holds.
    public var opHistogram: [String: Int] {
        nodes.reduce(into: [:]) { $0[$1.opType, default: 0] += 1 }
    }

    /// The nodes in an order where every node comes after the producers of its inputs.
    /// Throws when the graph has a cycle or reads a value nothing produces.
    public func topologicallySorted() throws -> [Node] {
        var available = Set(inputs.map(\.name)).union(initializers.keys)
        available.insert("")
        var remaining = nodes
        var ordered: [Node] = []
        ordered.reserveCapacity(nodes.count)
        while !remaining.isEmpty {
            var progressed = false
            var stillWaiting: [Node] = []
            for node in remaining {
                if node.inputs.allSatisfy(available.contains) {
                    ordered.append(node)
                    available.formUnion(node.outputs)
                    progressed = true
                } else {
                    stillWaiting.append(node)
                }
            }
            if !progressed {
                let stuck = stillWaiting[0]
                let missing = stuck.inputs.filter { !available.contains($0) }
                throw KilnError.invalidModel(
                    "node '\(stuck.name)' (\(stuck.opType)) reads \(missing), which no input, initializer or node produces (or the graph has a cycle)")
            }
            remaining = stillWaiting
        }
        return ordered
    }
}
