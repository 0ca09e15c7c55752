import KilnCore

/// Open Inference Protocol v2 datatype names (`INT64`, `FP32`, ...) and Kiln's ``DType``.
enum V2Datatype {
    static func name(of dtype: DType?) -> String {
        switch dtype {
        case .float32: return "FP32"
        case .float16: return "FP16"
        case .bfloat16: return "BF16"
        case .float64: return "FP64"
        case .int64: return "INT64"
        case .int32: return "INT32"
        case .int16: return "INT16"
        case .int8: return "INT8"
        case .uint8: return "UINT8"
        case .uint16: return "UINT16"
        case .uint32: return "UINT32"
        case .uint64: return "UINT64"
        case .bool: return "BOOL"
        case .string: return "BYTES"
        case nil: return "FP32"
        }
    }

    /// Triton model-config names (`TYPE_INT64`).
    static func configName(of dtype: DType?) -> String {
        switch dtype {
        case .string: return "TYPE_STRING"
        default: return "TYPE_" + name(of: dtype).replacingOccurrences(of: "FP", with: "FP")
        }
    }

    /// Declared shape as v2 metadata shows it: -1 for symbolic dimensions.
    static func shape(_ declared: DeclaredShape?) -> [Int] {
        (declared ?? [.symbolic(""), .symbolic("")]).map { $0.fixedSize ?? -1 }
    }
}
