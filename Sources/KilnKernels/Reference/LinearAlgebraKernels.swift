import KilnCore

/// Matrix products: `MatMul` (NumPy semantics) and `Gemm`.
enum LinearAlgebraKernels {
    static func register(into table: inout [String: ReferenceKernel]) {
        table["MatMul"] = matMul
        table["Gemm"] = gemm
    }

    /// `C[m, n] = Σ_k A[m, k] B[k, n]` over broadcast batch dimensions; 1-D operands are
    /// promoted to matrices and the added dimension is removed from the result.
    static func matMul(_ context: OpContext) throws -> [Tensor] {
        let a = try context.input(0)
        let b = try context.input(1)
        guard a.rank >= 1, b.rank >= 1 else { throw context.failure("operands must have rank >= 1, got \(a.signature) and \(b.signature)") }
        let aShape = a.rank == 1 ? [1] + a.shape : a.shape
        let bShape = b.rank == 1 ? b.shape + [1] : b.shape
        let (m, k) = (aShape[aShape.count - 2], aShape[aShape.count - 1])
        let (kB, n) = (bShape[bShape.count - 2], bShape[bShape.count - 1])
        guard k == kB else { throw context.failure("inner dimensions differ: \(a.signature) × \(b.signature)") }
        guard let batch = Broadcasting.shape([Array(aShape.dropLast(2)), Array(bShape.dropLast(2))]) else {
            throw context.failure("batch dimensions of \(a.signature) and \(b.signature) cannot be broadcast")
        }
        let aBatches = Broadcasting.sourceIndices(from: Array(aShape.dropLast(2)), to: batch)
        let bBatches = Broadcasting.sourceIndices(from: Array(bShape.dropLast(2)), to: batch)
        let aValues = a.floats, bValues = b.floats
        var output = [Float](repeating: 0, count: aBatches.count * m * n)
        for (batchIndex, (aBatch, bBatch)) in zip(aBatches, bBatches).enumerated() {
            let aBase = aBatch * m * k, bBase = bBatch * k * n, cBase = batchIndex * m * n
            for row in 0..<m {
                for column in 0..<n {
                    var sum: Float = 0
                    for inner in 0..<k { sum += aValues[aBase + row * k + inner] * bValues[bBase + inner * n + column] }
                    output[cBase + row * n + column] = sum
                }
            }
        }
        var shape = batch + [m, n]
        if b.rank == 1 { shape.removeLast() }
        if a.rank == 1 { shape.remove(at: shape.count - (b.rank == 1 ? 1 : 2)) }
        if a.dtype.isInteger {
            return [try Tensor(ints: output.map { Tensor.truncatingToInt64($0) }, shape: shape, dtype: a.dtype)]
        }
        return [try Tensor(floats: output, shape: shape, dtype: a.dtype)]
    }

    /// `Y = alpha · op(A) · op(B) + beta · C`, where op transposes when `transA`/`transB` is set
    /// and C broadcasts to `[M, N]`.
    static func gemm(_ context: OpContext) throws -> [Tensor] {
        let a = try context.input(0)
        let b = try context.input(1)
        guard a.rank == 2, b.rank == 2 else { throw context.failure("A and B must be matrices, got \(a.signature) and \(b.signature)") }
        let transA = try context.node.int("transA", default: 0) == 1
        let transB = try context.node.int("transB", default: 0) == 1
        let alpha = try context.node.float("alpha", default: 1)
        let beta = try context.node.float("beta", default: 1)
        let (m, k) = transA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
        let (kB, n) = transB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
        guard k == kB else { throw context.failure("inner dimensions differ: \(a.signature) × \(b.signature) (transA=\(transA), transB=\(transB))") }
        let aValues = a.floats, bValues = b.floats
        var bias = [Float](repeating: 0, count: m * n)
        if let c = context.optionalInput(2) {
            guard Broadcasting.shape([c.shape, [m, n]]) == [m, n] else {
                throw context.failure("C \(c.signature) does not broadcast to [\(m), \(n)]")
            }
            let values = c.floats
            bias = Broadcasting.sourceIndices(from: c.shape, to: [m, n]).map { values[$0] }
        }
        var output = [Float](repeating: 0, count: m * n)
        for row in 0..<m {
            for column in 0..<n {
                var sum: Float = 0
                for inner in 0..<k {
                    let left = transA ? aValues[inner * m + row] : aValues[row * k + inner]
                    let right = transB ? bValues[column * k + inner] : bValues[inner * n + column]
                    sum += left * right
                }
                output[row * n + column] = alpha * sum + beta * bias[row * n + column]
            }
        }
        return [try Tensor(floats: output, shape: [m, n], dtype: a.dtype)]
    }
}
