import KilnCore

// Shape-subgraph folding (with symbolic dimensions)
//
// Pattern: shape arithmetic that exporters write out, e.g. (TorchScript)
//
//     x ─► Shape ─► Gather(0) ─► Unsqueeze ─┐
//     x ─► Shape ─► Gather(1) ─► Unsqueeze ─┼─► Concat ─► Reshape(q, ·)     target [batch, seq, 12, 64]
//                          Constant(12) ────┤
//                          Constant(64) ────┘
//
// Replacement: shape inference follows the arithmetic symbolically (see ``ShapeInference``):
//   * a value whose contents are fully known (e.g. `Shape(x)[2] = 384`) becomes a constant;
//   * a Reshape target with symbolic entries becomes a constant using Reshape's copy-dim `0`
//     where the entry equals the input's dimension at that axis, and `-1` for at most one
//     other entry: `[batch, seq, 12, 64]` ⇒ `[0, 0, 12, 64]`, `[batch*12, seq, 64]` ⇒ `[-1, 0, 64]`;
//   * an Expand target with symbolic entries becomes a constant using `1` where the input
//     already has that dimension (broadcasting keeps it).
// The Shape/Gather/Concat chains are then dead and DCE removes them.
//
// Why it is safe: the rewritten constants produce, for every run-time size, exactly the
// shapes the original arithmetic computed: inference only records what `Shape` returns and
// what integer ops do with it, and sizes are never negative.

/// Folds shape arithmetic into constants using symbolic shape inference.
public struct ShapeFoldingPass: Pass {
    public let name = "shape-folding"
    private let evaluate: NodeEvaluator

    /// - Parameter evaluate: runs one node on known inputs (wire it to the reference kernels).
    public init(evaluate: @escaping NodeEvaluator) {
        self.evaluate = evaluate
    }

    public func run(_ graph: inout Graph) throws -> PassReport {
        let types = try ShapeInference(graph: graph, evaluate: evaluate)
        var foldedValues = 0, reshapes = 0, expands = 0
        var kept: [Node] = []
        for var node in graph.nodes {
            let known = node.outputs.map { output -> Tensor? in
                guard !output.isEmpty, let type = types[output] else { return nil }
                return type.knownValue
            }
            if !node.outputs.isEmpty, known.allSatisfy({ $0 != nil }), node.domain.isEmpty {
                for (output, tensor) in zip(node.outputs, known) where !output.isEmpty { graph.initializers[output] = tensor! }
                foldedValues += 1
                continue
            }
            if node.opType == "Reshape", node.domain.isEmpty, node.inputs.count > 1, graph.initializers[node.inputs[1]] == nil,
                let target = types[node.inputs[1]]?.contents,
                let (constant, allowZero) = Self.reshapeTarget(target, input: types.shape(of: node.inputs[0]), allowZero: (try? node.int("allowzero", default: 0)) == 1)
            {
                let name = "\(node.outputs[0])_shape"
                graph.initializers[name] = try Tensor(ints: constant, shape: [constant.count])
                node.inputs[1] = name
                node.attributes["allowzero"] = .int(allowZero ? 1 : 0)
                reshapes += 1
            }
            if node.opType == "Expand", node.domain.isEmpty, node.inputs.count > 1, graph.initializers[node.inputs[1]] == nil,
                let target = types[node.inputs[1]]?.contents, let input = types.shape(of: node.inputs[0]),
                let constant = Self.expandTarget(target, input: input)
            {
                let name = "\(node.outputs[0])_shape"
                graph.initializers[name] = try Tensor(ints: constant, shape: [constant.count])
                node.inputs[1] = name
                expands += 1
            }
            kept.append(node)
        }
        graph.nodes = kept
        return PassReport(pass: name, changes: [
            .init("folded", foldedValues, "shape values"), .init("rewrote", reshapes, "reshape targets"),
            .init("rewrote", expands, "expand targets"),
        ])
    }

    /// A constant Reshape target equivalent to the symbolic `target`, or nil.
    /// - Returns: the target and whether `allowzero` must stay set.
    static func reshapeTarget(_ target: [SymbolicDim], input: SymbolicShape?, allowZero: Bool) -> ([Int64], Bool)? {
        var result: [Int64] = []
        var inferredUsed = target.contains { $0.constant == -1 }
        var copied = false
        for (axis, dim) in target.enumerated() {
            if let value = dim.constant {
                result.append(Int64(value))
            } else if let input, axis < input.count, input[axis] == dim, !dim.isUnknown {
                result.append(0)
                copied = true
            } else if !inferredUsed, !dim.isUnknown {
                result.append(-1)
                inferredUsed = true
            } else {
                return nil
            }
        }
        // With allowzero=1 a literal 0 means an empty axis; copying needs allowzero=0.
        if allowZero && copied && target.contains(where: { $0.constant == 0 }) { return nil }
        return (result, allowZero && !copied)
    }

    /// A constant Expand target equivalent to the symbolic `target`, or nil.
    static func expandTarget(_ target: [SymbolicDim], input: SymbolicShape) -> [Int64]? {
        var result: [Int64] = []
        let offset = target.count - input.count
        for (axis, dim) in target.enumerated() {
            if let value = dim.constant {
                result.append(Int64(value))
            } else if axis - offset >= 0, input[axis - offset] == dim, !dim.isUnknown {
                result.append(1)
            } else {
                return nil
            }
        }
        return result
    }
}
