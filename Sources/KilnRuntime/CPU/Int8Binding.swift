import KilnCore
import KilnKernels

/// Binding of INT8 FusedMatMul nodes (see `KilnOperators+Int8.swift`) to ``Int8MatMulKernel``,
/// and its tensor adapter. Kept apart from the fp32/bf16 binding so the engine's hook is one
/// dispatch case.
enum Int8Binding {
    /// The packed oneDNN kernel for an int8 node whose weights, scales and bias are constants,
    /// or nil when they are not (the step then runs ``Int8MatMulReference``).
    static func kernel(for node: Node, graph: Graph) throws -> Int8MatMulKernel? {
        guard node.inputs.count > KilnOperators.weightScalesInput,
            let levels = graph.initializers[node.inputs[1]], levels.rank == 2, levels.dtype == .int8,
            let scales = graph.initializers[node.inputs[KilnOperators.weightScalesInput]], scales.count == levels.shape[1]
        else { return nil }
        var bias: [Float]?
        if !node.inputs[2].isEmpty {
            guard let tensor = graph.initializers[node.inputs[2]], tensor.count == levels.shape[1] else { return nil }
            bias = tensor.floats
        }
        guard let activation = GemmActivation(rawValue: try node.string("activation", default: "none")) else { return nil }
        let inputScale = node.attributes[KilnOperators.inputScaleAttribute] == nil
            ? nil : try node.float(KilnOperators.inputScaleAttribute, default: 1)
        return try Int8MatMulKernel(
            quantizedWeights: levels.ints.map { Int8(truncatingIfNeeded: $0) }, weightScales: scales.floats, bias: bias,
            inputSize: levels.shape[0], outputSize: levels.shape[1], activation: activation, inputScale: inputScale, name: node.name)
    }

    /// Runs the kernel on `inputs[0]` (`[..., K]` fp32), or nil when it doesn't fit.
    static func run(_ kernel: Int8MatMulKernel, _ inputs: [Tensor?], context: ExecutionContext) throws -> [Tensor]? {
        guard let a = inputs[0], a.dtype == .float32, case .float(let values) = a.storage, a.rank >= 1, a.shape.last == kernel.inputSize
        else { return nil }
        let rows = a.count / kernel.inputSize
        let shape = Array(a.shape.dropLast()) + [kernel.outputSize]
        let count = rows * kernel.outputSize
        guard rows > 0 else { return [try Tensor(floats: [], shape: shape)] }
        // A dead buffer of this size from the context's pool when there is one (like the fp32 GEMMs).
        var result = context.buffers.take(count: count)
            ?? BufferPool.make(count: count) { $0.initialize(repeating: 0, count: count) }
        try values.withUnsafeBufferPointer { input in
            try result.withUnsafeMutableBufferPointer {
                try kernel.run(input: input.baseAddress!, rows: rows, output: $0.baseAddress!, stream: context.stream)
            }
        }
        return [try Tensor(dtype: .float32, shape: shape, storage: .float(result))]
    }
}
