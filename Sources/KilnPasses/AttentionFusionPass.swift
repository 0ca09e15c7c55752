import KilnCore

// Multi-head attention fusion
//
// Pattern (one self-attention block; Q, K, V are [B, S, H] projections):
//
//     Q ─► split heads ─► (·scale?) ─┐            (or Where(mask, fill ≤ -1e30, ·) masked_fill)
//                                    MatMul ─► (·scale | /scale)? ─► Add(mask)? ─► Softmax(-1)
//     K ─► split heads, transposed ─► (·scale?) ─┘                                       │
//                                                        (Where(IsNaN(p), 0, p))? ◄──────┘
//     V ─► split heads ─────────────────────────────────────────► MatMul(p, ·) ─► merge heads ─► context
//
// "split heads" / "merge heads" are any chain of Reshape and Transpose whose effect is
// [B, S, H] → [B, heads, S, d] (keys: [B, heads, d, S]) and back, as checked atom by atom
// with the symbolic shapes (``HeadLayout``): TorchScript's Reshape + Transpose(0,2,3,1),
// the SDPA export's √scale on both Q and K, and dynamo's Reshape → Transpose(0,2,1) →
// Reshape through [B·heads, S, d] all match; the scale may sit on the scores or on Q/K.
//
// Replacement: kiln::Attention(Q, K, V, mask) {num_heads, scale = product of all scales,
// nan_to_zero when the IsNaN guard was present} ─► context.
//
// Why it is safe: the fused op is defined as exactly this composition
// (softmax(Q·Kᵀ·scale + mask)·V per head). Scalar factors commute with the matrix product,
// so moving them onto the scores changes results by rounding only. The mask must leave the
// scores' shape unchanged (it broadcasts into them), Q/K/V must share [B, S, H], and every
// layout step must check out; otherwise the block stays unfused and correct.

/// Fuses self-attention blocks into `kiln::Attention`.
public struct AttentionFusionPass: Pass {
    public let name = "attention-fusion"

    public init() {}

    /// The float zero the masked_fill rewrite uses.
    static let zeroConstant = "kiln_attention_zero"

    public func run(_ graph: inout Graph) throws -> PassReport {
        let types = try ShapeInference(graph: graph)
        let index = GraphIndex(graph)
        var replacements: [Int: [Node]] = [:]
        var fused = 0, guarded = 0, masked = 0
        var notes: [String] = []
        for node in graph.nodes where node.isStandard("Softmax") {
            var matcher = AttentionMatcher(index: index, types: types)
            guard let block = matcher.match(softmax: node) else {
                notes.append("softmax '\(node.name)': \(matcher.failure)")
                continue
            }
            guard let position = index.producers[block.output], replacements[position] == nil else { continue }
            var attributes: [String: Attribute] = ["num_heads": .int(Int64(block.heads)), "scale": .float(block.scale)]
            if block.nanToZero { attributes[KilnOperators.nanToZeroAttribute] = .int(1) }
            if !block.maskNodes.isEmpty, graph.initializers[Self.zeroConstant] == nil {
                graph.initializers[Self.zeroConstant] = Tensor.scalar(Float(0))
            }
            replacements[position] = block.maskNodes + [
                Node(
                    name: "\(node.name)/Attention", opType: KilnOperators.attention, domain: KilnOperators.domain,
                    inputs: [block.query, block.key, block.value] + (block.mask.map { [$0] } ?? []), outputs: [block.output],
                    attributes: attributes)
            ]
            fused += 1
            if block.nanToZero { guarded += 1 }
            if block.mask != nil { masked += 1 }
        }
        try graph.replaceNodes(replacements)
        graph.removeDeadNodes()
        return PassReport(
            pass: name, changes: [.init("fused", fused, "attention blocks"), .init("with", masked, "masks"), .init("absorbed", guarded, "NaN guards")],
            notes: notes)
    }
}

