import KilnCore

// Residual Add + LayerNorm fusion
//
// Pattern:
//
//     x ──┐
//         Add ─► s ─► kiln::LayerNorm(·, gamma, beta) ─► y
//  skip ──┘
//
// with x and skip both computed values (not constants) of the same shape, e.g. the output of
// an attention or feed-forward projection and the residual stream.
//
// Replacement: kiln::SkipLayerNorm(x, skip, gamma, beta) ─► (y, s?) — the second output is
// produced (under s's name, replacing the Add) only when something else still reads s.
//
// Why it is safe: SkipLayerNorm is defined as LayerNorm(x + skip); the sum is the same fp32
// addition. Requiring identical shapes rules out broadcasting adds (e.g. position
// embeddings [1, S, H] + [B, S, H]), which stay as Add + LayerNorm.

/// Fuses a residual `Add` feeding `kiln::LayerNorm` into `kiln::SkipLayerNorm`.
public struct SkipLayerNormFusionPass: Pass {
    public let name = "skip-layernorm-fusion"

    public init() {}

    public func run(_ graph: inout Graph) throws -> PassReport {
        let types = try ShapeInference(graph: graph)
        let index = GraphIndex(graph)
        var replacements: [Int: [Node]] = [:]
        var fused = 0, keptSum = 0
        for (position, node) in graph.nodes.enumerated() where node.isKiln(KilnOperators.layerNorm) {
            let sum = node.inputs[0]
            guard let addPosition = index.producers[sum], replacements[addPosition] == nil else { continue }
            let add = graph.nodes[addPosition]
            guard add.isStandard("Add"), add.inputs.count == 2, add.inputs.allSatisfy({ index.constant($0) == nil }),
                let left = types.shape(of: add.inputs[0]), let right = types.shape(of: add.inputs[1]), left == right,
                !left.contains(where: \.isUnknown)
            else { continue }
            let sumStillRead = (index.consumers[sum]?.count ?? 0) > 1 || index.graphOutputs.contains(sum)
            let fusedNode = Node(
                name: "\(node.name)/SkipLayerNorm", opType: KilnOperators.skipLayerNorm, domain: KilnOperators.domain,
                inputs: [add.inputs[0], add.inputs[1]] + Array(node.inputs.dropFirst()),
                outputs: sumStillRead ? [node.outputs[0], sum] : [node.outputs[0]], attributes: node.attributes)
            replacements[position] = [fusedNode]
            if sumStillRead {
                replacements[addPosition] = []
                keptSum += 1
            }
            fused += 1
        }
        try graph.replaceNodes(replacements)
        graph.removeDeadNodes()
        return PassReport(pass: name, changes: [.init("fused", fused, "skip layer norms"), .init("kept", keptSum, "residual sums as second outputs")])
    }
}
