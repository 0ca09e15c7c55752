import KilnCore

// Memory planning
//
// Input: the final graph in execution order and a maximum (batch, seq).
// Output: a ``MemoryPlan`` — every intermediate tensor (and graph output) gets an offset in
// one arena. Lifetimes run from the producing node to the last reader (graph outputs to the
// end); tensors are placed largest first, each in the smallest free gap among the tensors
// already placed whose lifetimes overlap (greedy best fit), at 64-byte alignment.
//
// Why it is safe: two tensors share bytes only when no node position has both alive; a
// node's inputs and outputs are alive at that node together, so nothing is overwritten
// while it is read (no in-place reuse is assumed).

/// Plans one arena for a graph's intermediate tensors.
public enum MemoryPlanner {
    /// Plans `graph` at its maximum shape.
    /// - Parameters:
    ///   - graph: the optimized graph (nodes in execution order).
    ///   - maxBatch: the size bound to every input's first symbolic dimension.
    ///   - maxSeq: the size bound to every input's second symbolic dimension.
    ///   - alignment: offset alignment in bytes.
    ///   - evaluate: evaluates small constant subgraphs for shape inference (optional).
    /// - Returns: the plan, with arena and naive sizes.
    /// - Throws: when a tensor's size cannot be inferred at that shape.
    public static func plan(
        _ graph: Graph, maxBatch: Int, maxSeq: Int, alignment: Int = 64, evaluate: NodeEvaluator? = nil
    ) throws -> MemoryPlan {
        var inputShapes: [String: [Int]] = [:]
        for input in graph.inputs {
            guard let declared = input.shape else { continue }
            inputShapes[input.name] = declared.enumerated().map { axis, dimension in
                if case .fixed(let size) = dimension { return size }
                return axis == 0 ? maxBatch : maxSeq
            }
        }
        let types = try ShapeInference(graph: graph, inputShapes: inputShapes, evaluate: evaluate)
        let order = try graph.topologicallySorted()
        let outputs = Set(graph.outputs.map(\.name))
        var lastUse: [String: Int] = [:]
        for (position, node) in order.enumerated() {
            for input in node.inputs where !input.isEmpty { lastUse[input] = position }
        }
        var allocations: [MemoryPlan.Allocation] = []
        for (position, node) in order.enumerated() {
            for output in node.outputs where !output.isEmpty {
                guard let type = types[output], let shape = type.shape?.concreteSizes, let dtype = type.dtype else {
                    throw KilnError.invalidModel("memory planning: the size of '\(output)' (from \(node.opType) '\(node.name)') is unknown at batch \(maxBatch), seq \(maxSeq)")
                }
                let bytes = align(Tensor.elementCount(of: shape) * max(dtype.byteSize, 1), to: alignment)
                let end = outputs.contains(output) ? order.count : (lastUse[output] ?? position)
                allocations.append(.init(value: output, offset: 0, bytes: bytes, firstUse: position, lastUse: end))
            }
        }
        let placed = place(allocations, alignment: alignment)
        return MemoryPlan(
            maxBatch: maxBatch, maxSeq: maxSeq, alignment: alignment, nodeOrder: order.map(\.name),
            allocations: placed.sorted { ($0.firstUse, $0.value) < ($1.firstUse, $1.value) },
            arenaBytes: placed.map { $0.offset + $0.bytes }.max() ?? 0, naiveBytes: allocations.reduce(0) { $0 + $1.bytes })
    }

    /// Greedy best fit, largest tensors first.
    static func place(_ allocations: [MemoryPlan.Allocation], alignment: Int) -> [MemoryPlan.Allocation] {
        let ordered = allocations.sorted { ($0.bytes, $1.firstUse) > ($1.bytes, $0.firstUse) }
        var placed: [MemoryPlan.Allocation] = []
        for var allocation in ordered {
            let conflicts = placed.filter { $0.firstUse <= allocation.lastUse && allocation.firstUse <= $0.lastUse }
                .sorted { $0.offset < $1.offset }
            var bestOffset: Int?
            var bestGap = Int.max
            var cursor = 0
            for other in conflicts {
                let gap = other.offset - cursor
                if gap >= allocation.bytes && gap < bestGap {
                    bestGap = gap
                    bestOffset = cursor
                }
                cursor = max(cursor, align(other.offset + other.bytes, to: alignment))
            }
            allocation.offset = bestOffset ?? cursor
            placed.append(allocation)
        }
        return placed
    }

    private static func align(_ value: Int, to alignment: Int) -> Int { (value + alignment - 1) / alignment * alignment }
}
