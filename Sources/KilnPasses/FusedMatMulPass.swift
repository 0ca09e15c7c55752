import KilnCore

// MatMul / Gemm fusion into one GEMM with epilogue
//
// Pattern:
//
//     A ─► MatMul(·, W const [K, N]) ─► Add(· , b const [N]) ─► kiln::Gelu | Relu | Tanh ─► y
//     A ─► Gemm(·, B const, C const?) {transA = 0, transB, alpha, beta} ─► (activation) ─► y
//
// (bias and activation optional; each intermediate must have that single reader).
//
// Replacement: kiln::FusedMatMul(A, W, b) {activation} ─► y, with Gemm's B transposed
// (transB = 1) and scaled by alpha, and C scaled by beta, once at build time.
//
// Why it is safe: A·W + b followed by the activation is exactly what the pattern computes;
// the reference FusedMatMul runs the same MatMul, Add and activation kernels. Transposing
// B is exact; folding alpha/beta into the constants reorders one multiplication (≤ 1 ulp,
// and both are 1 in every exporter's output). A must have rank ≥ 2 and the bias exactly N
// elements, so broadcasting cannot change the result's shape.

/// Fuses MatMul/Gemm with constant weights, bias and activation into `kiln::FusedMatMul`.
public struct FusedMatMulPass: Pass {
    public let name = "matmul-fusion"

    public init() {}

    public func run(_ graph: inout Graph) throws -> PassReport {
        let types = try ShapeInference(graph: graph)
        let index = GraphIndex(graph)
        var replacements: [Int: [Node]] = [:]
        var fused = 0, withBias = 0, withActivation = 0
        for node in graph.nodes {
            guard let (a, weights, bias) = gemmOperands(node, index: index, types: types, graph: &graph) else { continue }
            var final = node.outputs[0]
            var biasName = bias
            if biasName == nil, let add = index.soleReader(of: final), add.isStandard("Add"), let other = add.otherInput(than: final),
                let tensor = index.constant(other), tensor.rank == 1, tensor.count == graph.initializers[weights]!.shape[1],
                tensor.dtype == .float32
            {
                biasName = other
                final = add.outputs[0]
            }
            var activation = "none"
            if let reader = index.soleReader(of: final), let kind = Self.activation(of: reader) {
                activation = kind
                final = reader.outputs[0]
            }
            guard let finalPosition = index.producers[final], replacements[finalPosition] == nil else { continue }
            fused += 1
            if biasName != nil { withBias += 1 }
            if activation != "none" { withActivation += 1 }
            let fusedNode = Node(
                name: node.name, opType: KilnOperators.fusedMatMul, domain: KilnOperators.domain,
                inputs: [a, weights] + (biasName.map { [$0] } ?? []), outputs: [final], attributes: ["activation": .string(activation)])
            replacements[finalPosition] = [fusedNode]
        }
        try graph.replaceNodes(replacements)
        graph.removeDeadNodes()
        return PassReport(pass: name, changes: [
            .init("fused", fused, "matmuls"), .init("absorbed", withBias, "biases"), .init("absorbed", withActivation, "activations"),
        ])
    }

    /// The activation name for a node that can be an epilogue.
    private static func activation(of node: Node) -> String? {
        if node.isKiln(KilnOperators.gelu) {
            return (try? node.string("approximate", default: "none")) == "tanh" ? "gelu_tanh" : "gelu"
        }
        if node.isStandard("Relu") { return "relu" }
        if node.isStandard("Tanh") { return "tanh" }
        return nil
    }

    /// `(A, W [K, N], bias?)` for a MatMul or Gemm with a constant right operand; creates the
    /// transposed/scaled constants Gemm needs.
    private func gemmOperands(_ node: Node, index: GraphIndex, types: ShapeInference, graph: inout Graph) -> (String, String, String?)? {
        if node.isStandard("MatMul") {
            guard let weights = index.constant(node.inputs[1]), weights.rank == 2, weights.dtype == .float32,
                let rank = types.shape(of: node.inputs[0])?.count, rank >= 2
            else { return nil }
            return (node.inputs[0], node.inputs[1], nil)
        }
        guard node.isStandard("Gemm"), let b = index.constant(node.inputs[1]), b.rank == 2, b.dtype == .float32,
            (try? node.int("transA", default: 0)) == 0, types.shape(of: node.inputs[0])?.count == 2
        else { return nil }
        let transB = (try? node.int("transB", default: 0)) == 1
        let alpha = (try? node.float("alpha", default: 1)) ?? 1
        let beta = (try? node.float("beta", default: 1)) ?? 1
        let n = transB ? b.shape[0] : b.shape[1]
        var biasName: String?
        if node.inputs.count > 2, !node.inputs[2].isEmpty {
            // C must be a row ([N], [1, N]) or one value; a column [M, 1] is a per-row bias.
            guard let c = index.constant(node.inputs[2]), c.count == n || c.count == 1, c.rank <= 2, c.rank < 2 || c.shape[0] == 1
            else { return nil }
            let values = c.count == 1 ? [Float](repeating: c.floats[0], count: n) : c.floats
            let name = beta == 1 && c.rank == 1 && c.count == n ? node.inputs[2] : "\(node.inputs[2])_bias\(beta == 1 ? "" : "_beta\(beta)")"
            if graph.initializers[name] == nil { graph.initializers[name] = try? Tensor(floats: values.map { $0 * beta }, shape: [n]) }
            biasName = name
        }
        var weightsName = node.inputs[1]
        if transB || alpha != 1 {
            weightsName = "\(node.inputs[1])\(transB ? "_transposed" : "")\(alpha == 1 ? "" : "_alpha\(alpha)")"
            if graph.initializers[weightsName] == nil {
                let (rows, columns) = (b.shape[0], b.shape[1])
                let values = b.floats
                var packed = [Float](repeating: 0, count: values.count)
                let (k, _) = transB ? (columns, rows) : (rows, columns)
                for row in 0..<k {
                    for column in 0..<n {
                        packed[row * n + column] = alpha * (transB ? values[column * columns + row] : values[row * columns + column])
                    }
                }
                graph.initializers[weightsName] = try? Tensor(floats: packed, shape: [k, n])
            }
        }
        return (node.inputs[0], weightsName, biasName)
    }
}
