import KilnCore

// Precision assignment
//
// Pattern: every kiln::FusedMatMul and kiln::Attention node.
// Replacement: the same node with `precision = "fp32" | "bf16"` (KilnOperators.precisionAttribute).
// With bf16 requested, the NLU heads stay fp32: a FusedMatMul is a head when a graph output
// is reachable from it without passing another GEMM, attention or layer norm (the intent
// and slot projections, the pooler), because the slot head is the layer most sensitive to
// reduced precision. Nodes named in `keepInFP32` stay fp32 too.
//
// Why it is safe: the pass only annotates; the reference kernels always compute in fp32,
// and engines honour the annotation within the task tolerance `kiln verify` checks.

/// Marks which GEMMs and attention blocks may run in bf16.
public struct PrecisionAssignmentPass: Pass {
    public let name = "precision-assignment"
    /// `"fp32"` or `"bf16"`.
    public let precision: String
    /// Whether output heads stay fp32 when ``precision`` is bf16.
    public let keepHeadsInFP32: Bool
    /// Node names that always stay fp32.
    public let keepInFP32: Set<String>

    public init(precision: String = "fp32", keepHeadsInFP32: Bool = true, keepInFP32: Set<String> = []) {
        self.precision = precision
        self.keepHeadsInFP32 = keepHeadsInFP32
        self.keepInFP32 = keepInFP32
    }

    public func run(_ graph: inout Graph) throws -> PassReport {
        guard KilnOperators.precisions.contains(precision) else {
            throw KilnError.invalidInput("unknown precision '\(precision)'; use one of \(KilnOperators.precisions.joined(separator: ", "))")
        }
        let index = GraphIndex(graph)
        var reduced = 0, full = 0, heads = 0
        for position in graph.nodes.indices {
            let node = graph.nodes[position]
            guard node.isKiln(KilnOperators.fusedMatMul) || node.isKiln(KilnOperators.attention) else { continue }
            var chosen = precision
            let isHead = node.isKiln(KilnOperators.fusedMatMul) && isOutputHead(node, index: index)
            if isHead { heads += 1 }
            if keepInFP32.contains(node.name) || (keepHeadsInFP32 && isHead) { chosen = "fp32" }
            graph.nodes[position].attributes[KilnOperators.precisionAttribute] = .string(chosen)
            if chosen == "bf16" { reduced += 1 } else { full += 1 }
        }
        return PassReport(pass: name, changes: [
            .init("marked", reduced, "nodes bf16"), .init("marked", full, "nodes fp32"), .init("found", heads, "output heads"),
        ])
    }

    private static let barriers: Set<String> = [
        KilnOperators.fusedMatMul, KilnOperators.attention, KilnOperators.layerNorm, KilnOperators.skipLayerNorm, "MatMul", "Gemm",
        "LayerNormalization",
    ]

    /// Whether a graph output is reachable from `node` through cheap nodes only.
    private func isOutputHead(_ node: Node, index: GraphIndex) -> Bool {
        var frontier = node.outputs
        var seen = Set(frontier)
        while let value = frontier.popLast() {
            if index.graphOutputs.contains(value) { return true }
            for reader in index.readers(of: value) where !Self.barriers.contains(reader.opType) {
                for output in reader.outputs where !output.isEmpty && seen.insert(output).inserted { frontier.append(output) }
            }
        }
        return false
    }
}
