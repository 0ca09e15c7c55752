import KilnCore

// Identity elimination
//
// Pattern:   x ──► Identity ──► y ──► readers        (also Dropout in inference, mask unused)
// Replacement: readers read x directly; the node goes.
//
// Why it is safe: Identity (and inference-mode Dropout) return their input unchanged. A node
// whose output is a graph output is kept, so output names never change.

/// Removes `Identity` and inference-mode `Dropout` nodes.
public struct IdentityEliminationPass: Pass {
    public let name = "identity-elimination"

    public init() {}

    public func run(_ graph: inout Graph) throws -> PassReport {
        let outputs = Set(graph.outputs.map(\.name))
        var removed = 0
        var position = 0
        while position < graph.nodes.count {
            let node = graph.nodes[position]
            let isPassThrough = node.domain.isEmpty
                && (node.opType == "Identity" || (node.opType == "Dropout" && node.outputs.dropFirst().allSatisfy { $0.isEmpty || !isRead($0, in: graph) }))
            guard isPassThrough, let source = node.inputs.first, !source.isEmpty, let result = node.outputs.first,
                !outputs.contains(result)
            else {
                position += 1
                continue
            }
            graph.nodes.remove(at: position)
            graph.replaceUses(of: result, with: source)
            removed += 1
        }
        return PassReport(pass: name, changes: [.init("removed", removed, "identity nodes")])
    }

    private func isRead(_ value: String, in graph: Graph) -> Bool {
        graph.outputs.contains { $0.name == value } || graph.nodes.contains { $0.inputs.contains(value) }
    }
}
