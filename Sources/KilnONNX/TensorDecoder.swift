import Foundation
import KilnCore

/// Turns an ONNX `TensorProto` (raw bytes, typed fields, or external data) into a ``Tensor``.
struct TensorDecoder {
    /// Folder of the model file; external data paths are resolved against it.
    let modelDirectory: URL?

    func decode(_ proto: Onnx_TensorProto, context: String) throws -> Tensor {
        let dtype = try ONNXTypes.dtype(rawValue: Int(proto.dataType), context: context)
        guard proto.dims.allSatisfy({ $0 >= 0 && $0 < Int64(Int32.max) }) else {
            throw KilnError.invalidModel("\(context): bad dimensions \(proto.dims)")
        }
        let shape = proto.dims.map { Int($0) }
        let (count, overflow) = shape.reduce((1, false)) { acc, dim in
            let (product, flag) = acc.0.multipliedReportingOverflow(by: dim)
            return (product, acc.1 || flag)
        }
        guard !overflow, count < Int(Int32.max) else {
            throw KilnError.invalidModel("\(context): shape \(shape) is too large")
        }
        let bytes: [UInt8]?
        if proto.dataLocation == .external {
            bytes = try externalBytes(proto, context: context)
        } else if proto.hasRawData {
            bytes = [UInt8](proto.rawData)
        } else {
            bytes = nil
        }
        if let bytes {
            return try decodeRaw(bytes, dtype: dtype, shape: shape, count: count, context: context)
        }
        return try decodeTyped(proto, dtype: dtype, shape: shape, count: count, context: context)
    }

    private func externalBytes(_ proto: Onnx_TensorProto, context: String) throws -> [UInt8] {
        let entries = Dictionary(proto.externalData.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        guard let location = entries["location"], !location.isEmpty else {
            throw KilnError.invalidModel("\(context): external data without a 'location'")
        }
        guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
            throw KilnError.invalidModel("\(context): external data location '\(location)' must be a relative path inside the model's folder")
        }
        guard let directory = modelDirectory else {
            throw KilnError.invalidModel("\(context): the model uses external data ('\(location)') but was loaded from memory; load it from its file")
        }
        let url = directory.appendingPathComponent(location)
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw KilnError.invalidModel(
                "\(context): external data file '\(location)' not found next to the model (looked in \(directory.path)). "
                    + "Copy the model together with its external data files.")
        }
        defer { try? handle.close() }
        let offset = UInt64(entries["offset"].flatMap { UInt64($0) } ?? 0)
        let fileSize = (try? handle.seekToEnd()) ?? 0
        let length = entries["length"].flatMap { UInt64($0) } ?? (fileSize > offset ? fileSize - offset : 0)
        guard offset + length <= fileSize else {
            throw KilnError.invalidModel("\(context): external data '\(location)' is truncated: needs bytes \(offset)..<\(offset + length), file has \(fileSize)")
        }
        try handle.seek(toOffset: offset)
        let data = try handle.read(upToCount: Int(length)) ?? Data()
        return [UInt8](data)
    }

    private func decodeRaw(_ bytes: [UInt8], dtype: DType, shape: [Int], count: Int, context: String) throws -> Tensor {
        do {
            return try bytes.withUnsafeBytes { try TensorBytes.decode($0, dtype: dtype, shape: shape) }
        } catch let error as KilnError {
            throw KilnError.invalidModel("\(context): \(error)")
        }
    }

    private func decodeTyped(_ proto: Onnx_TensorProto, dtype: DType, shape: [Int], count: Int, context: String) throws -> Tensor {
        func checked<T>(_ values: [T], field: String) throws -> [T] {
            guard values.count == count else {
                throw KilnError.invalidModel("\(context): \(dtype.rawValue)\(shape) needs \(count) values in \(field), found \(values.count)")
            }
            return values
        }
        switch dtype {
        case .float32:
            return try Tensor(floats: checked(proto.floatData, field: "float_data"), shape: shape)
        case .float64:
            return try Tensor(floats: checked(proto.doubleData, field: "double_data").map { Float($0) }, shape: shape, dtype: .float64)
        case .float16:
            // ONNX stores fp16 bit patterns in the low 16 bits of int32_data.
            let bits = try checked(proto.int32Data, field: "int32_data")
            return try Tensor(floats: bits.map { Float(Float16(bitPattern: UInt16(truncatingIfNeeded: $0))) }, shape: shape, dtype: .float16)
        case .bfloat16:
            let bits = try checked(proto.int32Data, field: "int32_data")
            return try Tensor(floats: bits.map { Float(bitPattern: UInt32(UInt16(truncatingIfNeeded: $0)) << 16) }, shape: shape, dtype: .bfloat16)
        case .int64:
            return try Tensor(ints: checked(proto.int64Data, field: "int64_data"), shape: shape)
        case .uint64, .uint32:
            return try Tensor(ints: checked(proto.uint64Data, field: "uint64_data").map { Int64(truncatingIfNeeded: $0) }, shape: shape, dtype: dtype)
        case .int32, .int16, .int8, .uint16, .uint8:
            return try Tensor(ints: checked(proto.int32Data, field: "int32_data").map { Int64($0) }, shape: shape, dtype: dtype)
        case .bool:
            return try Tensor(bools: checked(proto.int32Data, field: "int32_data").map { $0 != 0 }, shape: shape)
        case .string:
            throw KilnError.invalidModel("\(context): string tensors are not supported")
        }
    }
}

/// Mapping between ONNX's element-type enum and Kiln's ``DType``.
enum ONNXTypes {
    static func dtype(_ type: Onnx_TensorProto.DataType, context: String) throws -> DType {
        switch type {
        case .float: return .float32
        case .float16: return .float16
        case .bfloat16: return .bfloat16
        case .double: return .float64
        case .int64: return .int64
        case .int32: return .int32
        case .int16: return .int16
        case .int8: return .int8
        case .uint8: return .uint8
        case .uint16: return .uint16
        case .uint32: return .uint32
        case .uint64: return .uint64
        case .bool: return .bool
        case .string: return .string
        default:
            throw KilnError.invalidModel("\(context): element type \(type) is not supported (Kiln reads float32/16, bfloat16, float64, integers and bool)")
        }
    }

    static func dtype(rawValue: Int, context: String) throws -> DType {
        guard let type = Onnx_TensorProto.DataType(rawValue: rawValue) else {
            throw KilnError.invalidModel("\(context): unknown element type \(rawValue)")
        }
        return try dtype(type, context: context)
    }
}
