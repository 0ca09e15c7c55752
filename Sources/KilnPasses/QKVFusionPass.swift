import KilnCore

// Q/K/V projection fusion
//
// Pattern: the three projections feeding one kiln::Attention, all reading the same hidden
// state A, with constant weights of the same K and no activation:
//
//     A ─► FusedMatMul(Wq, bq) ─► Q ─┐
//     A ─► FusedMatMul(Wk, bk) ─► K ─┼─► kiln::Attention
//     A ─► FusedMatMul(Wv, bv) ─► V ─┘
//
// Replacement: one GEMM over the concatenated weights, then a Split on the last axis:
//
//     A ─► FusedMatMul([Wq | Wk | Wv], [bq | bk | bv]) ─► QKV ─► Split(Nq, Nk, Nv) ─► Q, K, V
//
// Why it is safe: each output column of a matrix product depends only on its own weight
// column, so concatenating columns computes the very same dot products in the same order
// (bit-identical in the reference kernels); Split hands back exactly the three slices.
// Models that share weights across layers (ALBERT) reuse one concatenated constant.

/// Merges the Q, K and V projections of each attention block into one `FusedMatMul`.
public struct QKVFusionPass: Pass {
    public let name = "qkv-fusion"

    public init() {}

    public func run(_ graph: inout Graph) throws -> PassReport {
        let index = GraphIndex(graph)
        var replacements: [Int: [Node]] = [:]
        var namer = UniqueNamer(graph)
        var fused = 0
        for attention in graph.nodes where attention.isKiln(KilnOperators.attention) {
            let projections = attention.inputs.prefix(3)
            guard Set(projections).count == 3 else { continue }
            let positions = projections.compactMap { index.producers[$0] }
            guard positions.count == 3, positions.allSatisfy({ replacements[$0] == nil }) else { continue }
            let nodes = positions.map { graph.nodes[$0] }
            guard nodes.allSatisfy({ $0.isKiln(KilnOperators.fusedMatMul) && $0.outputs.count == 1 }),
                Set(nodes.map { $0.inputs[0] }).count == 1,
                nodes.allSatisfy({ ((try? $0.string("activation", default: "none")) ?? "?") == "none" }),
                let weights = Optional(nodes.compactMap { index.constant($0.inputs[1]) }), weights.count == 3,
                Set(weights.map { $0.shape[0] }).count == 1, weights.allSatisfy({ $0.rank == 2 && $0.dtype == .float32 })
            else { continue }
            let biases = nodes.map { $0.inputs.count > 2 && !$0.inputs[2].isEmpty ? index.constant($0.inputs[2]) : nil }
            let hasBias = biases.allSatisfy { $0 != nil }
            guard hasBias || biases.allSatisfy({ $0 == nil }) else { continue }
            let widths = weights.map { $0.shape[1] }
            let weightName = nodes.map { $0.inputs[1] }.joined(separator: "+")
            if graph.initializers[weightName] == nil {
                graph.initializers[weightName] = try Self.concatenateColumns(weights)
            }
            var inputs = [nodes[0].inputs[0], weightName]
            if hasBias {
                let biasName = nodes.map { $0.inputs[2] }.joined(separator: "+")
                if graph.initializers[biasName] == nil {
                    graph.initializers[biasName] = try Tensor(floats: biases.flatMap { $0!.floats }, shape: [widths.reduce(0, +)])
                }
                inputs.append(biasName)
            }
            let merged = namer.fresh("\(projections.first!)_qkv")
            let fusedNode = Node(
                name: namer.fresh("\(attention.name)/QKV"), opType: KilnOperators.fusedMatMul, domain: KilnOperators.domain,
                inputs: inputs, outputs: [merged], attributes: ["activation": .string("none")])
            var split = Node(
                name: namer.fresh("\(attention.name)/QKVSplit"), opType: "Split", inputs: [merged], outputs: Array(projections),
                attributes: ["axis": .int(-1)])
            let sizes = widths.map(Int64.init)
            if graph.opset >= 13 {
                let sizesName = namer.fresh("\(merged)_split")
                graph.initializers[sizesName] = try Tensor(ints: sizes, shape: [3])
                split.inputs.append(sizesName)
            } else {
                split.attributes["split"] = .ints(sizes)
            }
            let first = positions.min()!
            for position in positions { replacements[position] = position == first ? [fusedNode, split] : [] }
            fused += 1
        }
        try graph.replaceNodes(replacements)
        graph.removeDeadNodes()
        return PassReport(pass: name, changes: [.init("fused", fused, "QKV projections")])
    }

    /// `[K, N1] | [K, N2] | ... → [K, ΣN]`.
    static func concatenateColumns(_ matrices: [Tensor]) throws -> Tensor {
        let rows = matrices[0].shape[0]
        let total = matrices.reduce(0) { $0 + $1.shape[1] }
        var values: [Float] = []
        values.reserveCapacity(rows * total)
        let columns = matrices.map { ($0.floats, $0.shape[1]) }
        for row in 0..<rows {
            for (data, width) in columns { values.append(contentsOf: data[(row * width)..<((row + 1) * width)]) }
        }
        return try Tensor(floats: values, shape: [rows, total])
    }
}
