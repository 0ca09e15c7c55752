import KilnCore

/// Checks the invariants every pass must keep: each node input is a graph input, an
/// initializer or the output of an earlier node; each value has one producer; every declared
/// output is produced.
public enum GraphValidator {
    /// Throws ``KilnError/invalidModel(_:)`` naming the first broken invariant.
    /// - Parameters:
    ///   - graph: the graph to check (nodes in execution order).
    ///   - expectedOutputs: output names that must still be there (the pre-optimization
    ///     outputs); nil skips that check.
    ///   - after: the pass name, for the message.
    public static func validate(_ graph: Graph, expectedOutputs: [String]? = nil, after pass: String = "input") throws {
        var available = Set(graph.inputs.map(\.name)).union(graph.initializers.keys)
        for node in graph.nodes {
            for input in node.inputs where !input.isEmpty && !available.contains(input) {
                throw KilnError.invalidModel("after \(pass): node '\(node.name)' (\(node.opType)) reads '\(input)', which nothing before it produces")
            }
            for output in node.outputs where !output.isEmpty {
                guard !available.contains(output) else {
                    throw KilnError.invalidModel("after \(pass): value '\(output)' is produced twice (again by '\(node.name)')")
                }
                available.insert(output)
            }
        }
        for output in graph.outputs where !available.contains(output.name) {
            throw KilnError.invalidModel("after \(pass): graph output '\(output.name)' is no longer produced")
        }
        if let expectedOutputs, expectedOutputs != graph.outputs.map(\.name) {
            throw KilnError.invalidModel("after \(pass): graph outputs changed from \(expectedOutputs) to \(graph.outputs.map(\.name))")
        }
    }
}
