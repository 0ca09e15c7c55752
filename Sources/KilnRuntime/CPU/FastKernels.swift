import KilnCore
import KilnKernels

/// Adapters from tensors to the fast CPU kernels. Each returns nil when the call's tensors are
/// outside what the kernel handles (the step then runs the reference kernel).
enum FastKernels {
    /// The fp32 elements of `tensor`, or nil for other dtypes.
    private static func float32(_ tensor: Tensor?) -> [Float]? {
        guard let tensor, tensor.dtype == .float32, case .float(let values) = tensor.storage else { return nil }
        return values
    }

    /// Runs `body` on a fresh output buffer of `count` floats and wraps it as `shape`.
    private static func output(_ shape: [Int], _ body: (UnsafeMutablePointer<Float>) throws -> Void) throws -> Tensor {
        let count = Tensor.elementCount(of: shape)
        let values = try [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            try body(buffer.baseAddress!)
            initialized = count
        }
        return try Tensor(dtype: .float32, shape: shape, storage: .float(values))
    }

    static func fusedMatMul(_ gemm: FusedMatMulKernel, _ inputs: [Tensor?], context: ExecutionContext) throws -> [Tensor]? {
        guard let a = inputs[0], let values = float32(a), a.rank >= 1, a.shape.last == gemm.inputSize else { return nil }
        let rows = a.count / max(gemm.inputSize, 1)
        let shape = Array(a.shape.dropLast()) + [gemm.outputSize]
        guard rows > 0 else { return [try Tensor(floats: [], shape: shape)] }
        return [try output(shape) { out in
            try values.withUnsafeBufferPointer { try gemm.run(input: $0.baseAddress!, rows: rows, output: out, stream: context.stream) }
        }]
    }

    static func layerNorm(epsilon: Float, _ inputs: [Tensor?]) throws -> [Tensor]? {
        guard let x = inputs[0], let values = float32(x), let hidden = x.shape.last, hidden > 0,
            let gamma = float32(inputs[1]), gamma.count == hidden
        else { return nil }
        let beta = inputs.count > 2 ? float32(inputs[2]) : nil
        if inputs.count > 2, inputs[2] != nil, beta?.count != hidden { return nil }
        return [try output(x.shape) { out in
            values.withUnsafeBufferPointer { input in
                gamma.withUnsafeBufferPointer { gamma in
                    withOptionalBuffer(beta) { beta in
                        LayerNormKernel.run(
                            input: input.baseAddress!, gamma: gamma.baseAddress!, beta: beta?.baseAddress, output: out,
                            rows: x.count / hidden, hiddenSize: hidden, epsilon: epsilon)
                    }
                }
            }
        }]
    }

    static func skipLayerNorm(epsilon: Float, _ inputs: [Tensor?], wantsSum: Bool) throws -> [Tensor]? {
        guard let x = inputs[0], let values = float32(x), let skipTensor = inputs[1], skipTensor.shape == x.shape,
            let skip = float32(skipTensor), let hidden = x.shape.last, hidden > 0,
            let gamma = float32(inputs[2]), gamma.count == hidden
        else { return nil }
        let beta = inputs.count > 3 ? float32(inputs[3]) : nil
        let bias = inputs.count > 4 ? float32(inputs[4]) : nil
        if inputs.count > 3, inputs[3] != nil, beta?.count != hidden { return nil }
        if inputs.count > 4, inputs[4] != nil, bias?.count != hidden { return nil }
        var sum: [Float] = wantsSum ? [Float](repeating: 0, count: x.count) : []
        let normalized = try output(x.shape) { out in
            values.withUnsafeBufferPointer { input in
                skip.withUnsafeBufferPointer { skip in
                    gamma.withUnsafeBufferPointer { gamma in
                        withOptionalBuffer(beta) { beta in
                            withOptionalBuffer(bias) { bias in
                                sum.withUnsafeMutableBufferPointer { sumBuffer in
                                    LayerNormKernel.runSkip(
                                        input: input.baseAddress!, skip: skip.baseAddress!, bias: bias?.baseAddress,
                                        gamma: gamma.baseAddress!, beta: beta?.baseAddress, output: out,
                                        sumOutput: wantsSum ? sumBuffer.baseAddress : nil, rows: x.count / hidden,
                                        hiddenSize: hidden, epsilon: epsilon)
                                }
                            }
                        }
                    }
                }
            }
        }
        return wantsSum ? [normalized, try Tensor(dtype: .float32, shape: x.shape, storage: .float(sum))] : [normalized]
    }

