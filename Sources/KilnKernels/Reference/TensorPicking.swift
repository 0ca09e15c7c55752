import KilnCore

extension Tensor {
    /// A tensor of `shape` whose elements are this tensor's elements at `indices` (linear,
    /// row-major). Every data-movement kernel (transpose, slice, gather, expand) reduces to it.
    func picking(_ indices: [Int], shape: [Int]) throws -> Tensor {
        let picked: Storage
        switch storage {
        case .float(let values): picked = .float(indices.map { values[$0] })
        case .int(let values): picked = .int(indices.map { values[$0] })
        case .bool(let values): picked = .bool(indices.map { values[$0] })
        }
        return try Tensor(dtype: dtype, shape: shape, storage: picked)
    }

    /// The elements of several same-typed tensors, one after another.
    static func concatenating(_ tensors: [Tensor], shape: [Int]) throws -> Tensor {
        let first = tensors[0]
        let storage: Storage
        switch first.storage {
        case .float: storage = .float(tensors.flatMap(\.floats))
        case .int: storage = .int(tensors.flatMap(\.ints))
        case .bool: storage = .bool(tensors.flatMap(\.bools))
        }
        return try Tensor(dtype: first.dtype, shape: shape, storage: storage)
    }
}

/// Linear indices of every coordinate in the cartesian product of per-axis index lists, in
/// row-major order, for a tensor of `shape`.
func linearIndices(selecting perAxis: [[Int]], in shape: [Int]) -> [Int] {
    let strides = Tensor.strides(of: shape)
    var result = [0]
    for (axis, choices) in perAxis.enumerated() {
        result = result.flatMap { base in choices.map { base + $0 * strides[axis] } }
    }
    return result
}
