import KilnCore

/// Operators that move or reinterpret data without arithmetic.
enum ShapeKernels {
    static func register(into table: inout [String: ReferenceKernel]) {
        table["Reshape"] = reshape
        table["Flatten"] = flatten
        table["Squeeze"] = squeeze
        table["Unsqueeze"] = unsqueeze
        table["Transpose"] = transpose
        table["Concat"] = concat
        table["Slice"] = slice
        table["Split"] = split
        table["Shape"] = shape
        table["Size"] = { [Tensor.scalar(Int64(try $0.input(0).count))] }
        table["Expand"] = expand
        table["Tile"] = tile
        table["Pad"] = PadKernel.pad
    }

    /// Reshape: `0` copies the input's dimension (unless `allowzero`), `-1` is inferred.
    static func reshape(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let requested = try context.input(1).ints
        let allowZero = try context.node.int("allowzero", default: 0) == 1
        var shape = try requested.enumerated().map { axis, size -> Int in
            if size == 0 && !allowZero {
                guard axis < input.rank else { throw context.failure("shape \(requested) copies axis \(axis) of \(input.signature), which does not exist") }
                return input.shape[axis]
            }
            return Int(size)
        }
        if let inferred = shape.firstIndex(of: -1) {
            let known = shape.enumerated().filter { $0.offset != inferred }.reduce(1) { $0 * $1.element }
            guard known > 0, input.count % known == 0 else {
                throw context.failure("cannot reshape \(input.signature) to \(requested)")
            }
            shape[inferred] = input.count / known
        }
        guard shape.allSatisfy({ $0 >= 0 }), Tensor.elementCount(of: shape) == input.count else {
            throw context.failure("cannot reshape \(input.signature) to \(requested)")
        }
        return [try input.reshaped(shape)]
    }

    private static func flatten(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        var axis = Int(try context.node.int("axis", default: 1))
        if axis < 0 { axis += input.rank }
        guard axis >= 0 && axis <= input.rank else { throw context.failure("axis \(axis) out of range for \(input.signature)") }
        let outer = input.shape[..<axis].reduce(1, *)
        return [try input.reshaped([outer, input.count / Swift.max(outer, 1)])]
    }

    /// Axes from input 1 (opset >= 13) or the `axes` attribute (earlier).
    private static func axesOperand(_ context: OpContext, inputSince: Int) throws -> [Int64]? {
        context.opset >= inputSince ? context.optionalInput(1)?.ints : try context.node.ints("axes")
    }

