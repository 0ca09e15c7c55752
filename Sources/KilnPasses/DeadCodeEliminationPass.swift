import KilnCore

// Dead-code elimination
//
// Pattern: a node none of whose outputs is read by another node or is a graph output
// (typically what a fusion left behind, or shape arithmetic that folding made unnecessary);
// an initializer nothing reads.
// Replacement: removed, repeatedly, from the outputs backwards.
//
// Why it is safe: nothing observes the removed values; reference kernels have no side effects.

/// Removes nodes and initializers that do not contribute to any graph output.
public struct DeadCodeEliminationPass: Pass {
    public let name: String

    /// - Parameter name: the pass name (a pipeline that cleans up twice names the runs apart).
    public init(name: String = "dead-code-elimination") {
        self.name = name
    }

    public func run(_ graph: inout Graph) throws -> PassReport {
        let removedNodes = graph.removeDeadNodes()
        var live = Set(graph.outputs.map(\.name))
        for node in graph.nodes { live.formUnion(node.inputs.filter { !$0.isEmpty }) }
        let deadInitializers = graph.initializers.keys.filter { !live.contains($0) }
        for name in deadInitializers { graph.initializers[name] = nil }
        let liveValues = live
        let deadInfo = graph.valueInfo.keys.filter { !liveValues.contains($0) }
        for name in deadInfo { graph.valueInfo[name] = nil }
        return PassReport(pass: name, changes: [.init("removed", removedNodes, "dead nodes"), .init("removed", deadInitializers.count, "unused initializers")])
    }
}
