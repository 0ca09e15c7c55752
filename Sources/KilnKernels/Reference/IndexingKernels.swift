import KilnCore

/// Gather-family operators (embedding lookups, picking the first token, ...).
enum IndexingKernels {
    static func register(into table: inout [String: ReferenceKernel]) {
        table["Gather"] = gather
        table["GatherElements"] = gatherElements
        table["GatherND"] = gatherND
    }

    /// Normalizes a possibly negative index against `size`, or throws a clear error.
    private static func index(_ value: Int64, size: Int, context: OpContext) throws -> Int {
        let index = value < 0 ? Int(value) + size : Int(value)
        guard index >= 0 && index < size else {
            throw context.failure("index \(value) is out of range for a dimension of size \(size)")
        }
        return index
    }

    /// `out[i.., j.., k..] = data[i.., indices[j..], k..]` along `axis`.
    static func gather(_ context: OpContext) throws -> [Tensor] {
        let data = try context.input(0)
        let indices = try context.input(1)
        let axis = try context.axis(try context.node.int("axis", default: 0), rank: data.rank)
        let outer = data.shape[..<axis].reduce(1, *)
        let size = data.shape[axis]
        let inner = data.shape[(axis + 1)...].reduce(1, *)
        let picks = try indices.ints.map { try index($0, size: size, context: context) }
        var sources: [Int] = []
        sources.reserveCapacity(outer * picks.count * inner)
        for o in 0..<outer {
            for pick in picks {
                let base = (o * size + pick) * inner
                sources.append(contentsOf: base..<(base + inner))
            }
        }
        let shape = Array(data.shape[..<axis]) + indices.shape + Array(data.shape[(axis + 1)...])
        return [try data.picking(sources, shape: shape)]
    }

    private static func gatherElements(_ context: OpContext) throws -> [Tensor] {
        let data = try context.input(0)
        let indices = try context.input(1)
        let axis = try context.axis(try context.node.int("axis", default: 0), rank: data.rank)
        guard indices.rank == data.rank else { throw context.failure("indices rank must equal data rank") }
        let dataStrides = data.strides
        let indexStrides = indices.strides
        let values = indices.ints
        let sources = try (0..<indices.count).map { linear -> Int in
            var source = 0
            for dimension in 0..<data.rank {
                let coordinate = linear / indexStrides[dimension] % indices.shape[dimension]
                let position = dimension == axis ? try index(values[linear], size: data.shape[axis], context: context) : coordinate
                source += position * dataStrides[dimension]
            }
            return source
        }
        return [try data.picking(sources, shape: indices.shape)]
    }

    /// GatherND with `batch_dims`: the last axis of `indices` addresses the leading axes of
    /// `data` (after the batch axes); the rest of `data` is copied whole.
    private static func gatherND(_ context: OpContext) throws -> [Tensor] {
        let data = try context.input(0)
        let indices = try context.input(1)
        let batchDims = Int(try context.node.int("batch_dims", default: 0))
        guard let depth = indices.shape.last, batchDims + depth <= data.rank, batchDims < indices.rank else {
            throw context.failure("indices \(indices.signature) do not fit data \(data.signature) with batch_dims \(batchDims)")
        }
        let batchShape = Array(data.shape[..<batchDims])
        guard Array(indices.shape[..<batchDims]) == batchShape else { throw context.failure("batch dimensions of data and indices differ") }
        let batchCount = batchShape.reduce(1, *)
        let sliceShape = Array(data.shape[(batchDims + depth)...])
        let sliceSize = sliceShape.reduce(1, *)
        let perBatchData = data.count / Swift.max(batchCount, 1)
        let lookups = indices.count / Swift.max(depth, 1) / Swift.max(batchCount, 1)
        let addressed = Array(data.shape[batchDims..<(batchDims + depth)])
        let addressedStrides = Tensor.strides(of: addressed).map { $0 * sliceSize }
        let values = indices.ints
        var sources: [Int] = []
        for batch in 0..<batchCount {
            for lookup in 0..<lookups {
                let tupleStart = (batch * lookups + lookup) * depth
                var base = batch * perBatchData
                for d in 0..<depth {
                    base += try index(values[tupleStart + d], size: addressed[d], context: context) * addressedStrides[d]
                }
                sources.append(contentsOf: base..<(base + sliceSize))
            }
        }
        let shape = Array(indices.shape.dropLast()) + sliceShape
        return [try data.picking(sources, shape: shape)]
    }
}
