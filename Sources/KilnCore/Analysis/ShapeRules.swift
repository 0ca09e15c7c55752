/// Per-operator shape, dtype and contents rules used by ``ShapeInference`` when a node
/// cannot simply be evaluated. Anything a rule does not know becomes an unknown dimension
/// (or an unknown rank), never a guess that could be wrong in a way a pass would trust.
struct ShapeRules {
    let node: Node
    let inputs: [ValueType?]
    let opset: Int
    var inference: ShapeInference

    private func input(_ index: Int) -> ValueType? { index < inputs.count ? inputs[index] : nil }
    private func shape(_ index: Int) -> SymbolicShape? { input(index)?.shape }
    private var firstDType: DType? { input(0)?.dtype }
    private mutating func unknown() -> SymbolicDim { inference.unknownDim() }
    private mutating func unknownShape(rank: Int) -> SymbolicShape { (0..<rank).map { _ in unknown() } }

    private func intAttribute(_ name: String, _ defaultValue: Int) -> Int {
        Int((try? node.int(name, default: Int64(defaultValue))) ?? Int64(defaultValue))
    }
    private func intsAttribute(_ name: String) -> [Int]? { (try? node.ints(name))??.map(Int.init) }

    /// Concrete integers from an input's contents (or nil).
    private func concrete(_ index: Int) -> [Int]? { input(index)?.concreteContents }

    private func normalize(_ axis: Int, rank: Int) -> Int? {
        let value = axis < 0 ? axis + rank : axis
        return value >= 0 && value < max(rank, 1) ? value : nil
    }

