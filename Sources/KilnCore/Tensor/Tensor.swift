/// A dense, row-major tensor: the value type the importer, the reference executor and the
/// CLI pass around.
///
/// Storage is deliberately simple so that reference kernels stay obviously correct:
/// floating types live in a `[Float]` (fp16/bf16 values already rounded to their precision,
/// float64 computed in float32), integer types in an `[Int64]`, `bool` in a `[Bool]`.
/// Fast kernels use their own packed buffers; this type is for correctness and I/O.
public struct Tensor: Sendable, Equatable {
    /// How the elements are held.
    public enum Storage: Sendable, Equatable, Codable {
        case float([Float])
        case int([Int64])
        case bool([Bool])
    }

    /// The element type as the model declares it.
    public let dtype: DType
    /// Dimensions, outermost first. A scalar has `[]`.
    public let shape: [Int]
    /// The elements in row-major order.
    public let storage: Storage

    /// Creates a tensor, checking that the element count matches the shape and the storage
    /// kind matches the dtype.
    public init(dtype: DType, shape: [Int], storage: Storage) throws {
        let expected = Tensor.elementCount(of: shape)
        let actual: Int
        switch storage {
        case .float(let values):
            guard dtype.isFloatingPoint else { throw KilnError.invalidTensor("dtype \(dtype) cannot hold float storage") }
            actual = values.count
        case .int(let values):
            guard dtype.isInteger else { throw KilnError.invalidTensor("dtype \(dtype) cannot hold integer storage") }
            actual = values.count
        case .bool(let values):
            guard dtype == .bool else { throw KilnError.invalidTensor("dtype \(dtype) cannot hold bool storage") }
            actual = values.count
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw KilnError.invalidTensor("negative dimension in shape \(shape)")
        }
        guard expected == actual else {
            throw KilnError.invalidTensor("shape \(shape) needs \(expected) elements but \(actual) were given")
        }
        self.dtype = dtype
        self.shape = shape
        self.storage = storage
    }

    /// A float tensor; values are rounded to `dtype`'s precision.
    public init(floats: [Float], shape: [Int], dtype: DType = .float32) throws {
        let rounded = (dtype == .float16 || dtype == .bfloat16) ? floats.map { FloatRounding.round($0, to: dtype) } : floats
        try self.init(dtype: dtype, shape: shape, storage: .float(rounded))
    }

    /// An integer tensor.
    public init(ints: [Int64], shape: [Int], dtype: DType = .int64) throws {
        try self.init(dtype: dtype, shape: shape, storage: .int(ints))
    }

    /// A bool tensor.
    public init(bools: [Bool], shape: [Int]) throws {
        try self.init(dtype: .bool, shape: shape, storage: .bool(bools))
    }

    /// A float32 scalar.
    public static func scalar(_ value: Float) -> Tensor {
        // Cannot fail: one element, empty shape.
        try! Tensor(floats: [value], shape: [])
    }

    /// An int64 scalar.
    public static func scalar(_ value: Int64) -> Tensor {
        try! Tensor(ints: [value], shape: [])
    }

    /// Number of elements a shape holds (1 for a scalar).
    public static func elementCount(of shape: [Int]) -> Int {
        shape.reduce(1, *)
    }

    /// Number of elements.
    public var count: Int { Tensor.elementCount(of: shape) }
    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// Row-major strides in elements.
    public var strides: [Int] { Tensor.strides(of: shape) }

    /// Row-major strides in elements for `shape`.
    public static func strides(of shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var running = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[axis] = running
            running *= shape[axis]
        }
        return strides
    }

    /// The elements as floats (integers and bools converted), for code that computes in float.
    public var floats: [Float] {
        switch storage {
        case .float(let values): return values
        case .int(let values): return values.map { Float($0) }
        case .bool(let values): return values.map { $0 ? 1 : 0 }
        }
    }

    /// The elements as Int64 (floats truncated toward zero, bools as 0/1).
    public var ints: [Int64] {
        switch storage {
        case .int(let values): return values
        case .float(let values): return values.map { Tensor.truncatingToInt64($0) }
        case .bool(let values): return values.map { $0 ? 1 : 0 }
        }
    }

    /// The elements as Bool (non-zero is true).
    public var bools: [Bool] {
        switch storage {
        case .bool(let values): return values
        case .float(let values): return values.map { $0 != 0 }
        case .int(let values): return values.map { $0 != 0 }
        }
    }

    /// The same elements with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        try Tensor(dtype: dtype, shape: newShape, storage: storage)
    }

    /// Float-to-integer conversion that saturates instead of trapping (NaN becomes 0).
    public static func truncatingToInt64(_ value: Float) -> Int64 {
        if value.isNaN { return 0 }
        if value >= 9.223372e18 { return Int64.max }
        if value <= -9.223372e18 { return Int64.min }
        return Int64(value)
    }

    /// A short description for error messages: `float32[3, 7]`.
    public var signature: String { "\(dtype.rawValue)\(shape)" }
}
