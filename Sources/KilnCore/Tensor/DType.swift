/// The element types Kiln's IR knows about, named as ONNX names them.
///
/// The reference executor stores every floating type as `Float` (values rounded to the
/// type's precision), every integer type as `Int64` and `bool` as `Bool`; see ``Tensor``.
public enum DType: String, Sendable, CaseIterable, Codable {
    case float32, float16, bfloat16, float64
    case int64, int32, int16, int8, uint8, uint16, uint32, uint64
    case bool
    case string

    /// Whether values of this type are floating point.
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float16, .bfloat16, .float64: return true
        default: return false
        }
    }

    /// Whether values of this type are integers (signed or unsigned).
    public var isInteger: Bool {
        switch self {
        case .int64, .int32, .int16, .int8, .uint8, .uint16, .uint32, .uint64: return true
        default: return false
        }
    }

    /// Size of one element in bytes as ONNX and NumPy store it.
    public var byteSize: Int {
        switch self {
        case .float64, .int64, .uint64: return 8
        case .float32, .int32, .uint32: return 4
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .int8, .uint8, .bool: return 1
        case .string: return 0
        }
    }

    /// The representable range of an integer type, used to wrap values on `Cast`.
    public var integerRange: ClosedRange<Int64>? {
        switch self {
        case .int64: return Int64.min...Int64.max
        case .int32: return Int64(Int32.min)...Int64(Int32.max)
        case .int16: return Int64(Int16.min)...Int64(Int16.max)
        case .int8: return Int64(Int8.min)...Int64(Int8.max)
        case .uint8: return 0...Int64(UInt8.max)
        case .uint16: return 0...Int64(UInt16.max)
        case .uint32: return 0...Int64(UInt32.max)
        case .uint64: return 0...Int64.max
        default: return nil
        }
    }
}