    mutating func outputs() -> [ValueType] {
        let count = node.outputs.count
        let results = compute()
        if results.count >= count { return results }
        return results + (results.count..<count).map { _ in ValueType(dtype: nil, shape: nil) }
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    private mutating func compute() -> [ValueType] {
        let isKiln = node.domain == "kiln"
        switch (isKiln, node.opType) {
        case (true, "LayerNorm"), (true, "Gelu"):
            return [ValueType(dtype: firstDType, shape: shape(0))]
        case (true, "SkipLayerNorm"):
            let result = broadcast([shape(0), shape(1)])
            return [ValueType(dtype: firstDType, shape: result), ValueType(dtype: firstDType, shape: result)]
        case (true, "FusedMatMul"):
            guard let a = shape(0), let w = shape(1), let n = w.last else { return [ValueType(dtype: firstDType, shape: nil)] }
            return [ValueType(dtype: firstDType, shape: a.dropLast() + [n])]
        case (true, "Attention"):
            return [ValueType(dtype: firstDType, shape: shape(0))]
        case (true, _):
            return [ValueType(dtype: firstDType, shape: nil)]
        default:
            break
        }
        switch node.opType {
        case "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min":
            return [arithmetic()]
        case "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor":
            return [comparison()]
        case "Where":
            return [whereRule()]
        case "Not", "IsNaN", "IsInf":
            return [ValueType(dtype: .bool, shape: shape(0))]
        case "Identity", "Sqrt", "Exp", "Log", "Erf", "Floor", "Ceil", "Reciprocal", "Abs", "Neg", "Relu", "Sigmoid",
            "Tanh", "Gelu", "Softmax", "LogSoftmax", "CumSum":
            var result = ValueType(dtype: firstDType, shape: shape(0))
            if node.opType == "Identity" || node.opType == "Neg" {
                result.contents = node.opType == "Identity" ? input(0)?.contents : nil
            }
            return [result]
        case "Dropout":
            return [ValueType(dtype: firstDType, shape: shape(0), contents: input(0)?.contents), ValueType(dtype: .bool, shape: shape(0))]
        case "Cast":
            return [cast()]
        case "LayerNormalization":
            return layerNormalization()
        case "MatMul":
            return [matMul()]
        case "Gemm":
            return [gemm()]
        case "Gather":
            return [gather()]
        case "GatherElements":
            return [ValueType(dtype: firstDType, shape: shape(1))]
        case "GatherND":
            return [gatherND()]
        case "Reshape":
            return [reshape()]
        case "Flatten":
            return [flatten()]
        case "Squeeze":
            return [squeeze()]
        case "Unsqueeze":
            return [unsqueeze()]
        case "Transpose":
            guard let input = shape(0) else { return [ValueType(dtype: firstDType, shape: nil)] }
            let perm = intsAttribute("perm") ?? Array((0..<input.count).reversed())
            guard perm.sorted() == Array(0..<input.count) else { return [ValueType(dtype: firstDType, shape: nil)] }
            return [ValueType(dtype: firstDType, shape: perm.map { input[$0] })]
        case "Concat":
            return [concat()]
        case "Slice":
            return [slice()]
        case "Split":
            return split()
        case "Shape":
            return [shapeOp()]
        case "Size":
            let count = shape(0)?.elementCount
            return [ValueType(dtype: .int64, shape: [], contents: count.map { [$0] })]
        case "Expand":
            return [expand()]
        case "ConstantOfShape":
            return [constantOfShape()]
        case "Constant":
            return [ValueType(dtype: (try? node.tensor("value"))??.dtype, shape: nil)]
        case "Range":
            return [range()]
        case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2", "ReduceSumSquare":
            return [reduce()]
        case "ArgMax", "ArgMin":
            return [argMax()]
        case "Tile":
            guard let input = shape(0), let repeats = concrete(1), repeats.count == input.count else {
                return [ValueType(dtype: firstDType, shape: shape(0).map { unknownShape(rank: $0.count) })]
            }
            return [ValueType(dtype: firstDType, shape: zip(input, repeats).map { $0 * SymbolicDim($1) })]
        default:
            return [ValueType(dtype: firstDType, shape: nil)]
        }
    }

    // MARK: - Elementwise

    /// NumPy broadcasting of symbolic shapes: equal dims stay, a 1 takes the other side, an
    /// unknown takes the known side.
    private mutating func broadcast(_ shapes: [SymbolicShape?]) -> SymbolicShape? {
        var known: [SymbolicShape] = []
        for shape in shapes {
            guard let shape else { return nil }
            known.append(shape)
        }
        let rank = known.map(\.count).max() ?? 0
        var result = [SymbolicDim](repeating: 1, count: rank)
        for shape in known {
            let offset = rank - shape.count
            for (axis, dim) in shape.enumerated() {
                let current = result[offset + axis]
                if current == dim || dim == 1 { continue }
                if current == 1 || current.isUnknown { result[offset + axis] = dim }
            }
        }
        return result
    }

    /// Elementwise contents over broadcast 1-D/scalar operands.
    private func elementwiseContents(_ combine: (SymbolicDim, SymbolicDim) -> SymbolicDim?) -> [SymbolicDim]? {
        guard let lhs = input(0)?.contents, let rhs = input(1)?.contents else { return nil }
        let count = max(lhs.count, rhs.count)
        guard lhs.count == count || lhs.count == 1, rhs.count == count || rhs.count == 1 else { return nil }
        var result: [SymbolicDim] = []
        for index in 0..<count {
            guard let value = combine(lhs[lhs.count == 1 ? 0 : index], rhs[rhs.count == 1 ? 0 : index]) else { return nil }
            result.append(value)
        }
        return result
    }

    private mutating func arithmetic() -> ValueType {
        var result = ValueType(dtype: firstDType, shape: broadcast([shape(0), shape(1)] + inputs.dropFirst(2).map { $0?.shape }))
        guard firstDType?.isInteger == true, inputs.count == 2 else { return result }
        switch node.opType {
        case "Mul": result.contents = elementwiseContents { $0 * $1 }
        case "Div": result.contents = elementwiseContents { $0.dividedExactly(by: $1) }
        case "Add": result.contents = elementwiseContents { $0.adding($1) }
        case "Sub": result.contents = elementwiseContents { $0.adding(SymbolicDim(-1) * $1) }
        default: break
        }
        return result
    }

    private mutating func comparison() -> ValueType {
        var result = ValueType(dtype: .bool, shape: broadcast([shape(0), shape(1)]))
        if node.opType == "Equal" {
            // Sizes are never negative, so a symbolic size never equals a negative number.
            result.contents = elementwiseContents { lhs, rhs in
                if lhs == rhs { return 1 }
                if let a = lhs.constant, let b = rhs.constant { return SymbolicDim(a == b ? 1 : 0) }
                if (lhs.constant ?? 0) < 0 || (rhs.constant ?? 0) < 0 { return 0 }
                return nil
            }
        }
        return result
    }

    private mutating func whereRule() -> ValueType {
        var result = ValueType(dtype: input(1)?.dtype ?? input(2)?.dtype, shape: broadcast([shape(0), shape(1), shape(2)]))
        if let condition = concrete(0), let onTrue = input(1)?.contents, let onFalse = input(2)?.contents {
            let count = max(condition.count, onTrue.count, onFalse.count)
            if [condition.count, onTrue.count, onFalse.count].allSatisfy({ $0 == count || $0 == 1 }) {
                result.contents = (0..<count).map { index in
                    let pick = condition[condition.count == 1 ? 0 : index] != 0
                    let source = pick ? onTrue : onFalse
                    return source[source.count == 1 ? 0 : index]
                }
            }
        }
        return result
    }

    private func cast() -> ValueType {
        let code = Int64(intAttribute("to", 1))
        let target = Self.castTarget(code)
        var result = ValueType(dtype: target, shape: shape(0))
        if let target, target.isInteger, input(0)?.dtype?.isInteger == true || input(0)?.dtype == .bool {
            result.contents = input(0)?.contents
        }
        return result
    }

    /// ONNX `TensorProto.DataType` codes.
    static func castTarget(_ code: Int64) -> DType? {
        let table: [Int64: DType] = [
            1: .float32, 2: .uint8, 3: .int8, 4: .uint16, 5: .int16, 6: .int32, 7: .int64, 9: .bool, 10: .float16,
            11: .float64, 12: .uint32, 13: .uint64, 16: .bfloat16,
        ]
        return table[code]
    }

    private func layerNormalization() -> [ValueType] {
        guard let input = shape(0), let axis = normalize(intAttribute("axis", -1), rank: input.count) else {
            return [ValueType(dtype: firstDType, shape: shape(0))]
        }
        let statistics = Array(input[..<axis]) + [SymbolicDim](repeating: 1, count: input.count - axis)
        return [
            ValueType(dtype: firstDType, shape: input),
            ValueType(dtype: .float32, shape: statistics),
            ValueType(dtype: .float32, shape: statistics),
        ]
    }

    // MARK: - Linear algebra

    private mutating func matMul() -> ValueType {
        guard let a = shape(0), let b = shape(1), !a.isEmpty, !b.isEmpty else { return ValueType(dtype: firstDType, shape: nil) }
        let left = a.count == 1 ? [1] + a : a
        let right = b.count == 1 ? b + [1] : b
        guard let batch = broadcast([Array(left.dropLast(2)), Array(right.dropLast(2))]) else {
            return ValueType(dtype: firstDType, shape: nil)
        }
        var result = batch + [left[left.count - 2], right[right.count - 1]]
        if b.count == 1 { result.removeLast() }
        if a.count == 1 { result.remove(at: result.count - (b.count == 1 ? 1 : 2)) }
        return ValueType(dtype: firstDType, shape: result)
    }

    private func gemm() -> ValueType {
        guard let a = shape(0), let b = shape(1), a.count == 2, b.count == 2 else { return ValueType(dtype: firstDType, shape: nil) }
        let m = intAttribute("transA", 0) == 1 ? a[1] : a[0]
        let n = intAttribute("transB", 0) == 1 ? b[0] : b[1]
        return ValueType(dtype: firstDType, shape: [m, n])
    }

    // MARK: - Indexing

    private func gather() -> ValueType {
        guard let data = shape(0), let indices = shape(1), let axis = normalize(intAttribute("axis", 0), rank: data.count) else {
            return ValueType(dtype: firstDType, shape: nil)
        }
        var result = ValueType(dtype: firstDType, shape: Array(data[..<axis]) + indices + Array(data[(axis + 1)...]))
        if data.count == 1, let contents = input(0)?.contents, let picks = concrete(1) {
            let size = contents.count
            let normalized = picks.map { $0 < 0 ? $0 + size : $0 }
            if normalized.allSatisfy({ $0 >= 0 && $0 < size }) { result.contents = normalized.map { contents[$0] } }
        }
        return result
    }

    private func gatherND() -> ValueType {
        guard let data = shape(0), let indices = shape(1), let depth = indices.last?.constant else {
            return ValueType(dtype: firstDType, shape: nil)
        }
        let batchDims = intAttribute("batch_dims", 0)
        guard batchDims + depth <= data.count else { return ValueType(dtype: firstDType, shape: nil) }
        return ValueType(dtype: firstDType, shape: Array(indices.dropLast()) + Array(data[(batchDims + depth)...]))
    }

    // MARK: - Shape manipulation

    private mutating func reshape() -> ValueType {
        let allowZero = intAttribute("allowzero", 0) == 1
        guard let target = input(1)?.contents else {
            let rank = shape(1)?.first?.constant
            return ValueType(dtype: firstDType, shape: rank.map { unknownShape(rank: $0) })
        }
        let source = shape(0)
        var dims: [SymbolicDim] = []
        var inferred: Int?
        for (axis, value) in target.enumerated() {
            if value == 0 && !allowZero {
                guard let source, axis < source.count else { return ValueType(dtype: firstDType, shape: unknownShape(rank: target.count)) }
                dims.append(source[axis])
            } else if value == -1 {
                inferred = axis
                dims.append(1)
            } else {
                dims.append(value)
            }
        }
        if let inferred {
            if let total = source?.elementCount, let rest = total.dividedExactly(by: dims.elementCount), !total.isUnknown {
                dims[inferred] = rest
            } else {
                dims[inferred] = unknown()
            }
        }
        return ValueType(dtype: firstDType, shape: dims, contents: input(0)?.contents)
    }

    private mutating func flatten() -> ValueType {
        guard let input = shape(0) else { return ValueType(dtype: firstDType, shape: [unknown(), unknown()]) }
        var axis = intAttribute("axis", 1)
        if axis < 0 { axis += input.count }
        guard axis >= 0 && axis <= input.count else { return ValueType(dtype: firstDType, shape: nil) }
        return ValueType(dtype: firstDType, shape: [Array(input[..<axis]).elementCount, Array(input[axis...]).elementCount],
            contents: self.input(0)?.contents)
    }

    /// Axes from input 1 (opset >= 13) or the `axes` attribute.
    private func axesOperand() -> [Int]? {
        opset >= 13 ? concrete(1) : intsAttribute("axes")
    }

    private func squeeze() -> ValueType {
        guard let input = shape(0) else { return ValueType(dtype: firstDType, shape: nil) }
        let hasAxesInput = opset >= 13 ? (node.inputs.count > 1 && !node.inputs[1].isEmpty) : intsAttribute("axes") != nil
        let axes: Set<Int>
        if hasAxesInput {
            guard let declared = axesOperand() else { return ValueType(dtype: firstDType, shape: nil) }
            axes = Set(declared.compactMap { normalize($0, rank: input.count) })
        } else {
            axes = Set(input.indices.filter { input[$0] == 1 })
        }
        let dims = input.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        return ValueType(dtype: firstDType, shape: dims, contents: self.input(0)?.contents)
    }

    private func unsqueeze() -> ValueType {
        guard let input = shape(0), let declared = axesOperand() else { return ValueType(dtype: firstDType, shape: nil) }
        let rank = input.count + declared.count
        let axes = Set(declared.compactMap { normalize($0, rank: rank) })
        var remaining = input.makeIterator()
        let dims = (0..<rank).map { axes.contains($0) ? 1 : (remaining.next() ?? 1) }
        return ValueType(dtype: firstDType, shape: dims, contents: self.input(0)?.contents)
    }

    private mutating func concat() -> ValueType {
        let shapes = inputs.map { $0?.shape }
        guard let first = shapes.first ?? nil, let axis = normalize(intAttribute("axis", 0), rank: first.count),
            shapes.allSatisfy({ $0?.count == first.count })
        else { return ValueType(dtype: firstDType, shape: nil) }
        var dims = first
        var total: SymbolicDim? = SymbolicDim(0)
        for shape in shapes { total = total.flatMap { $0.adding(shape![axis]) } }
        dims[axis] = total ?? unknown()
        var contents: [SymbolicDim]? = []
        for input in inputs { contents = input?.contents.flatMap { part in contents.map { $0 + part } } }
        return ValueType(dtype: firstDType, shape: dims, contents: first.count == 1 ? contents : nil)
    }

    private mutating func slice() -> ValueType {
        guard let data = shape(0) else { return ValueType(dtype: firstDType, shape: nil) }
        let starts: [Int]?, ends: [Int]?, axesValues: [Int]?, steps: [Int]?
        if opset >= 10 {
            starts = concrete(1)
            ends = concrete(2)
            axesValues = node.inputs.count > 3 && !node.inputs[3].isEmpty ? concrete(3) : Array(0..<(starts?.count ?? 0))
            steps = node.inputs.count > 4 && !node.inputs[4].isEmpty ? concrete(4) : starts.map { [Int](repeating: 1, count: $0.count) }
        } else {
            starts = intsAttribute("starts")
            ends = intsAttribute("ends")
            axesValues = intsAttribute("axes") ?? Array(0..<(starts?.count ?? 0))
            steps = starts.map { [Int](repeating: 1, count: $0.count) }
        }
        guard let starts, let axesValues, let steps, starts.count == axesValues.count, steps.count == starts.count else {
            return ValueType(dtype: firstDType, shape: unknownShape(rank: data.count))
        }
        // A symbolic end (e.g. `seq` from Shape) on a longer constant axis: the slice is `end` long.
        let symbolicEnds = input(2)?.contents
        var dims = data
        var picked: [Int]? = nil
        for (position, rawAxis) in axesValues.enumerated() {
            guard let axis = normalize(rawAxis, rank: data.count) else { return ValueType(dtype: firstDType, shape: nil) }
            let step = steps[position]
            if let ends, let size = data[axis].constant {
                let indices = Self.sliceIndices(start: starts[position], end: ends[position], step: step, size: size)
                dims[axis] = SymbolicDim(indices.count)
                if data.count == 1 { picked = indices }
            } else if ends == nil, let end = symbolicEnds?[position], starts[position] == 0, step == 1 {
                dims[axis] = end
            } else if let ends {
                dims[axis] = Self.symbolicSliceLength(start: starts[position], end: ends[position], step: step, size: data[axis]) ?? unknown()
            } else {
                dims[axis] = unknown()
            }
        }
        var result = ValueType(dtype: firstDType, shape: dims)
        if let picked, let contents = input(0)?.contents, picked.allSatisfy({ $0 < contents.count }) {
            result.contents = picked.map { contents[$0] }
        }
        return result
    }

    /// The length of a slice of a symbolic axis, for the forms exporters write (`[0:]`,
    /// `[-k:]`, `[a:b]` with both negative or a fixed prefix). Assumes the axis is long enough.
    private static func symbolicSliceLength(start: Int, end: Int, step: Int, size: SymbolicDim) -> SymbolicDim? {
        guard step == 1 else { return nil }
        let large = 1 << 30
        switch (start, end) {
        case (0, let e) where e >= large: return size
        case (let s, let e) where s < 0 && e >= large: return SymbolicDim(-s)
        case (let s, let e) where s < 0 && e < 0: return SymbolicDim(max(0, e - s))
        case (let s, let e) where s >= 0 && e >= 0 && e < large: return SymbolicDim(max(0, e - s))
        default: return nil
        }
    }

    static func sliceIndices(start: Int, end: Int, step: Int, size: Int) -> [Int] {
        guard step != 0 else { return [] }
        let clampedStart = start < 0 ? start + size : start
        let clampedEnd = end < 0 ? end + size : end
        if step > 0 {
            let first = min(max(clampedStart, 0), size), last = min(max(clampedEnd, 0), size)
            return Array(stride(from: first, to: last, by: step))
        }
        let first = min(max(clampedStart, 0), size - 1), last = min(max(clampedEnd, -1), size - 1)
        return Array(stride(from: first, to: last, by: step))
    }

    private mutating func split() -> [ValueType] {
        let count = node.outputs.count
        guard let input = shape(0), let axis = normalize(intAttribute("axis", 0), rank: input.count) else {
            return (0..<count).map { _ in ValueType(dtype: firstDType, shape: nil) }
        }
        var sizes: [SymbolicDim]?
        let declared = opset >= 13 ? (node.inputs.count > 1 && !node.inputs[1].isEmpty ? concrete(1) : nil) : intsAttribute("split")
        if let declared {
            sizes = declared.map { SymbolicDim($0) }
        } else if let size = input[axis].constant {
            let parts = intAttribute("num_outputs", count)
            let chunk = (size + parts - 1) / max(parts, 1)
            sizes = (0..<parts).map { SymbolicDim(max(0, min(chunk, size - $0 * chunk))) }
        } else if let part = input[axis].dividedExactly(by: SymbolicDim(count)) {
            sizes = [SymbolicDim](repeating: part, count: count)
        }
        return (0..<count).map { index in
            var dims = input
            dims[axis] = sizes.flatMap { index < $0.count ? $0[index] : nil } ?? unknown()
            return ValueType(dtype: firstDType, shape: dims)
        }
    }

    private func shapeOp() -> ValueType {
        guard let input = shape(0) else { return ValueType(dtype: .int64, shape: nil) }
        let rank = input.count
        func clamp(_ value: Int) -> Int { min(max(value < 0 ? value + rank : value, 0), rank) }
        let start = clamp(intAttribute("start", 0))
        let end = clamp(intAttribute("end", rank))
        let dims = start < end ? Array(input[start..<end]) : []
        return ValueType(dtype: .int64, shape: [SymbolicDim(dims.count)], contents: dims)
    }

    private mutating func expand() -> ValueType {
        if let target = input(1)?.contents {
            return ValueType(dtype: firstDType, shape: broadcast([shape(0), target]))
        }
        let rank = max(shape(1)?.first?.constant ?? 0, shape(0)?.count ?? 0)
        return ValueType(dtype: firstDType, shape: unknownShape(rank: rank))
    }

    private mutating func constantOfShape() -> ValueType {
        let dtype = (try? node.tensor("value"))??.dtype ?? .float32
        if let dims = input(0)?.contents { return ValueType(dtype: dtype, shape: dims) }
        return ValueType(dtype: dtype, shape: (shape(0)?.first?.constant).map { unknownShape(rank: $0) })
    }

    private mutating func range() -> ValueType {
        let dtype = firstDType
        if let start = concrete(0)?.first, let delta = concrete(2)?.first, start == 0, delta == 1,
            let limit = input(1)?.contents?.first
        {
            return ValueType(dtype: dtype, shape: [limit])
        }
        return ValueType(dtype: dtype, shape: [unknown()])
    }

    private func reduce() -> ValueType {
        guard let input = shape(0) else { return ValueType(dtype: firstDType, shape: nil) }
        let keepDims = intAttribute("keepdims", 1) == 1
        let inputSince = node.opType == "ReduceSum" ? 13 : 18
        let hasInput = node.inputs.count > 1 && !node.inputs[1].isEmpty
        let declared: [Int]?
        if opset >= inputSince {
            guard !hasInput || concrete(1) != nil else { return ValueType(dtype: firstDType, shape: nil) }
            declared = hasInput ? concrete(1) : nil
        } else {
            declared = intsAttribute("axes")
        }
        var axes = Set((declared ?? []).compactMap { normalize($0, rank: input.count) })
        if declared == nil || declared?.isEmpty == true {
            if intAttribute("noop_with_empty_axes", 0) == 1 { return ValueType(dtype: firstDType, shape: input) }
            axes = Set(input.indices)
        }
        var dims: SymbolicShape = []
        for (axis, dim) in input.enumerated() {
            if axes.contains(axis) {
                if keepDims { dims.append(1) }
            } else {
                dims.append(dim)
            }
        }
        return ValueType(dtype: firstDType, shape: dims)
    }

    private func argMax() -> ValueType {
        guard let input = shape(0), let axis = normalize(intAttribute("axis", 0), rank: input.count) else {
            return ValueType(dtype: .int64, shape: nil)
        }
        var dims = input
        if intAttribute("keepdims", 1) == 1 { dims[axis] = 1 } else { dims.remove(at: axis) }
        return ValueType(dtype: .int64, shape: dims)
    }
}
