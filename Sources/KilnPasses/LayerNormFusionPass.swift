import KilnCore

// LayerNorm fusion
//
// Pattern 1, the decomposed form (TorchScript exports below opset 17):
//
//     x ─► ReduceMean(-1) ─► m
//     x, m ─► Sub ─► d ─► Pow(2) | Mul(d,d) ─► ReduceMean(-1) ─► Add(eps) ─► Sqrt ─► s
//     d, s ─► Div ─► Mul(gamma) ─► Add(beta) ─► y
//
// Pattern 2, the standard op: LayerNormalization(x, gamma, beta, axis = -1) with only its
// first output used.
//
// Replacement: kiln::LayerNorm(x, gamma, beta) {epsilon} ─► y  (gamma = ones when the
// pattern has no Mul; beta omitted when it has no Add).
//
// Why it is safe: both compute (x - mean) / sqrt(var + eps) · gamma + beta over the last axis
// with the biased variance; the fused kernel only reorders fp32 operations (a few ulp). The
// match requires gamma/beta to be constants of exactly the normalized width, the reductions
// to be over the last axis only with keepdims, and the Sub output to feed both the variance
// and the division; anything else is left alone.

/// Fuses layer normalization (decomposed or `LayerNormalization`) into `kiln::LayerNorm`.
public struct LayerNormFusionPass: Pass {
    public let name = "layernorm-fusion"

    public init() {}

    public func run(_ graph: inout Graph) throws -> PassReport {
        let types = try ShapeInference(graph: graph)
        let index = GraphIndex(graph)
        var replacements: [Int: [Node]] = [:]
        var decomposed = 0, standard = 0
        for (position, node) in graph.nodes.enumerated() {
            if node.isStandard("LayerNormalization"), let fused = fuseStandard(node, types: types, index: index) {
                replacements[position] = [fused]
                standard += 1
            } else if node.isStandard("Div"), let (final, fused) = fuseDecomposed(node, index: index, types: types, graph: &graph),
                replacements[final] == nil
            {
                replacements[final] = [fused]
                decomposed += 1
            }
        }
        try graph.replaceNodes(replacements)
        graph.removeDeadNodes()
        return PassReport(pass: name, changes: [.init("fused", decomposed, "decomposed layer norms"), .init("converted", standard, "LayerNormalization ops")])
    }

    private func fuseStandard(_ node: Node, types: ShapeInference, index: GraphIndex) -> Node? {
        let rank = types.shape(of: node.inputs[0])?.count
        let axis = (try? node.int("axis", default: -1)) ?? 0
        guard axis == -1 || (rank != nil && Int(axis) == rank! - 1), node.outputs.dropFirst().allSatisfy({ $0.isEmpty || (index.consumers[$0] == nil && !index.graphOutputs.contains($0)) })
        else { return nil }
        let epsilon = (try? node.float("epsilon", default: 1e-5)) ?? 1e-5
        return Node(
            name: node.name, opType: KilnOperators.layerNorm, domain: KilnOperators.domain,
            inputs: Array(node.inputs.prefix(3)), outputs: [node.outputs[0]], attributes: ["epsilon": .float(epsilon)])
    }

    /// Matches the decomposed form around its `Div`; returns the position of the node whose
    /// output the fused op takes over, and the fused node.
    private func fuseDecomposed(_ div: Node, index: GraphIndex, types: ShapeInference, graph: inout Graph) -> (Int, Node)? {
        let deviation = div.inputs[0]
        guard let sub = index.producer(of: deviation, is: "Sub"), let sqrt = index.producer(of: div.inputs[1], is: "Sqrt"),
            let addEps = index.producer(of: sqrt.inputs[0], is: "Add")
        else { return nil }
        let x = sub.inputs[0]
        let rank = types.shape(of: x)?.count
        guard let mean = index.producer(of: sub.inputs[1]), index.isLastAxisMean(mean, rank: rank), mean.inputs[0] == x else { return nil }
        guard let varianceValue = addEps.inputs.first(where: { index.scalar($0) == nil }),
            let epsValue = addEps.otherInput(than: varianceValue), let epsilon = index.scalar(epsValue),
            let variance = index.producer(of: varianceValue), index.isLastAxisMean(variance, rank: rank),
            let square = index.producer(of: variance.inputs[0]), isSquare(square, of: deviation, index: index)
        else { return nil }
        guard let width = types.shape(of: x)?.last?.constant else { return nil }
        // Optional scale and shift by constants of the normalized width.
        var final = div.outputs[0]
        var gammaName: String?
        var betaName: String?
        if let mul = index.soleReader(of: final), mul.isStandard("Mul"), let other = mul.otherInput(than: final),
            let gamma = index.constant(other), gamma.count == width, gamma.rank == 1
        {
            gammaName = other
            final = mul.outputs[0]
            if let add = index.soleReader(of: final), add.isStandard("Add"), let other = add.otherInput(than: final),
                let beta = index.constant(other), beta.count == width, beta.rank == 1
            {
                betaName = other
                final = add.outputs[0]
            }
        }
        guard let finalPosition = index.producers[final] else { return nil }
        if gammaName == nil {
            let ones = "\(final)_gamma"
            graph.initializers[ones] = try? Tensor(floats: [Float](repeating: 1, count: width), shape: [width])
            gammaName = ones
        }
        let fused = Node(
            name: "\(div.name)/LayerNorm", opType: KilnOperators.layerNorm, domain: KilnOperators.domain,
            inputs: [x, gammaName!] + (betaName.map { [$0] } ?? []), outputs: [final], attributes: ["epsilon": .float(epsilon)])
        return (finalPosition, fused)
    }

    private func isSquare(_ node: Node, of value: String, index: GraphIndex) -> Bool {
        if node.isStandard("Pow") { return node.inputs[0] == value && index.isScalar(node.inputs[1], 2, tolerance: 0) }
        if node.isStandard("Mul") { return node.inputs[0] == value && node.inputs[1] == value }
        return false
    }
}
