import Foundation

/// Reads and writes NumPy `.npy` files (format versions 1-3, little-endian, C order), the
/// interchange format of `kiln run` and of the golden test fixtures.
public enum NPYFile {
    private static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // "\x93NUMPY"

    /// Reads a tensor from an `.npy` file.
    /// - Parameter url: the file to read.
    /// - Returns: the tensor, with NumPy's dtype mapped to Kiln's.
    public static func read(_ url: URL) throws -> Tensor {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw KilnError.io("cannot read \(url.path): \(error.localizedDescription)")
        }
        do { return try decode(data) } catch let error as KilnError {
            throw KilnError.io("\(url.path): \(error)")
        }
    }

    /// Decodes the bytes of an `.npy` file.
    public static func decode(_ data: Data) throws -> Tensor {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw KilnError.invalidTensor("not a NumPy .npy file (bad magic)")
        }
        let major = bytes[6]
        let headerLengthSize = major == 1 ? 2 : 4
        guard bytes.count >= 8 + headerLengthSize else { throw KilnError.invalidTensor("truncated .npy header") }
        var headerLength = 0
        for index in 0..<headerLengthSize { headerLength |= Int(bytes[8 + index]) << (8 * index) }
        let headerStart = 8 + headerLengthSize
        guard bytes.count >= headerStart + headerLength,
            let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8)
        else { throw KilnError.invalidTensor("truncated .npy header") }
        let (descr, fortranOrder, shape) = try parseHeader(header)
        guard !fortranOrder else { throw KilnError.invalidTensor("Fortran-ordered .npy files are not supported; save with np.ascontiguousarray") }
        let payload = Array(bytes[(headerStart + headerLength)...])
        return try decodePayload(payload, descr: descr, shape: shape)
    }

    /// Writes a tensor as an `.npy` file (version 1.0).
    public static func write(_ tensor: Tensor, to url: URL) throws {
        do { try encode(tensor).write(to: url) } catch {
            throw KilnError.io("cannot write \(url.path): \(error.localizedDescription)")
        }
    }

    /// Encodes a tensor as `.npy` bytes. bfloat16 is written as float32 (NumPy has no bfloat16).
    public static func encode(_ tensor: Tensor) -> Data {
        let descr: String
        var payload = Data()
        switch tensor.dtype {
        case .float16:
            descr = "<f2"
            for value in tensor.floats { appendLittleEndian(Float16(value).bitPattern, to: &payload) }
        case .float64:
            descr = "<f8"
            for value in tensor.floats { appendLittleEndian(Double(value).bitPattern, to: &payload) }
        case .float32, .bfloat16:
            descr = "<f4"
            for value in tensor.floats { appendLittleEndian(value.bitPattern, to: &payload) }
        case .bool:
            descr = "|b1"
            payload.append(contentsOf: tensor.bools.map { $0 ? UInt8(1) : 0 })
        case .int8:
            descr = "|i1"
            payload.append(contentsOf: tensor.ints.map { UInt8(bitPattern: Int8(truncatingIfNeeded: $0)) })
        case .uint8:
            descr = "|u1"
            payload.append(contentsOf: tensor.ints.map { UInt8(truncatingIfNeeded: $0) })
        case .int16, .uint16:
            descr = tensor.dtype == .int16 ? "<i2" : "<u2"
            for value in tensor.ints { appendLittleEndian(UInt16(truncatingIfNeeded: value), to: &payload) }
        case .int32, .uint32:
            descr = tensor.dtype == .int32 ? "<i4" : "<u4"
            for value in tensor.ints { appendLittleEndian(UInt32(truncatingIfNeeded: value), to: &payload) }
        case .int64, .uint64, .string:
            descr = tensor.dtype == .uint64 ? "<u8" : "<i8"
            for value in tensor.ints { appendLittleEndian(UInt64(bitPattern: value), to: &payload) }
        }
        let shapeText = tensor.shape.isEmpty ? "()" : tensor.shape.count == 1 ? "(\(tensor.shape[0]),)"
            : "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
        // Pad so that the payload starts on a 64-byte boundary, newline-terminated.
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data(magic)
        data.append(contentsOf: [1, 0])
        appendLittleEndian(UInt16(header.utf8.count), to: &data)
        data.append(contentsOf: Array(header.utf8))
        data.append(payload)
        return data
    }

    private static func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to data: inout Data) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    private static func parseHeader(_ header: String) throws -> (descr: String, fortranOrder: Bool, shape: [Int]) {
        func field(_ key: String) -> Substring? {
            guard let range = header.range(of: "'\(key)':") else { return nil }
            return header[range.upperBound...].drop(while: { $0 == " " })
        }
        guard let descrField = field("descr"), descrField.first == "'",
            let descrEnd = descrField.dropFirst().firstIndex(of: "'")
        else { throw KilnError.invalidTensor("malformed .npy header: \(header)") }
        let descr = String(descrField[descrField.index(after: descrField.startIndex)..<descrEnd])
        let fortranOrder = field("fortran_order")?.hasPrefix("True") ?? false
        guard let shapeField = field("shape"), shapeField.first == "(", let close = shapeField.firstIndex(of: ")") else {
            throw KilnError.invalidTensor("malformed .npy header: \(header)")
        }
        let inner = shapeField[shapeField.index(after: shapeField.startIndex)..<close]
        let shape = try inner.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.map { text -> Int in
                guard let value = Int(text), value >= 0 else { throw KilnError.invalidTensor("bad .npy shape entry '\(text)'") }
                return value
            }
        return (descr, fortranOrder, shape)
    }

    private static func decodePayload(_ payload: [UInt8], descr: String, shape: [Int]) throws -> Tensor {
        let count = Tensor.elementCount(of: shape)
        guard descr.first != ">" else { throw KilnError.invalidTensor("big-endian .npy data ('\(descr)') is not supported") }
        let code = String(descr.dropFirst())
        let width: Int
        switch code {
        case "f8", "i8", "u8": width = 8
        case "f4", "i4", "u4": width = 4
        case "f2", "i2", "u2": width = 2
        case "i1", "u1", "b1": width = 1
        default: throw KilnError.invalidTensor("unsupported .npy dtype '\(descr)'")
        }
        guard payload.count >= count * width else {
            throw KilnError.invalidTensor("truncated .npy data: shape \(shape) needs \(count * width) bytes, found \(payload.count)")
        }
        func word(_ index: Int) -> UInt64 {
            var value: UInt64 = 0
            for byte in 0..<width { value |= UInt64(payload[index * width + byte]) << (8 * UInt64(byte)) }
            return value
        }
        switch code {
        case "f4": return try Tensor(floats: (0..<count).map { Float(bitPattern: UInt32(word($0))) }, shape: shape)
        case "f8": return try Tensor(floats: (0..<count).map { Float(Double(bitPattern: word($0))) }, shape: shape, dtype: .float64)
        case "f2": return try Tensor(floats: (0..<count).map { Float(Float16(bitPattern: UInt16(word($0)))) }, shape: shape, dtype: .float16)
        case "b1": return try Tensor(bools: (0..<count).map { word($0) != 0 }, shape: shape)
        case "i8": return try Tensor(ints: (0..<count).map { Int64(bitPattern: word($0)) }, shape: shape)
        case "u8": return try Tensor(ints: (0..<count).map { Int64(bitPattern: word($0)) }, shape: shape, dtype: .uint64)
        case "i4": return try Tensor(ints: (0..<count).map { Int64(Int32(bitPattern: UInt32(word($0)))) }, shape: shape, dtype: .int32)
        case "u4": return try Tensor(ints: (0..<count).map { Int64(word($0)) }, shape: shape, dtype: .uint32)
        case "i2": return try Tensor(ints: (0..<count).map { Int64(Int16(bitPattern: UInt16(word($0)))) }, shape: shape, dtype: .int16)
        case "u2": return try Tensor(ints: (0..<count).map { Int64(word($0)) }, shape: shape, dtype: .uint16)
        case "i1": return try Tensor(ints: (0..<count).map { Int64(Int8(bitPattern: UInt8(word($0)))) }, shape: shape, dtype: .int8)
        default: return try Tensor(ints: (0..<count).map { Int64(word($0)) }, shape: shape, dtype: .uint8)
        }
    }
}