    static func gelu(_ approximation: GeluKernel.Approximation, _ inputs: [Tensor?]) throws -> [Tensor]? {
        guard let x = inputs[0], let values = float32(x) else { return nil }
        return [try output(x.shape) { out in
            values.withUnsafeBufferPointer { GeluKernel.run(input: $0.baseAddress!, output: out, count: x.count, approximation: approximation) }
        }]
    }

    static func softmax(_ inputs: [Tensor?]) throws -> [Tensor]? {
        guard let x = inputs[0], let values = float32(x), let columns = x.shape.last, columns > 0 else { return nil }
        return [try output(x.shape) { out in
            values.withUnsafeBufferPointer { SoftmaxKernel.run(input: $0.baseAddress!, output: out, rows: x.count / columns, columns: columns) }
        }]
    }

    /// Padded multi-head attention over `[B, S, H]` Q/K/V with an additive mask that
    /// broadcasts to `[B, heads, S, S]`. With `nanToZero` (the exporter's NaN guard after the
    /// softmax), a query row whose keys are all masked with -inf yields zeros, not NaN.
    static func attention(numHeads: Int, scale: Float?, nanToZero: Bool, _ inputs: [Tensor?], context: ExecutionContext) throws -> [Tensor]? {
        guard numHeads > 0, let q = inputs[0], q.rank == 3, let query = float32(q),
            let kTensor = inputs[1], kTensor.shape == q.shape, let key = float32(kTensor),
            let vTensor = inputs[2], vTensor.shape == q.shape, let value = float32(vTensor),
            q.shape[2] % numHeads == 0
        else { return nil }
        let (batch, sequence, hidden) = (q.shape[0], q.shape[1], q.shape[2])
        let maskTensor = inputs.count > 3 ? inputs[3] : nil
        let mask: (values: [Float], strides: (batch: Int, head: Int, row: Int))?
        if let maskTensor {
            guard let values = float32(maskTensor), let strides = maskStrides(maskTensor.shape, batch: batch, heads: numHeads, sequence: sequence) else { return nil }
            mask = (values, strides)
        } else {
            mask = nil
        }
        let kernel = try AttentionKernel(numHeads: numHeads, hiddenSize: hidden, scale: scale)
        let scratchCount = AttentionKernel.scratchCount(maxSequenceLength: sequence)
        return [try output(q.shape) { out in
            try context.withAttentionScratch(count: scratchCount) { scratch in
                try query.withUnsafeBufferPointer { query in
                    try key.withUnsafeBufferPointer { key in
                        try value.withUnsafeBufferPointer { value in
                            try (mask?.values ?? []).withUnsafeBufferPointer { maskValues in
                                let attentionMask = mask.map {
                                    AttentionMask(values: maskValues.baseAddress!, batchStride: $0.strides.batch, headStride: $0.strides.head, rowStride: $0.strides.row)
                                }
                                try kernel.runPadded(
                                    query: query.baseAddress!, key: key.baseAddress!, value: value.baseAddress!, inputRowStride: hidden,
                                    batchSize: batch, sequenceLength: sequence, mask: attentionMask, output: out,
                                    outputRowStride: hidden, scratch: scratch)
                                if nanToZero {
                                    // NaN context comes only from all-masked rows (0/0 in the softmax).
                                    for index in 0..<(batch * sequence * hidden) where out[index].isNaN { out[index] = 0 }
                                }
                            }
                        }
                    }
                }
            }
        }]
    }

    /// Strides of a mask of `shape` read as `[B, heads, S(query), S(key)]` with broadcasting,
    /// or nil when its last axis is not the key axis of length `sequence`.
    static func maskStrides(_ shape: [Int], batch: Int, heads: Int, sequence: Int) -> (batch: Int, head: Int, row: Int)? {
        guard shape.count <= 4, shape.last == sequence else { return nil }
        let full = [Int](repeating: 1, count: 4 - shape.count) + shape
        let expected = [batch, heads, sequence, sequence]
        for axis in 0..<4 where full[axis] != 1 && full[axis] != expected[axis] { return nil }
        let strides = Tensor.strides(of: full)
        func stride(_ axis: Int) -> Int { full[axis] == 1 ? 0 : strides[axis] }
        return (stride(0), stride(1), stride(2))
    }
}
