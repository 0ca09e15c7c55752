import KilnCore

/// Engine-build-time analysis: can this graph run padding-free (packed), and how?
///
/// A padded batch `[B, S]` with right padding holds `T = Σ lengths` real tokens. A packed run
/// feeds the graph `[1, T]` inputs (the real tokens of every sequence, back to back), so every
/// per-token step (embedding gathers, GEMMs, bias/GELU, Add, LayerNorm, SkipLayerNorm, the
/// slot head) works on `T` rows instead of `B·S`. Only three kinds of step see across tokens,
/// and each gets a packed replacement:
/// - `kiln::Attention`: runs per sequence (``AttentionKernel/runPacked``); its mask operand is
///   not computed at all (see "mask subgraph").
/// - the position-id gather `Gather(table, P)` whose `P` is computed inside the graph (a slice
///   of `position_ids`, a `Range`, RoBERTa's cumsum): gets `c + k·(position in its sequence)`.
/// - `Gather(x, i) {axis = 1}` with a constant index (the CLS token for the intent head):
///   picks token `i` of each sequence and gives `[B, ·]` as the padded graph does.
///
/// **Mask and position subgraphs.** The nodes that only feed attention masks or position ids
/// (Shape, Range, Unsqueeze, Cast, Where, GatherND...: the exporters differ) are skipped in a
/// packed run. Everything else ("main" nodes) must be per-token, per-sequence or constant, by
/// the layout rules in ``LayoutRules``; otherwise the graph does not qualify and runs padded.
///
/// **Why it is safe.** The rules prove that main nodes never mix tokens. What the skipped
/// subgraphs compute is checked numerically once, at engine build, by a padded run on a small
/// ragged sample (``PackingPlan/verify(_:)``): each attention mask must be 0 for real keys and
/// ≤ -1e4 (or -inf) for padding keys on every real query row — then softmax gives padding keys
/// exactly zero weight in fp32, so attending only within each sequence is the same function —
/// and each position index must be `c + k·s` (k ∈ {0, 1}) on real tokens.
struct PackingPlan: Sendable {
    /// What a step does in a packed run.
    enum Role: Sendable, Equatable {
        case normal
        /// Only feeds masks / position ids: not run.
        case skip
        /// Attention per sequence; the mask operand is ignored.
        case attention
        /// `Gather(x, index) {axis = 1}`: token `index` of each sequence.
        case firstToken(index: Int)
        /// A table gather whose operand `1` is replaced by packed position ids `offset + step·s`.
        case positions(offset: Int64, step: Int64)
    }

    /// Per step (engine order).
    var roles: [Role]
    /// The graph input holding the 0/1 attention mask.
    let maskInput: String
    /// Graph outputs laid out `[B, S, ...]` (scattered back from `[1, T, ...]`); others are `[B, ...]` or constant.
    let tokenOutputs: Set<String>

    /// Counts for the inspect/log line.
    var summary: String {
        let attention = roles.filter { $0 == .attention }.count
        let positions = roles.filter { if case .positions = $0 { return true } else { return false } }.count
        let first = roles.filter { if case .firstToken = $0 { return true } else { return false } }.count
        let skipped = roles.filter { $0 == .skip }.count
        return "\(attention) attention per sequence, \(positions) position gathers, \(first) first-token gathers, \(skipped) mask/position nodes skipped"
    }

    /// Analyses `steps` (in engine order); the plan, or the reason the graph runs padded.
    static func analyse(_ steps: [EngineStep], graph: Graph) -> Result<PackingPlan, PackingRefusal> {
        do { return .success(try build(steps, graph: graph)) } catch let refusal as PackingRefusal { return .failure(refusal) } catch {
            return .failure(PackingRefusal(reason: "\(error)"))
        }
    }

    private static func build(_ steps: [EngineStep], graph: Graph) throws -> PackingPlan {
        let maskInput = try attentionMaskInput(graph)
        for input in graph.inputs where input.dtype?.isInteger != true || input.shape?.count != 2 {
            throw PackingRefusal(reason: "input '\(input.name)' is not an integer [batch, sequence] tensor")
        }
        let producers = Dictionary(steps.enumerated().flatMap { position, step in step.node.outputs.filter { !$0.isEmpty }.map { ($0, position) } },
                                   uniquingKeysWith: { first, _ in first })
        var roles = [Role](repeating: .skip, count: steps.count)
        // Main nodes: ancestors of the graph outputs, not through mask or position-index edges.
        var pending = graph.outputs.compactMap { producers[$0.name] }
        var main = Set<Int>()
        while let position = pending.popLast() {
            guard main.insert(position).inserted else { continue }
            let node = steps[position].node
            for (index, name) in node.inputs.enumerated() where !name.isEmpty {
                if isAttention(node) && index == 3 { continue }
                if isPositionGather(node, graph: graph) && index == 1 { continue }
                if let producer = producers[name] { pending.append(producer) }
            }
        }
        var rules = LayoutRules(graph: graph)
        for (position, step) in steps.enumerated() where main.contains(position) {
            roles[position] = try rules.apply(step)
        }
        var tokenOutputs: Set<String> = []
        for output in graph.outputs {
            switch rules.layouts[output.name] {
            case .tokens(let rank) where rank >= 2: tokenOutputs.insert(output.name)
            case .sequences, .constant: break
            default: throw PackingRefusal(reason: "output '\(output.name)' is neither per-token nor per-sequence")
            }
        }
        guard roles.contains(.attention) else { throw PackingRefusal(reason: "no fused attention to run per sequence") }
        return PackingPlan(roles: roles, maskInput: maskInput, tokenOutputs: tokenOutputs)
    }

