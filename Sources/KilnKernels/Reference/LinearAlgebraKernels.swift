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
            multiply(
                aValues, offset: aBatch * m * k, bValues, offset: bBatch * k * n, into: &output,
                offset: batchIndex * m * n, m: m, k: k, n: n)
        }
        var shape = batch + [m, n]
        if b.rank == 1 { shape.removeLast() }
        if a.rank == 1 { shape.remove(at: shape.count - (b.rank == 1 ? 1 : 2)) }
        if a.dtype.isInteger {
            return [try Tensor(ints: output.map { Tensor.truncatingToInt64($0) }, shape: shape, dtype: a.dtype)]
        }
        return [try Tensor(floats: output, shape: shape, dtype: a.dtype)]
    }

    /// The `[columns, rows]` transpose of a row-major `[rows, columns]` matrix.
    static func transposed(_ values: [Float], rows: Int, columns: Int) -> [Float] {
        (0..<(rows * columns)).map { index in values[(index % rows) * columns + index / rows] }
    }

    /// `C[m, n] = Σ_k A[m, k] B[k, n]` for one pair of row-major matrices. The loops run in
    /// m-k-n order so the innermost one walks rows of B and C contiguously; the sum for each
    /// output element still adds the k products in order, as the textbook m-n-k loop would.
    static func multiply(
        _ a: [Float], offset aOffset: Int, _ b: [Float], offset bOffset: Int, into c: inout [Float], offset cOffset: Int,
        m: Int, k: Int, n: Int
    ) {
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    for row in 0..<m {
                        let cRow = cOffset + row * n
                        for inner in 0..<k {
                            let left = a[aOffset + row * k + inner]
                            let bRow = bOffset + inner * n
                            for column in 0..<n { c[cRow + column] += left * b[bRow + column] }
                        }
                    }
                }
            }
        }
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
        let aValues = transA ? transposed(a.floats, rows: k, columns: m) : a.floats
        let bValues = transB ? transposed(b.floats, rows: n, columns: k) : b.floats
        var bias = [Float](repeating: 0, count: m * n)
        if let c = context.optionalInput(2) {
            guard Broadcasting.shape([c.shape, [m, n]]) == [m, n] else {
                throw context.failure("C \(c.signature) does not broadcast to [\(m), \(n)]")
            }
            let values = c.floats
            bias = Broadcasting.sourceIndices(from: c.shape, to: [m, n]).map { values[$0] }
        }
        var product = [Float](repeating: 0, count: m * n)
        multiply(aValues, offset: 0, bValues, offset: 0, into: &product, offset: 0, m: m, k: k, n: n)
        let output = zip(product, bias).map { alpha * $0 + beta * $1 }
        return [try Tensor(floats: output, shape: [m, n], dtype: a.dtype)]
    }
}