/// One matched attention block.
struct AttentionBlock {
    var query: String, key: String, value: String
    var mask: String?
    var heads: Int
    var scale: Float
    var nanToZero: Bool
    var output: String
    /// Nodes to insert before the Attention node (an additive mask made from a masked_fill).
    var maskNodes: [Node] = []
}

/// Matches one attention block around its Softmax; `failure` says why not.
struct AttentionMatcher {
    let index: GraphIndex
    let types: ShapeInference
    var heads: SymbolicDim?
    var failure = "no match"

    init(index: GraphIndex, types: ShapeInference) {
        self.index = index
        self.types = types
    }

    mutating func match(softmax: Node) -> AttentionBlock? {
        guard let rank = types.shape(of: softmax.inputs[0])?.count, rank == 4 else { return fail("scores are not rank 4") }
        let axis = (try? softmax.int("axis", default: index.graph.opset < 13 ? 1 : -1)) ?? 0
        guard axis == -1 || axis == 3 else { return fail("softmax is not over the last axis") }
        // Scores: [scale] → [Add mask] → Softmax.
        var scoresValue = softmax.inputs[0]
        var mask: String?
        var maskNodes: [Node] = []
        if let whereNode = index.producer(of: scoresValue, is: "Where") {
            guard let (scores, additive) = maskedFill(whereNode) else { return fail("Where before the softmax is not a masked_fill of the scores") }
            scoresValue = scores
            maskNodes = [additive]
            mask = additive.outputs[0]
        } else if let add = index.producer(of: scoresValue, is: "Add") {
            for candidate in add.inputs where scoresProduct(candidate) != nil {
                mask = add.otherInput(than: candidate)
                scoresValue = candidate
                break
            }
            guard mask != nil else { return fail("scores Add has no Q·Kᵀ operand") }
            guard types.shape(of: add.outputs[0]) == types.shape(of: scoresValue) else { return fail("mask broadcasts the scores") }
        }
        guard let (scoresMatMul, scoresScale) = scoresProduct(scoresValue) else { return fail("no Q·Kᵀ MatMul before the softmax") }
        // Probabilities: optional NaN guard, then MatMul with V.
        var probabilities = softmax.outputs[0]
        var nanToZero = false
        if let guardNode = nanGuard(after: probabilities) {
            probabilities = guardNode.outputs[0]
            nanToZero = true
        }
        guard let contextMatMul = index.readers(of: probabilities).first(where: { $0.isStandard("MatMul") && $0.inputs[0] == probabilities }) else {
            return fail("probabilities do not feed a MatMul")
        }
        guard let query = projection(of: scoresMatMul.inputs[0], expecting: HeadLayout.headsMajor),
            let key = projection(of: scoresMatMul.inputs[1], expecting: HeadLayout.keysTransposed),
            let value = projection(of: contextMatMul.inputs[1], expecting: HeadLayout.headsMajor)
        else { return fail("Q/K/V head layouts do not match") }
        guard value.scale == 1, let shape = types.shape(of: query.base), types.shape(of: key.base) == shape,
            types.shape(of: value.base) == shape
        else { return fail("Q, K, V are not [B, S, H] of one shape (or V is scaled)") }
        guard let heads = heads?.constant, let output = mergedContext(from: contextMatMul.outputs[0], shape: shape) else {
            return fail("context is not merged back to [B, S, H]")
        }
        return AttentionBlock(
            query: query.base, key: key.base, value: value.base, mask: mask, heads: heads,
            scale: scoresScale * query.scale * key.scale, nanToZero: nanToZero, output: output, maskNodes: maskNodes)
    }