    private static func squeeze(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let axes: [Int]
        if let declared = try axesOperand(context, inputSince: 13) {
            axes = try declared.map { try context.axis($0, rank: input.rank) }
            for axis in axes where input.shape[axis] != 1 {
                throw context.failure("cannot squeeze axis \(axis) of \(input.signature): its size is not 1")
            }
        } else {
            axes = input.shape.indices.filter { input.shape[$0] == 1 }
        }
        return [try input.reshaped(input.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))]
    }

    private static func unsqueeze(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        guard let declared = try axesOperand(context, inputSince: 13) else { throw context.failure("needs axes") }
        let outputRank = input.rank + declared.count
        let axes = Set(try declared.map { try context.axis($0, rank: outputRank) })
        guard axes.count == declared.count else { throw context.failure("axes \(declared) repeat an axis") }
        var remaining = input.shape.makeIterator()
        let shape = (0..<outputRank).map { axes.contains($0) ? 1 : remaining.next()! }
        return [try input.reshaped(shape)]
    }

    static func transpose(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let permutation = try context.node.ints("perm")?.map(Int.init) ?? Array((0..<input.rank).reversed())
        guard permutation.sorted() == Array(0..<input.rank) else {
            throw context.failure("perm \(permutation) is not a permutation of the axes of \(input.signature)")
        }
        let shape = permutation.map { input.shape[$0] }
        let inputStrides = input.strides
        let outputStrides = Tensor.strides(of: shape)
        let indices = (0..<input.count).map { linear in
            permutation.enumerated().reduce(0) { sum, entry in
                sum + (linear / outputStrides[entry.offset] % shape[entry.offset]) * inputStrides[entry.element]
            }
        }
        return [try input.picking(indices, shape: shape)]
    }

    private static func concat(_ context: OpContext) throws -> [Tensor] {
        let tensors = try context.inputs.indices.map { try context.input($0) }
        guard let first = tensors.first else { throw context.failure("needs at least one input") }
        let axis = try context.axis(try context.node.int("axis", default: 0), rank: first.rank)
        for tensor in tensors {
            guard tensor.rank == first.rank, tensor.dtype == first.dtype,
                tensor.shape.enumerated().allSatisfy({ $0.offset == axis || $0.element == first.shape[$0.offset] })
            else { throw context.failure("inputs \(tensors.map(\.signature)) cannot be concatenated on axis \(axis)") }
        }
        var shape = first.shape
        shape[axis] = tensors.reduce(0) { $0 + $1.shape[axis] }
        let outer = first.shape[..<axis].reduce(1, *)
        // Interleave each input's contiguous block per outer index.
        var pieces: [Tensor] = []
        for o in 0..<outer {
            for tensor in tensors {
                let block = tensor.count / Swift.max(outer, 1)
                pieces.append(try tensor.picking(Array((o * block)..<((o + 1) * block)), shape: [block]))
            }
        }
        return [try Tensor.concatenating(pieces, shape: shape)]
    }

    /// Slice (opset >= 10 reads starts/ends/axes/steps from inputs; earlier, from attributes).
    private static func slice(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let starts: [Int64], ends: [Int64], axesValues: [Int64]?, steps: [Int64]?
        if context.opset >= 10 {
            starts = try context.input(1).ints
            ends = try context.input(2).ints
            axesValues = context.optionalInput(3)?.ints
            steps = context.optionalInput(4)?.ints
        } else {
            starts = try context.node.ints("starts") ?? []
            ends = try context.node.ints("ends") ?? []
            axesValues = try context.node.ints("axes")
            steps = nil
        }
        let axes = try (axesValues ?? (0..<Int64(starts.count)).map { $0 }).map { try context.axis($0, rank: input.rank) }
        guard starts.count == ends.count, axes.count == starts.count, steps.map({ $0.count == starts.count }) ?? true else {
            throw context.failure("starts, ends, axes and steps must have the same length")
        }
        var perAxis = input.shape.map { Array(0..<$0) }
        for (position, axis) in axes.enumerated() {
            let step = steps?[position] ?? 1
            guard step != 0 else { throw context.failure("step cannot be 0") }
            perAxis[axis] = sliceIndices(start: starts[position], end: ends[position], step: step, size: input.shape[axis])
        }
        let indices = linearIndices(selecting: perAxis, in: input.shape)
        return [try input.picking(indices, shape: perAxis.map(\.count))]
    }

    /// The indices `start, start+step, ...` before `end`, after ONNX's negative-index and clamping rules.
    static func sliceIndices(start: Int64, end: Int64, step: Int64, size: Int) -> [Int] {
        let dim = Int64(size)
        var first = start < 0 ? start + dim : start
        var last = end < 0 ? end + dim : end
        if step > 0 {
            first = Swift.min(Swift.max(first, 0), dim)
            last = Swift.min(Swift.max(last, 0), dim)
            return Array(stride(from: Int(first), to: Int(last), by: Int(step)))
        }
        first = Swift.min(Swift.max(first, 0), dim - 1)
        last = Swift.min(Swift.max(last, -1), dim - 1)
        return Array(stride(from: Int(first), to: Int(last), by: Int(step)))
    }

    private static func split(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let axis = try context.axis(try context.node.int("axis", default: 0), rank: input.rank)
        let size = input.shape[axis]
        let outputCount = context.node.outputs.count
        var sizes: [Int]
        if let declared = context.opset >= 13 ? context.optionalInput(1)?.ints : try context.node.ints("split") {
            sizes = declared.map(Int.init)
        } else {
            // Equal parts; with opset 18's num_outputs the last part may be smaller.
            let parts = Int(try context.node.int("num_outputs", default: Int64(outputCount)))
            let chunk = (size + parts - 1) / Swift.max(parts, 1)
            sizes = (0..<parts).map { Swift.max(0, Swift.min(chunk, size - $0 * chunk)) }
        }
        guard sizes.reduce(0, +) == size, sizes.count == outputCount else {
            throw context.failure("split sizes \(sizes) do not cover axis \(axis) (size \(size)) with \(outputCount) outputs")
        }
        var offset = 0
        return try sizes.map { length in
            var perAxis = input.shape.map { Array(0..<$0) }
            perAxis[axis] = Array(offset..<(offset + length))
            offset += length
            return try input.picking(linearIndices(selecting: perAxis, in: input.shape), shape: perAxis.map(\.count))
        }
    }

    private static func shape(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let rank = Int64(input.rank)
        func clamp(_ value: Int64) -> Int { Int(Swift.min(Swift.max(value < 0 ? value + rank : value, 0), rank)) }
        let start = clamp(try context.node.int("start", default: 0))
        let end = clamp(try context.node.int("end", default: rank))
        let dims = start < end ? input.shape[start..<end].map { Int64($0) } : []
        return [try Tensor(ints: dims, shape: [dims.count])]
    }

    private static func expand(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let requested = try context.input(1).ints.map(Int.init)
        guard let shape = Broadcasting.shape([input.shape, requested]) else {
            throw context.failure("cannot expand \(input.signature) to \(requested)")
        }
        return [try input.picking(Broadcasting.sourceIndices(from: input.shape, to: shape), shape: shape)]
    }

    private static func tile(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let repeats = try context.input(1).ints.map(Int.init)
        guard repeats.count == input.rank, repeats.allSatisfy({ $0 >= 0 }) else {
            throw context.failure("repeats \(repeats) must have one non-negative entry per axis of \(input.signature)")
        }
        let shape = zip(input.shape, repeats).map(*)
        let perAxis = zip(input.shape, repeats).map { size, count in (0..<(size * count)).map { $0 % size } }
        return [try input.picking(linearIndices(selecting: perAxis, in: input.shape), shape: shape)]
    }
}

