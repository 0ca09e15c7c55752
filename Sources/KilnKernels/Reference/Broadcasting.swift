import KilnCore

/// NumPy-style multidirectional broadcasting, as the ONNX spec defines it.
public enum Broadcasting {
    /// The broadcast result shape of `shapes`, or nil when they are incompatible.
    public static func shape(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var result = [Int](repeating: 1, count: rank)
        for shape in shapes {
            let offset = rank - shape.count
            for (axis, size) in shape.enumerated() {
                let current = result[offset + axis]
                if current == 1 {
                    result[offset + axis] = size
                } else if size != 1 && size != current {
                    return nil
                }
            }
        }
        return result
    }

    /// For every element of a tensor of shape `target`, the linear index of the element of a
    /// tensor of shape `source` that broadcasts onto it.
    public static func sourceIndices(from source: [Int], to target: [Int]) -> [Int] {
        let count = Tensor.elementCount(of: target)
        if source == target { return Array(0..<count) }
        let offset = target.count - source.count
        let sourceStrides = Tensor.strides(of: source)
        // Stride 0 on broadcast axes makes every index along them read the same element.
        var strides = [Int](repeating: 0, count: target.count)
        for axis in 0..<source.count where source[axis] != 1 {
            strides[offset + axis] = sourceStrides[axis]
        }
        var indices = [Int](repeating: 0, count: count)
        var coordinate = [Int](repeating: 0, count: target.count)
        var sourceIndex = 0
        for linear in 0..<count {
            indices[linear] = sourceIndex
            // Odometer increment over the target shape.
            var axis = target.count - 1
            while axis >= 0 {
                coordinate[axis] += 1
                sourceIndex += strides[axis]
                if coordinate[axis] < target[axis] { break }
                sourceIndex -= strides[axis] * coordinate[axis]
                coordinate[axis] = 0
                axis -= 1
            }
        }
        return indices
    }

    /// Broadcast shape of the context's inputs, or a clear error.
    static func shape(of tensors: [Tensor], in context: OpContext) throws -> [Int] {
        guard let shape = shape(tensors.map(\.shape)) else {
            throw context.failure("input shapes \(tensors.map(\.shape)) cannot be broadcast together")
        }
        return shape
    }
}