    private static func attentionMaskInput(_ graph: Graph) throws -> String {
        if graph.inputs.contains(where: { $0.name == "attention_mask" }) { return "attention_mask" }
        let masks = graph.inputs.filter { $0.name.lowercased().contains("mask") }
        guard masks.count == 1 else { throw PackingRefusal(reason: "no attention_mask input to find padding in") }
        return masks[0].name
    }

    static func isAttention(_ node: Node) -> Bool {
        node.domain == KilnOperators.domain && node.opType == KilnOperators.attention
    }

    /// `Gather(table, P) {axis = 0}` of an fp32 constant 2-D table by indices computed inside
    /// the graph (not a graph input): position ids (or token-type ids built from a buffer).
    static func isPositionGather(_ node: Node, graph: Graph) -> Bool {
        guard node.domain.isEmpty, node.opType == "Gather", node.inputs.count == 2, (try? node.int("axis", default: 0)) == 0,
              let table = graph.initializers[node.inputs[0]], table.rank == 2, table.dtype == .float32
        else { return false }
        let index = node.inputs[1]
        return !graph.inputs.contains { $0.name == index } && graph.initializers[index] == nil
    }
}

/// Why a graph runs padded (shown by `kiln inspect` / `bench-engine` and in the engine's log line).
struct PackingRefusal: Error, CustomStringConvertible {
    let reason: String
    var description: String { reason }
}

/// Where a main value's batch and sequence axes are.
enum ValueLayout: Equatable {
    /// Depends on no graph input.
    case constant
    /// `[B, S, ...]` of this rank: one row per token (packed: `[1, T, ...]`).
    case tokens(rank: Int)
    /// `[B, ...]` of this rank: one row per sequence.
    case sequences(rank: Int)
}

/// The per-op rules that prove main nodes never mix tokens (see ``PackingPlan``).
struct LayoutRules {
    let graph: Graph
    var layouts: [String: ValueLayout] = [:]

    init(graph: Graph) {
        self.graph = graph
        for input in graph.inputs { layouts[input.name] = .tokens(rank: 2) }
    }

    /// Ops that work element by element with ONNX broadcasting.
    static let elementwise: Set<String> = [
        "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Erf", "Tanh", "Relu", "Cast", "Where", "Equal", "Not", "Greater",
        "Less", "GreaterOrEqual", "LessOrEqual", "Neg", "Abs", "Exp", "Log", "Sigmoid", "Identity", "Min", "Max", "And",
        "Or", "Reciprocal", "Clip",
    ]

    private func layout(_ name: String) -> ValueLayout {
        if name.isEmpty || graph.initializers[name] != nil { return .constant }
        return layouts[name] ?? .constant
    }

    private func refuse(_ node: Node, _ why: String) -> PackingRefusal {
        PackingRefusal(reason: "node '\(node.name)' (\(node.opType)) \(why)")
    }

    /// Records the layout of `step`'s outputs and returns its packed role.
    mutating func apply(_ step: EngineStep) throws -> PackingPlan.Role {
        let node = step.node
        let inputs = node.inputs.map(layout)
        var role = PackingPlan.Role.normal
        let result: ValueLayout
        if PackingPlan.isAttention(node) {
            guard case .attention = step.kernel, inputs.prefix(3).allSatisfy({ $0 == .tokens(rank: 3) }) else {
                throw refuse(node, "is an attention the packed kernel cannot run")
            }
            guard node.inputs.count > 3, !node.inputs[3].isEmpty else { throw refuse(node, "has no mask, so padding keys count in the padded graph") }
            (role, result) = (.attention, .tokens(rank: 3))
        } else if PackingPlan.isPositionGather(node, graph: graph) {
            // Its indices come from a skipped subgraph (offset/step are set by verify()).
            (role, result) = (.positions(offset: 0, step: 1), .tokens(rank: 3))
        } else if inputs.allSatisfy({ $0 == .constant }) {
            result = .constant
        } else {
            (role, result) = try nonConstant(step, inputs: inputs)
        }
        for output in node.outputs where !output.isEmpty { layouts[output] = result }
        return role
    }