/// `Pad` in constant, edge and reflect modes (pads from the attribute before opset 11, from
/// input 1 after; negative pads crop).
enum PadKernel {
    static func pad(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let mode = try context.node.string("mode", default: "constant")
        var pads: [Int]
        let fill: Tensor?
        if context.opset >= 11 {
            pads = try context.input(1).ints.map(Int.init)
            fill = context.optionalInput(2)
        } else {
            pads = (try context.node.ints("pads") ?? []).map(Int.init)
            fill = Tensor.scalar(try context.node.float("value", default: 0))
        }
        let axes = try context.optionalInput(3).map { try $0.ints.map { try context.axis($0, rank: input.rank) } } ?? Array(0..<input.rank)
        guard pads.count == 2 * axes.count else { throw context.failure("pads has \(pads.count) entries; expected \(2 * axes.count)") }
        var before = [Int](repeating: 0, count: input.rank), after = before
        for (position, axis) in axes.enumerated() {
            before[axis] = pads[position]
            after[axis] = pads[position + axes.count]
        }
        let shape = (0..<input.rank).map { input.shape[$0] + before[$0] + after[$0] }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw context.failure("pads \(pads) crop more than \(input.signature) holds") }
        // Index input.count stands for "the fill value", appended below.
        let outOfRange = input.count
        let strides = input.strides
        let outputStrides = Tensor.strides(of: shape)
        let indices = try (0..<Tensor.elementCount(of: shape)).map { linear -> Int in
            var source = 0
            for axis in 0..<input.rank {
                let size = input.shape[axis]
                var coordinate = linear / outputStrides[axis] % shape[axis] - before[axis]
                if coordinate < 0 || coordinate >= size {
                    switch mode {
                    case "constant": return outOfRange
                    case "edge": coordinate = Swift.min(Swift.max(coordinate, 0), size - 1)
                    case "reflect":
                        guard size > 1 else { coordinate = 0; break }
                        let period = 2 * (size - 1)
                        coordinate = ((coordinate % period) + period) % period
                        if coordinate >= size { coordinate = period - coordinate }
                    default: throw context.failure("unknown mode '\(mode)'")
                    }
                }
                source += coordinate * strides[axis]
            }
            return source
        }
        let fillValue = try fill.map { try UnaryKernels.convert($0, to: input.dtype) } ?? UnaryKernels.convert(.scalar(Float(0)), to: input.dtype)
        let extended = try Tensor.concatenating([try input.reshaped([input.count]), try fillValue.reshaped([1])], shape: [input.count + 1])
        return [try extended.picking(indices, shape: shape)]
    }
}