    /// `Where(c, fill, scores)` or `Where(c, scores, fill)` with `fill` a constant ≤ -1e30 (or
    /// -inf): returns the scores and a node computing the equivalent additive mask
    /// `Where(c, fill, 0)` (or `Where(c, 0, fill)`). Adding a fill that large to any finite
    /// score rounds to the fill itself, so softmax sees the same values.
    private func maskedFill(_ node: Node) -> (String, Node)? {
        guard node.inputs.count == 3 else { return nil }
        for (fillSlot, scoresSlot) in [(1, 2), (2, 1)] {
            guard let fill = index.scalar(node.inputs[fillSlot]), fill <= -1e30, scoresProduct(node.inputs[scoresSlot]) != nil,
                types.shape(of: node.outputs[0]) == types.shape(of: node.inputs[scoresSlot])
            else { continue }
            var inputs = node.inputs
            inputs[scoresSlot] = AttentionFusionPass.zeroConstant
            return (node.inputs[scoresSlot], Node(name: "\(node.name)/additive_mask", opType: "Where", inputs: inputs, outputs: ["\(node.outputs[0])_additive_mask"]))
        }
        return nil
    }

    private mutating func fail<T>(_ reason: String) -> T? {
        failure = reason
        return nil
    }

    /// The MatMul behind `value` through scalar scalings, and the accumulated scale.
    private func scoresProduct(_ value: String) -> (Node, Float)? {
        var current = value
        var scale: Float = 1
        for _ in 0..<3 {
            guard let node = index.producer(of: current) else { return nil }
            if node.isStandard("MatMul") { return (node, scale) }
            guard let scaling = index.scaling(node) else { return nil }
            scale *= scaling.factor
            current = scaling.input
        }
        return nil
    }

    /// `Where(IsNaN(p), 0, p)` reading `probabilities`.
    private func nanGuard(after probabilities: String) -> Node? {
        for reader in index.readers(of: probabilities) where reader.isStandard("Where") && reader.inputs[2] == probabilities {
            guard let isNaN = index.producer(of: reader.inputs[0], is: "IsNaN"), isNaN.inputs[0] == probabilities,
                index.isScalar(reader.inputs[1], 0, tolerance: 0)
            else { continue }
            return reader
        }
        return nil
    }

    /// Walks back from `value` through Reshape/Transpose/scalar scaling to the nearest
    /// `[B, S, H]` value whose layout, replayed forwards, ends as `expected`.
    private mutating func projection(of value: String, expecting expected: [[HeadLayout.Atom]]) -> (base: String, scale: Float)? {
        var chain: [(node: Node, factor: Float?)] = []
        var current = value
        while chain.count < 8, let node = index.producer(of: current) {
            if node.isStandard("Transpose") || node.isStandard("Reshape") {
                chain.append((node, nil))
                current = node.inputs[0]
            } else if let scaling = index.scaling(node) {
                chain.append((node, scaling.factor))
                current = scaling.input
            } else {
                break
            }
            // Try `current` as the base: replay the chain forwards.
            guard let shape = types.shape(of: current), var layout = HeadLayout(projection: shape) else { continue }
            var trialHeads = heads
            var scale: Float = 1
            var ok = true
            for step in chain.reversed() {
                if let factor = step.factor { scale *= factor } else if !layout.apply(step.node, types: types, heads: &trialHeads) { ok = false; break }
            }
            if ok && layout.axes == expected {
                heads = trialHeads
                return (current, scale)
            }
        }
        return nil
    }

    /// Follows the context forwards through Reshape/Transpose until it is `[B, S, heads·d]`.
    private mutating func mergedContext(from value: String, shape: SymbolicShape) -> String? {
        guard var layout = HeadLayout(projection: shape) else { return nil }
        var trialHeads = heads
        guard layout.reshape(to: [shape[0], shape[1], heads ?? 0, shape[2].dividedExactly(by: heads ?? 1) ?? 0], heads: &trialHeads),
            layout.transpose([0, 2, 1, 3]), layout.axes == HeadLayout.headsMajor
        else { return nil }
        var current = value
        for _ in 0..<4 {
            guard let next = index.soleReader(of: current), layout.apply(next, types: types, heads: &trialHeads) else { return nil }
            current = next.outputs[0]
            if layout.axes == HeadLayout.merged, types.shape(of: current) == shape { return current }
        }
        return nil
    }
}
