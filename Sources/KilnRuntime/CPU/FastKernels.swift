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

    /// Runs `body` on an output buffer of `count` floats (a released one from the context's
    /// pool when there is one of that size, else a fresh one) and wraps it as `shape`.
    private static func output(
        _ shape: [Int], context: ExecutionContext, _ body: (UnsafeMutablePointer<Float>) throws -> Void
    ) throws -> Tensor {
        let count = Tensor.elementCount(of: shape)
        if var values = context.buffers.take(count: count) {
            try values.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
            return try Tensor(dtype: .float32, shape: shape, storage: .float(values))
        }
        let values = try BufferPool.make(count: count, body)
        return try Tensor(dtype: .float32, shape: shape, storage: .float(values))
    }

    static func fusedMatMul(_ gemm: FusedMatMulKernel, _ inputs: [Tensor?], context: ExecutionContext) throws -> [Tensor]? {
        guard let a = inputs[0], let values = float32(a), a.rank >= 1, a.shape.last == gemm.inputSize else { return nil }
        let rows = a.count / max(gemm.inputSize, 1)
        let shape = Array(a.shape.dropLast()) + [gemm.outputSize]
        guard rows > 0 else { return [try Tensor(floats: [], shape: shape)] }
        return [try output(shape, context: context) { out in
            try values.withUnsafeBufferPointer { try gemm.run(input: $0.baseAddress!, rows: rows, output: out, stream: context.stream) }
        }]
    }

    static func layerNorm(epsilon: Float, _ inputs: [Tensor?], context: ExecutionContext) throws -> [Tensor]? {
        guard let x = inputs[0], let values = float32(x), let hidden = x.shape.last, hidden > 0,
            let gamma = float32(inputs[1]), gamma.count == hidden
        else { return nil }
        let beta = inputs.count > 2 ? float32(inputs[2]) : nil
        if inputs.count > 2, inputs[2] != nil, beta?.count != hidden { return nil }
        return [try output(x.shape, context: context) { out in
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

    static func skipLayerNorm(epsilon: Float, _ inputs: [Tensor?], wantsSum: Bool, context: ExecutionContext) throws -> [Tensor]? {
        guard let x = inputs[0], let values = float32(x), let skipTensor = inputs[1], skipTensor.shape == x.shape,
            let skip = float32(skipTensor), let hidden = x.shape.last, hidden > 0,
            let gamma = float32(inputs[2]), gamma.count == hidden
        else { return nil }
        let beta = inputs.count > 3 ? float32(inputs[3]) : nil
        let bias = inputs.count > 4 ? float32(inputs[4]) : nil
        if inputs.count > 3, inputs[3] != nil, beta?.count != hidden { return nil }
        if inputs.count > 4, inputs[4] != nil, bias?.count != hidden { return nil }
        var sum: [Float] = wantsSum ? [Float](repeating: 0, count: x.count) : []
        let normalized = try output(x.shape, context: context) { out in
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

    static func gelu(_ approximation: GeluKernel.Approximation, _ inputs: [Tensor?], context: ExecutionContext) throws -> [Tensor]? {
        guard let x = inputs[0], let values = float32(x) else { return nil }
        return [try output(x.shape, context: context) { out in
            values.withUnsafeBufferPointer { GeluKernel.run(input: $0.baseAddress!, output: out, count: x.count, approximation: approximation) }
        }]
    }

    static func softmax(_ inputs: [Tensor?], context: ExecutionContext) throws -> [Tensor]? {
        guard let x = inputs[0], let values = float32(x), let columns = x.shape.last, columns > 0 else { return nil }
        return [try output(x.shape, context: context) { out in
            values.withUnsafeBufferPointer { SoftmaxKernel.run(input: $0.baseAddress!, output: out, rows: x.count / columns, columns: columns) }
        }]
    }

    /// Rows of a 2-D fp32 table picked by integer indices (ONNX `Gather`, axis 0).
    static func gatherRows(_ inputs: [Tensor?], context: ExecutionContext) throws -> [Tensor]? {
        guard let table = inputs[0], table.rank == 2, let values = float32(table), let indexTensor = inputs[1],
              indexTensor.count > 0, case .int(let indices) = indexTensor.storage
        else { return nil }
        let (rows, rowSize) = (table.shape[0], table.shape[1])
        guard rowSize > 0, indices.allSatisfy({ $0 >= -Int64(rows) && $0 < Int64(rows) }) else { return nil }
        return [try output(indexTensor.shape + [rowSize], context: context) { out in
            try values.withUnsafeBufferPointer { table in
                try indices.withUnsafeBufferPointer { try RowKernels.gather(table: table.baseAddress!, rows: rows, rowSize: rowSize, indices: $0, output: out) }
            }
        }]
    }

    /// `A + B` in fp32 when one operand's shape (without leading 1s) is a trailing block of the
    /// other's, of no higher rank: same shape, or e.g. `[B, S, H] + [1, S, H]`. Float addition
    /// is commutative, so which operand repeats does not change a bit of the result.
    static func broadcastAdd(_ inputs: [Tensor?], context: ExecutionContext) throws -> [Tensor]? {
        guard inputs.count == 2, let a = inputs[0], let b = inputs[1], let aValues = float32(a), let bValues = float32(b),
              a.count > 0, b.count > 0
        else { return nil }
        let (large, largeValues, small, smallValues) = a.count >= b.count ? (a, aValues, b, bValues) : (b, bValues, a, aValues)
        let block = Array(small.shape.drop(while: { $0 == 1 }))
        guard small.rank <= large.rank, block.count <= large.rank, Array(large.shape.suffix(block.count)) == block else { return nil }
        return [try output(large.shape, context: context) { out in
            largeValues.withUnsafeBufferPointer { input in
                smallValues.withUnsafeBufferPointer { addend in
                    RowKernels.add(input: input.baseAddress!, addend: addend.baseAddress!, output: out, count: large.count, addendCount: small.count)
                }
            }
        }]
    }

    /// Padded multi-head attention over `[B, S, H]` Q/K/V with an additive mask that
    /// broadcasts to `[B, heads, S, S]`. With `packedQKV`, inputs 0-2 are the same `[B, S, 3H]`
    /// tensor (Q, K, V side by side in each row, see ``QKVSplitElision``). With `nanToZero` (the
    /// exporter's NaN guard after the softmax), a query row whose keys are all masked with -inf
    /// yields zeros, not NaN.
    static func attention(
        numHeads: Int, scale: Float?, nanToZero: Bool, packedQKV: Bool, _ inputs: [Tensor?], context: ExecutionContext
    ) throws -> [Tensor]? {
        guard let operands = AttentionOperands(inputs, numHeads: numHeads, packedQKV: packedQKV) else { return nil }
        let (batch, sequence, hidden) = (operands.batch, operands.sequence, operands.hidden)
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
        return [try output([batch, sequence, hidden], context: context) { out in
            try context.withAttentionScratch(count: scratchCount) { scratch in
                try operands.withPointers { query, key, value, rowStride in
                    try (mask?.values ?? []).withUnsafeBufferPointer { maskValues in
                        let attentionMask = mask.map {
                            AttentionMask(values: maskValues.baseAddress!, batchStride: $0.strides.batch, headStride: $0.strides.head, rowStride: $0.strides.row)
                        }
                        try kernel.runPadded(
                            query: query, key: key, value: value, inputRowStride: rowStride,
                            batchSize: batch, sequenceLength: sequence, mask: attentionMask, output: out,
                            outputRowStride: hidden, scratch: scratch)
                        if nanToZero {
                            // NaN context comes only from all-masked rows (0/0 in the softmax).
                            for index in 0..<(batch * sequence * hidden) where out[index].isNaN { out[index] = 0 }
                        }
                    }
                }
            }
        }]
    }

    /// Padding-free attention over a packed batch (see ``PackingPlan``): Q/K/V are `[1, T, H]`
    /// (or one `[1, T, 3H]` with `packedQKV`) and sequence `b` is tokens
    /// `sequenceOffsets[b] ..< sequenceOffsets[b + 1]`; no mask (there is no padding).
    static func packedAttention(
        numHeads: Int, scale: Float?, packedQKV: Bool, _ inputs: [Tensor?], sequenceOffsets: [Int], context: ExecutionContext
    ) throws -> [Tensor]? {
        guard let operands = AttentionOperands(inputs, numHeads: numHeads, packedQKV: packedQKV), operands.batch == 1,
              operands.sequence == sequenceOffsets.last
        else { return nil }
        let hidden = operands.hidden
        let longest = zip(sequenceOffsets.dropFirst(), sequenceOffsets).map { $0 - $1 }.max() ?? 0
        let kernel = try AttentionKernel(numHeads: numHeads, hiddenSize: hidden, scale: scale)
        let scratchCount = AttentionKernel.scratchCount(maxSequenceLength: longest)
        return [try output([1, operands.sequence, hidden], context: context) { out in
            try context.withAttentionScratch(count: scratchCount) { scratch in
                try operands.withPointers { query, key, value, rowStride in
                    try sequenceOffsets.withUnsafeBufferPointer { offsets in
                        try kernel.runPacked(
                            query: query, key: key, value: value, inputRowStride: rowStride, sequenceOffsets: offsets,
                            output: out, outputRowStride: hidden, scratch: scratch)
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

/// Q, K and V of an attention call as fp32 buffers with a row stride: three `[B, S, H]` tensors,
/// or one packed `[B, S, 3H]` tensor.
private struct AttentionOperands {
    let query: [Float]
    let key: [Float]?
    let value: [Float]?
    let batch: Int
    let sequence: Int
    let hidden: Int

    /// Nil when the tensors are not fp32 of matching `[B, S, H]` (or `[B, S, 3H]`) shapes.
    init?(_ inputs: [Tensor?], numHeads: Int, packedQKV: Bool) {
        guard numHeads > 0, let q = inputs[0], q.rank == 3, q.dtype == .float32, case .float(let query) = q.storage else { return nil }
        (batch, sequence) = (q.shape[0], q.shape[1])
        self.query = query
        if packedQKV {
            guard q.shape[2] % 3 == 0 else { return nil }
            hidden = q.shape[2] / 3
            key = nil
            value = nil
        } else {
            guard let k = inputs[1], k.shape == q.shape, k.dtype == .float32, case .float(let key) = k.storage,
                  let v = inputs[2], v.shape == q.shape, v.dtype == .float32, case .float(let value) = v.storage
            else { return nil }
            hidden = q.shape[2]
            self.key = key
            self.value = value
        }
        guard hidden % numHeads == 0 else { return nil }
    }

    /// Calls `body(query, key, value, rowStride)`.
    func withPointers<T>(
        _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, Int) throws -> T
    ) rethrows -> T {
        try query.withUnsafeBufferPointer { query in
            let base = query.baseAddress!
            guard let key, let value else { return try body(base, base + hidden, base + 2 * hidden, 3 * hidden) }
            return try key.withUnsafeBufferPointer { key in
                try value.withUnsafeBufferPointer { value in try body(base, key.baseAddress!, value.baseAddress!, hidden) }
            }
        }
    }
}
