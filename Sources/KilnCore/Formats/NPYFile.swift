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
        // NumPy has no bfloat16 (nor Kiln's string placeholder): widen those to float32.
        let stored = tensor.dtype == .bfloat16 ? (try? Tensor(floats: tensor.floats, shape: tensor.shape)) ?? tensor : tensor
        let descr = descriptor(for: stored.dtype)
        let payload = Data(TensorBytes.encode(stored))
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

    /// NumPy's type descriptor for a dtype, and back.
    private static let descriptors: [DType: String] = [
        .float32: "<f4", .float64: "<f8", .float16: "<f2", .int64: "<i8", .uint64: "<u8", .int32: "<i4",
        .uint32: "<u4", .int16: "<i2", .uint16: "<u2", .int8: "|i1", .uint8: "|u1", .bool: "|b1",
    ]

    private static func descriptor(for dtype: DType) -> String { descriptors[dtype] ?? "<f4" }

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
        guard descr.first != ">" else { throw KilnError.invalidTensor("big-endian .npy data ('\(descr)') is not supported") }
        let code = descr.dropFirst()
        guard let dtype = descriptors.first(where: { $0.value.dropFirst() == code })?.key else {
            throw KilnError.invalidTensor("unsupported .npy dtype '\(descr)'")
        }
        let byteCount = Tensor.elementCount(of: shape) * dtype.byteSize
        guard payload.count >= byteCount else {
            throw KilnError.invalidTensor("truncated .npy data: shape \(shape) needs \(byteCount) bytes, found \(payload.count)")
        }
        return try payload[..<byteCount].withUnsafeBytes { try TensorBytes.decode($0, dtype: dtype, shape: shape) }
    }
}
