import KilnCore

/// Reference kernels for Kiln's fused operators (``KilnOperators``), each written as the
/// standard-op composition that defines it, by calling the standard reference kernels. They
/// compute in fp32 whatever `precision` attribute a node carries.
enum KilnDomainKernels {
    static func register(into table: inout [String: ReferenceKernel]) {
        func key(_ opType: String) -> String { ReferenceKernels.key(opType: opType, domain: KilnOperators.domain) }
        table[key(KilnOperators.layerNorm)] = layerNorm
        table[key(KilnOperators.skipLayerNorm)] = skipLayerNorm
        table[key(KilnOperators.gelu)] = gelu
        table[key(KilnOperators.fusedMatMul)] = fusedMatMul
        table[key(KilnOperators.attention)] = attention
    }

    /// Runs the standard operator `opType` as a step of `context`'s fused node.
    private static func standard(
        _ opType: String, _ inputs: [Tensor?], attributes: [String: Attribute] = [:], in context: OpContext
    ) throws -> [Tensor] {
        guard let kernel = ReferenceKernels.table[opType] else { throw context.failure("no reference kernel for step \(opType)") }
        let step = Node(
            name: "\(context.node.name)/\(opType)", opType: opType, inputs: inputs.indices.map { "in\($0)" },
            outputs: ["out"], attributes: attributes)
        // Opset 13+ semantics (per-axis softmax); the fused ops are defined with them.
        return try kernel(OpContext(node: step, inputs: inputs, opset: max(context.opset, 13)))
    }

    /// `LayerNormalization(X, gamma, beta?, axis = -1, epsilon)`.
    private static func layerNorm(_ context: OpContext) throws -> [Tensor] {
        let epsilon = try context.node.float("epsilon", default: 1e-5)
        let outputs = try standard(
            "LayerNormalization", [try context.input(0), try context.input(1), context.optionalInput(2)],
            attributes: ["axis": .int(-1), "epsilon": .float(epsilon)], in: context)
        return [outputs[0]]
    }

    /// `Sum = X + skip (+ bias)`, `Y = LayerNorm(Sum)`; outputs `(Y, Sum)`.
    private static func skipLayerNorm(_ context: OpContext) throws -> [Tensor] {
        var sum = try standard("Add", [try context.input(0), try context.input(1)], in: context)[0]
        if let bias = context.optionalInput(4) { sum = try standard("Add", [sum, bias], in: context)[0] }
        let epsilon = try context.node.float("epsilon", default: 1e-5)
        let normalized = try standard(
            "LayerNormalization", [sum, try context.input(2), context.optionalInput(3)],
            attributes: ["axis": .int(-1), "epsilon": .float(epsilon)], in: context)[0]
        return context.node.outputs.count > 1 ? [normalized, sum] : [normalized]
    }

    /// ONNX `Gelu(approximate)`.
    private static func gelu(_ context: OpContext) throws -> [Tensor] {
        let approximate = try context.node.string("approximate", default: "none")
        return try standard("Gelu", [try context.input(0)], attributes: ["approximate": .string(approximate)], in: context)
    }

    /// `activation(MatMul(A, W) + bias)`.
    private static func fusedMatMul(_ context: OpContext) throws -> [Tensor] {
        let weights = try context.input(1)
        guard weights.rank == 2 else { throw context.failure("W must be a [K, N] matrix, got \(weights.signature)") }
        var result = try standard("MatMul", [try context.input(0), weights], in: context)[0]
        if let bias = context.optionalInput(2) { result = try standard("Add", [result, bias], in: context)[0] }
        let activation = try context.node.string("activation", default: "none")
        switch activation {
        case "none": return [result]
        case "gelu": return try standard("Gelu", [result], attributes: ["approximate": .string("none")], in: context)
        case "gelu_tanh": return try standard("Gelu", [result], attributes: ["approximate": .string("tanh")], in: context)
        case "relu": return try standard("Relu", [result], in: context)
        case "tanh": return try standard("Tanh", [result], in: context)
        default: throw context.failure("unknown activation '\(activation)' (expected none, gelu, gelu_tanh, relu or tanh)")
        }
    }

    /// `softmax(Q·Kᵀ·scale + mask)·V` per head, heads split from and merged back into the last axis.
    private static func attention(_ context: OpContext) throws -> [Tensor] {
        let (query, key, value) = (try context.input(0), try context.input(1), try context.input(2))
        let heads = Int(try context.node.int("num_heads", default: 0))
        guard query.rank == 3, key.rank == 3, value.rank == 3, heads > 0, query.shape[2] % heads == 0 else {
            throw context.failure("needs Q, K, V of rank 3 with a hidden size divisible by num_heads=\(heads), got \(query.signature), \(key.signature), \(value.signature)")
        }
        let headSize = query.shape[2] / heads
        func split(_ tensor: Tensor, perm: [Int64]) throws -> Tensor {
            let shaped = try tensor.reshaped([tensor.shape[0], tensor.shape[1], heads, headSize])
            return try standard("Transpose", [shaped], attributes: ["perm": .ints(perm)], in: context)[0]
        }
        let scale = try context.node.float("scale", default: 1 / Float(headSize).squareRoot())
        var scores = try standard("MatMul", [try split(query, perm: [0, 2, 1, 3]), try split(key, perm: [0, 2, 3, 1])], in: context)[0]
        scores = try standard("Mul", [scores, Tensor.scalar(scale)], in: context)[0]
        if let mask = context.optionalInput(3) { scores = try standard("Add", [scores, mask], in: context)[0] }
        var probabilities = try standard("Softmax", [scores], attributes: ["axis": .int(-1)], in: context)[0]
        if try context.node.int(KilnOperators.nanToZeroAttribute, default: 0) == 1 {
            probabilities = try Tensor(
                floats: probabilities.floats.map { $0.isNaN ? 0 : $0 }, shape: probabilities.shape, dtype: probabilities.dtype)
        }
        let context4D = try standard("MatMul", [probabilities, try split(value, perm: [0, 2, 1, 3])], in: context)[0]
        let merged = try standard("Transpose", [context4D], attributes: ["perm": .ints([0, 2, 1, 3])], in: context)[0]
        return [try merged.reshaped([query.shape[0], query.shape[1], query.shape[2]])]
    }
}
