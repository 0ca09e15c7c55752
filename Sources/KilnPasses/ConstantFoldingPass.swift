import KilnCore

// Constant folding
//
// Pattern: a node whose every input is a constant (an initializer or nothing):
//
//     W_fp16 (const) ──► Cast(to=float) ──► W          Constant{value} ──► c
//
// Replacement: its outputs become initializers, computed once at build time; the node goes.
//
// Why it is safe: the values are computed by the same reference kernels that would compute
// them at run time, on the same inputs, so the result is bit-identical to running the graph.
// Nodes in the kiln domain and random generators are never folded.

/// Evaluates nodes whose inputs are all constant and stores their results as initializers.
public struct ConstantFoldingPass: Pass {
    public let name = "constant-folding"
    private let evaluate: NodeEvaluator
    /// Results larger than this many elements are left to run time (0 = no limit).
    private let maxElements: Int

    /// - Parameters:
    ///   - evaluate: runs one node (wire it to the reference kernels).
    ///   - maxElements: the largest result to fold; 0 folds everything.
    public init(evaluate: @escaping NodeEvaluator, maxElements: Int = 0) {
        self.evaluate = evaluate
        self.maxElements = maxElements
    }

    private static let neverFolded: Set<String> = ["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"]

    public func run(_ graph: inout Graph) throws -> PassReport {
        var kept: [Node] = []
        var folded = 0
        var notes: [String] = []
        for node in graph.nodes {
            guard node.domain.isEmpty || node.domain == "ai.onnx", !Self.neverFolded.contains(node.opType),
                node.inputs.allSatisfy({ $0.isEmpty || graph.initializers[$0] != nil })
            else {
                kept.append(node)
                continue
            }
            let operands = node.inputs.map { $0.isEmpty ? nil : graph.initializers[$0] }
            do {
                let results = try evaluate(node, operands)
                guard maxElements == 0 || results.allSatisfy({ $0.count <= maxElements }) else {
                    kept.append(node)
                    continue
                }
                for (output, tensor) in zip(node.outputs, results) where !output.isEmpty {
                    graph.initializers[output] = tensor
                }
                folded += 1
            } catch {
                notes.append("left \(node.opType) '\(node.name)' unfolded: \(error)")
                kept.append(node)
            }
        }
        graph.nodes = kept
        return PassReport(pass: name, changes: [.init("folded", folded, "constants")], notes: notes)
    }
}
