import KilnCore
import KilnKernels

/// Bind-time rewrite of the engine's steps: attention reads Q, K and V straight out of the fused
/// QKV GEMM's output instead of three copies made by a Split.
///
/// Pattern (what `qkv-fusion` leaves behind):
///
///     qkv [B, S, 3H] = kiln::FusedMatMul(x, Wqkv, bqkv)
///     q, k, v        = Split(qkv, [H, H, H]) {axis = -1}
///     context        = kiln::Attention(q, k, v, mask)
///
/// becomes: the Split step passes `qkv` through to all three outputs, and the attention step
/// reads head `h` of Q/K/V at columns `h·d`, `H + h·d`, `2H + h·d` of each `3H`-float row (the
/// attention kernel takes row strides).
///
/// Why it is safe: it applies only when the three Split outputs have no reader other than that
/// one attention step (at inputs 0, 1, 2, in order) and are not graph outputs, so nothing else
/// ever sees the passed-through tensor; and when the fast kernel cannot take a call (another
/// dtype, an odd mask), the attention step splits the tensor itself (``unpack(_:opset:)``) and
/// runs the reference kernel on exactly the operands the unrewritten graph would have had.
enum QKVSplitElision {
    /// Returns `steps` with every matching Split/attention pair rewritten.
    static func apply(to steps: [EngineStep], graph: Graph) -> [EngineStep] {
        var steps = steps
        var readers: [String: [(step: Int, input: Int)]] = [:]
        for (position, step) in steps.enumerated() {
            for (index, name) in step.node.inputs.enumerated() where !name.isEmpty {
                readers[name, default: []].append((position, index))
            }
        }
        let graphOutputs = Set(graph.outputs.map(\.name))
        for (position, step) in steps.enumerated() {
            guard let attention = matchingAttention(step, steps: steps, readers: readers, graph: graph, graphOutputs: graphOutputs),
                  case .attention(let numHeads, let scale, let nanToZero, _) = steps[attention].kernel
            else { continue }
            steps[position] = step.with(kernel: .qkvPassThrough)
            steps[attention] = steps[attention].with(kernel: .attention(numHeads: numHeads, scale: scale, nanToZero: nanToZero, packedQKV: true))
        }
        return steps
    }

    /// The position of the attention step that is the only reader of `step`'s three outputs,
    /// when `step` is a three-way equal Split on the last axis.
    private static func matchingAttention(
        _ step: EngineStep, steps: [EngineStep], readers: [String: [(step: Int, input: Int)]], graph: Graph,
        graphOutputs: Set<String>
    ) -> Int? {
        let node = step.node
        guard node.domain.isEmpty, node.opType == "Split", node.outputs.count == 3,
              node.outputs.allSatisfy({ !$0.isEmpty && !graphOutputs.contains($0) }),
              (try? node.int("axis", default: 0)) == -1,
              let sizes = splitSizes(node, graph: graph), sizes.count == 3, sizes[0] > 0,
              sizes.allSatisfy({ $0 == sizes[0] })
        else { return nil }
        var attention: Int?
        for (index, output) in node.outputs.enumerated() {
            guard let uses = readers[output], uses.count == 1, uses[0].input == index,
                  attention == nil || attention == uses[0].step
            else { return nil }
            attention = uses[0].step
        }
        guard let attention, case .attention(let numHeads, _, _, false) = steps[attention].kernel,
              numHeads > 0, sizes[0] % Int64(numHeads) == 0
        else { return nil }
        return attention
    }

    /// The split sizes, from the `split` input (opset ≥ 13) or attribute.
    private static func splitSizes(_ node: Node, graph: Graph) -> [Int64]? {
        if node.inputs.count > 1, !node.inputs[1].isEmpty {
            guard let sizes = graph.initializers[node.inputs[1]], sizes.dtype.isInteger else { return nil }
            return sizes.ints
        }
        return try? node.ints("split")
    }

    /// The operands an attention step would have had without the rewrite: `[q, k, v, rest...]`
    /// from `[qkv, qkv, qkv, rest...]`, splitting `qkv` in three along its last axis.
    static func unpack(_ inputs: [Tensor?], opset: Int) throws -> [Tensor?] {
        guard let qkv = inputs[0] else { throw KilnError.invalidModel("packed attention has no QKV input") }
        let split = Node(name: "qkv_unpack", opType: "Split", inputs: ["qkv"], outputs: ["q", "k", "v"], attributes: ["axis": .int(-1)])
        let parts = try ReferenceKernels.run(split, inputs: [qkv], opset: max(opset, 13))
        return parts.map { Optional($0) } + inputs.dropFirst(3)
    }
}
