import KilnCore

/// Who produces and who reads each value of a graph: the lookups every pattern matcher needs.
/// Built once per pass run; it does not follow later edits.
struct GraphIndex {
    let graph: Graph
    /// Node position by each output value.
    let producers: [String: Int]
    /// Node positions reading each value (a node reading it twice appears twice).
    let consumers: [String: [Int]]
    /// Names of the graph outputs.
    let graphOutputs: Set<String>

    init(_ graph: Graph) {
        self.graph = graph
        var producers: [String: Int] = [:]
        var consumers: [String: [Int]] = [:]
        for (position, node) in graph.nodes.enumerated() {
            for output in node.outputs where !output.isEmpty { producers[output] = position }
            for input in node.inputs where !input.isEmpty { consumers[input, default: []].append(position) }
        }
        self.producers = producers
        self.consumers = consumers
        self.graphOutputs = Set(graph.outputs.map(\.name))
    }

    /// The node producing `value`, or nil for inputs, initializers and unknown names.
    func producer(of value: String) -> Node? { producers[value].map { graph.nodes[$0] } }

    /// The node producing `value` when it is the default-domain op `opType`.
    func producer(of value: String, is opType: String) -> Node? {
        guard let node = producer(of: value), node.opType == opType, node.domain.isEmpty else { return nil }
        return node
    }

    /// The nodes reading `value`.
    func readers(of value: String) -> [Node] { (consumers[value] ?? []).map { graph.nodes[$0] } }

    /// The only node reading `value`, when exactly one does and it is not also a graph output.
    func soleReader(of value: String) -> Node? {
        guard let readers = consumers[value], readers.count == 1, !graphOutputs.contains(value) else { return nil }
        return graph.nodes[readers[0]]
    }

    /// The constant tensor named `value` (an initializer).
    func constant(_ value: String) -> Tensor? { graph.initializers[value] }

    /// The value of a one-element float constant of rank 0 or 1 (so broadcasting it never
    /// changes another operand's shape).
    func scalar(_ value: String) -> Float? {
        guard let tensor = graph.initializers[value], tensor.count == 1, tensor.rank <= 1, tensor.dtype.isFloatingPoint else { return nil }
        return tensor.floats[0]
    }

    /// Whether `value` is a one-element float constant within `tolerance` of `expected`.
    func isScalar(_ value: String, _ expected: Float, tolerance: Float = 1e-4) -> Bool {
        guard let actual = scalar(value) else { return false }
        return abs(actual - expected) <= tolerance * max(1, abs(expected))
    }
}

/// Hands out value and node names that do not clash with any in the graph.
struct UniqueNamer {
    private var taken: Set<String>

    init(_ graph: Graph) {
        var taken = Set(graph.inputs.map(\.name)).union(graph.initializers.keys).union(graph.outputs.map(\.name))
        for node in graph.nodes {
            taken.insert(node.name)
            taken.formUnion(node.outputs)
        }
        self.taken = taken
    }

    /// `base`, or `base_1`, `base_2`, ... whichever is free; the name is then taken.
    mutating func fresh(_ base: String) -> String {
        var candidate = base
        var suffix = 1
        while taken.contains(candidate) {
            candidate = "\(base)_\(suffix)"
            suffix += 1
        }
        taken.insert(candidate)
        return candidate
    }
}

extension Graph {
    /// Replaces the node at each position with the given nodes (an empty list deletes it),
    /// then restores a topological order.
    mutating func replaceNodes(_ replacements: [Int: [Node]]) throws {
        guard !replacements.isEmpty else { return }
        var rewritten: [Node] = []
        rewritten.reserveCapacity(nodes.count)
        for (position, node) in nodes.enumerated() {
            if let replacement = replacements[position] { rewritten.append(contentsOf: replacement) } else { rewritten.append(node) }
        }
        nodes = rewritten
        nodes = try topologicallySorted()
    }

    /// Makes every reader of `old` read `new` instead (graph outputs are not renamed).
    mutating func replaceUses(of old: String, with new: String) {
        for position in nodes.indices {
            for slot in nodes[position].inputs.indices where nodes[position].inputs[slot] == old {
                nodes[position].inputs[slot] = new
            }
        }
    }
}

extension Graph {
    /// Removes nodes none of whose outputs reaches a graph output (what a fusion leaves
    /// behind), so the next pattern sees single readers again.
    /// - Returns: how many nodes were removed.
    @discardableResult
    mutating func removeDeadNodes() -> Int {
        var live = Set(outputs.map(\.name))
        var keep = [Bool](repeating: false, count: nodes.count)
        for position in nodes.indices.reversed() {
            let node = nodes[position]
            guard node.outputs.contains(where: { !$0.isEmpty && live.contains($0) }) else { continue }
            keep[position] = true
            live.formUnion(node.inputs.filter { !$0.isEmpty })
        }
        let removed = keep.filter { !$0 }.count
        nodes = nodes.indices.filter { keep[$0] }.map { nodes[$0] }
        return removed
    }
}
