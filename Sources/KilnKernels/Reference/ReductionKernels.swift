import KilnCore

/// Reductions over axes, ArgMax and CumSum.
enum ReductionKernels {
    static func register(into table: inout [String: ReferenceKernel]) {
        table["ReduceMean"] = { context in
            try reduce(context, axesInputSince: 18, initial: 0, combine: +, finish: { sum, count in sum / Float(count) })
        }
        table["ReduceSum"] = { context in
            try reduce(context, axesInputSince: 13, initial: 0, combine: +, finish: { sum, _ in sum })
        }
        table["ReduceMax"] = { context in
            try reduce(context, axesInputSince: 18, initial: -.infinity, combine: { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }, finish: { value, _ in value })
        }
        table["ArgMax"] = argMax
        table["CumSum"] = cumSum
    }

    /// The axes a Reduce* node reduces over: an attribute before `axesInputSince`, input 1 after.
    /// Empty means all axes, unless `noop_with_empty_axes` is set (then none).
    private static func reductionAxes(_ context: OpContext, rank: Int, axesInputSince: Int) throws -> [Int]? {
        let declared: [Int64]?
        if context.opset >= axesInputSince {
            declared = context.optionalInput(1)?.ints
        } else {
            declared = try context.node.ints("axes")
        }
        if let declared, !declared.isEmpty {
            return Array(Set(try declared.map { try context.axis($0, rank: rank) })).sorted()
        }
        return try context.node.int("noop_with_empty_axes", default: 0) == 1 ? nil : Array(0..<rank)
    }

    private static func reduce(
        _ context: OpContext, axesInputSince: Int, initial: Float, combine: (Float, Float) -> Float,
        finish: (Float, Int) -> Float
    ) throws -> [Tensor] {
        let input = try context.input(0)
        guard let axes = try reductionAxes(context, rank: input.rank, axesInputSince: axesInputSince) else {
            return [input]
        }
        let keepDims = try context.node.int("keepdims", default: 1) == 1
        let keptShape = input.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        let targets = outputIndices(shape: input.shape, keptShape: keptShape)
        var accumulators = [Float](repeating: initial, count: Tensor.elementCount(of: keptShape))
        for (index, value) in input.floats.enumerated() {
            accumulators[targets[index]] = combine(accumulators[targets[index]], value)
        }
        let reducedCount = axes.reduce(1) { $0 * input.shape[$1] }
        let outputShape = keepDims ? keptShape : input.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        let result = accumulators.map { finish($0, reducedCount) }
        if input.dtype.isInteger {
            return [try Tensor(ints: result.map { Tensor.truncatingToInt64($0) }, shape: outputShape, dtype: input.dtype)]
        }
        return [try Tensor(floats: result, shape: outputShape, dtype: input.dtype)]
    }

    /// For each element of `shape`, its linear index in `keptShape` (the shape with reduced axes set to 1).
    static func outputIndices(shape: [Int], keptShape: [Int]) -> [Int] {
        let keptStrides = Tensor.strides(of: keptShape)
        let strides = Tensor.strides(of: shape)
        return (0..<Tensor.elementCount(of: shape)).map { linear in
            var target = 0
            for axis in 0..<shape.count where keptShape[axis] != 1 {
                target += (linear / strides[axis] % shape[axis]) * keptStrides[axis]
            }
            return target
        }
    }

    private static func argMax(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let axis = try context.axis(try context.node.int("axis", default: 0), rank: input.rank)
        let keepDims = try context.node.int("keepdims", default: 1) == 1
        let selectLast = try context.node.int("select_last_index", default: 0) == 1
        let values = input.floats
        let outer = input.shape[..<axis].reduce(1, *)
        let length = input.shape[axis]
        let inner = input.shape[(axis + 1)...].reduce(1, *)
        var result: [Int64] = []
        result.reserveCapacity(outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var best = 0
                for k in 1..<Swift.max(length, 1) {
                    let candidate = values[(o * length + k) * inner + i]
                    let current = values[(o * length + best) * inner + i]
                    if candidate > current || (selectLast && candidate == current) { best = k }
                }
                result.append(Int64(best))
            }
        }
        var shape = input.shape
        if keepDims { shape[axis] = 1 } else { shape.remove(at: axis) }
        return [try Tensor(ints: result, shape: shape)]
    }

    private static func cumSum(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        guard let axisValue = try context.input(1).ints.first else { throw context.failure("axis input is empty") }
        let axis = try context.axis(axisValue, rank: input.rank)
        let exclusive = try context.node.int("exclusive", default: 0) == 1
        let reverse = try context.node.int("reverse", default: 0) == 1
        let outer = input.shape[..<axis].reduce(1, *)
        let length = input.shape[axis]
        let inner = input.shape[(axis + 1)...].reduce(1, *)
        let order = reverse ? Array((0..<length).reversed()) : Array(0..<length)
        func scan<T: AdditiveArithmetic>(_ values: [T]) -> [T] {
            var output = values
            for o in 0..<outer {
                for i in 0..<inner {
                    var running = T.zero
                    for k in order {
                        let index = (o * length + k) * inner + i
                        if exclusive {
                            output[index] = running
                            running += values[index]
                        } else {
                            running += values[index]
                            output[index] = running
                        }
                    }
                }
            }
            return output
        }
        switch input.storage {
        case .float(let values): return [try Tensor(floats: scan(values), shape: input.shape, dtype: input.dtype)]
        case .int(let values): return [try Tensor(ints: scan(values), shape: input.shape, dtype: input.dtype)]
        case .bool: throw context.failure("does not accept bool input")
        }
    }
}
