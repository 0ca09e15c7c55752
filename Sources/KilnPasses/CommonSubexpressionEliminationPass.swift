import KilnCore

// Common-subexpression elimination
//
// Pattern: two nodes with the same op, domain, attributes and inputs (after earlier merges),
// or two small initializers with identical contents:
//
//     x ──► Shape ──► a          x ──► Shape ──► a
//     x ──► Shape ──► b    ⇒                     └──► (readers of b)
//
// Replacement: readers of the second read the first; the second goes (DCE drops it).
//
// Why it is safe: every operator Kiln runs (random generators excepted, which are never
// merged) is a pure function of its inputs and attributes,
// so both nodes compute bit-identical values. Nodes producing graph outputs are kept so
// output names never change.

/// Merges duplicate nodes and duplicate small constants.
public struct CommonSubexpressionEliminationPass: Pass {
    public let name = "common-subexpression-elimination"
    /// Initializers up to this many elements are compared by content.
    private let constantLimit: Int

    public init(constantLimit: Int = 64) {
        self.constantLimit = constantLimit
    }

    public func run(_ graph: inout Graph) throws -> PassReport {
        let outputs = Set(graph.outputs.map(\.name))
        var renames: [String: String] = [:]
        var canonicalConstants: [String: String] = [:]
        for name in graph.initializers.keys.sorted() where !outputs.contains(name) {
            let tensor = graph.initializers[name]!
            guard tensor.count <= constantLimit else { continue }
            let contents = "\(tensor.dtype)\(tensor.shape)\(tensor.storage)"
            if let existing = canonicalConstants[contents] { renames[name] = existing } else { canonicalConstants[contents] = name }
        }
        let mergedConstants = renames.count
        var seen: [String: [String]] = [:]
        var mergedNodes = 0
        var kept: [Node] = []
        for var node in graph.nodes {
            node.inputs = node.inputs.map { renames[$0] ?? $0 }
            let key = Self.key(node)
            if let key, let previous = seen[key], !node.outputs.contains(where: outputs.contains) {
                for (output, existing) in zip(node.outputs, previous) where !output.isEmpty { renames[output] = existing }
                mergedNodes += 1
                continue
            }
            if let key { seen[key] = node.outputs }
            kept.append(node)
        }
        graph.nodes = kept
        for name in renames.keys where graph.initializers[name] != nil { graph.initializers[name] = nil }
        return PassReport(pass: name, changes: [.init("merged", mergedNodes, "duplicate nodes"), .init("merged", mergedConstants, "duplicate constants")])
    }

    /// A string identifying what the node computes, or nil when it should not be merged.
    private static func key(_ node: Node) -> String? {
        if node.opType.hasPrefix("Random") || node.opType == "Multinomial" || node.opType == "Bernoulli" { return nil }
        var parts = [node.domain, node.opType, node.inputs.joined(separator: ","), String(node.outputs.count)]
        for name in node.attributes.keys.sorted() {
            let attribute = node.attributes[name]!
            if case .tensor(let tensor) = attribute, tensor.count > 64 { return nil }
            parts.append("\(name)=\(attribute)")
        }
        return parts.joined(separator: "|")
    }
}