    private func nonConstant(_ step: EngineStep, inputs: [ValueLayout]) throws -> (PackingPlan.Role, ValueLayout) {
        let node = step.node
        let first = inputs[0]
        if node.domain == KilnOperators.domain {
            switch node.opType {
            case KilnOperators.fusedMatMul, KilnOperators.layerNorm, KilnOperators.gelu:
                try requireRows(node, first, rest: inputs.dropFirst())
                return (.normal, first)
            case KilnOperators.skipLayerNorm:
                try requireRows(node, first, rest: inputs.dropFirst(2))
                guard inputs[1] == first || inputs[1] == .constant else { throw refuse(node, "adds tensors of different layouts") }
                return (.normal, first)
            default: throw refuse(node, "is not per-token")
            }
        }
        guard node.domain.isEmpty else { throw refuse(node, "is not per-token") }
        switch node.opType {
        case "Gather": return try gather(node, inputs: inputs)
        case "Softmax", "Split":
            let axis = try node.int("axis", default: node.opType == "Split" ? 0 : -1)
            guard case .tokens(let rank) = first, rank >= 3, axis == -1 || axis >= 2, inputs.dropFirst().allSatisfy({ $0 == .constant }) else {
                throw refuse(node, "works across tokens")
            }
            return (.normal, first)
        case "Unsqueeze": return (.normal, try unsqueeze(node, first))
        default:
            guard Self.elementwise.contains(node.opType) else { throw refuse(node, "is not per-token") }
            return (.normal, try broadcast(node, inputs))
        }
    }

    /// A last-axis op: rows of tokens (rank ≥ 3) or of sequences (rank ≥ 2); other operands constant.
    private func requireRows(_ node: Node, _ layout: ValueLayout, rest: ArraySlice<ValueLayout>) throws {
        switch layout {
        case .tokens(let rank) where rank >= 3: break
        case .sequences(let rank) where rank >= 2: break
        default: throw refuse(node, "would work across tokens")
        }
        guard rest.allSatisfy({ $0 == .constant }) else { throw refuse(node, "takes a non-constant weight") }
    }

    private func gather(_ node: Node, inputs: [ValueLayout]) throws -> (PackingPlan.Role, ValueLayout) {
        let axis = try node.int("axis", default: 0)
        if axis == 0, inputs[0] == .constant, case .tokens(let rank) = inputs[1] {
            return (.normal, .tokens(rank: rank + 1))  // embedding rows by token ids
        }
        if axis == 1, case .tokens(let rank) = inputs[0], let index = graph.initializers[node.inputs[1]], index.rank == 0,
           let value = index.ints.first, value >= 0 {
            return (.firstToken(index: Int(value)), .sequences(rank: rank - 1))
        }
        throw refuse(node, "gathers across tokens")
    }

    private func unsqueeze(_ node: Node, _ layout: ValueLayout) throws -> ValueLayout {
        guard case .tokens(let rank) = layout else { throw refuse(node, "reshapes a per-sequence value") }
        let axes: [Int64]?
        if node.inputs.count > 1 { axes = graph.initializers[node.inputs[1]]?.ints } else { axes = try node.ints("axes") }
        guard let axes else { throw refuse(node, "has computed axes") }
        let outputRank = rank + axes.count
        let normalized = axes.map { $0 < 0 ? Int($0) + outputRank : Int($0) }
        guard normalized.allSatisfy({ $0 >= 2 }) else { throw refuse(node, "inserts an axis before the sequence axis") }
        return .tokens(rank: outputRank)
    }

    /// Elementwise with broadcasting: every non-constant operand has the same layout and rank;
    /// constants must not vary along the batch or sequence axis.
    private func broadcast(_ node: Node, _ inputs: [ValueLayout]) throws -> ValueLayout {
        let varying = Set(inputs.filter { $0 != .constant }.map { "\($0)" })
        guard varying.count == 1, let layout = inputs.first(where: { $0 != .constant }) else {
            throw refuse(node, "mixes per-token and per-sequence values")
        }
        let rank: Int
        let leading: Int
        switch layout {
        case .tokens(let r): (rank, leading) = (r, 2)
        case .sequences(let r): (rank, leading) = (r, 1)
        case .constant: return .constant
        }
        for (index, name) in node.inputs.enumerated() where inputs[index] == .constant && !name.isEmpty {
            guard let constant = graph.initializers[name] else { throw refuse(node, "reads a computed constant of unknown shape") }
            guard constant.rank <= rank else { throw refuse(node, "broadcasts to a higher rank") }
            let shift = rank - constant.rank
            for axis in 0..<leading where axis - shift >= 0 && constant.shape[axis - shift] != 1 {
                throw refuse(node, "adds a constant that varies along the batch or sequence axis")
            }
        }
        return layout
    }
}
