/// Little-endian byte layouts of tensor elements, shared by every file format Kiln reads or
/// writes (ONNX `raw_data`, NumPy `.npy`, `.kiln` plan weights).
public enum TensorBytes {
    /// Decodes `count` elements of `dtype` from little-endian bytes.
    /// - Throws: ``KilnError/invalidTensor(_:)`` when the byte count does not match.
    public static func decode(_ bytes: UnsafeRawBufferPointer, dtype: DType, shape: [Int]) throws -> Tensor {
        let count = Tensor.elementCount(of: shape)
        guard dtype != .string else { throw KilnError.invalidTensor("string tensors are not supported") }
        guard bytes.count == count * dtype.byteSize else {
            throw KilnError.invalidTensor("\(dtype.rawValue)\(shape) needs \(count * dtype.byteSize) bytes, found \(bytes.count)")
        }
        func load<T: FixedWidthInteger>(_: T.Type, _ index: Int) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: index * MemoryLayout<T>.size, as: T.self))
        }
        switch dtype {
        case .float32: return try Tensor(floats: (0..<count).map { Float(bitPattern: load(UInt32.self, $0)) }, shape: shape)
        case .float64: return try Tensor(floats: (0..<count).map { Float(Double(bitPattern: load(UInt64.self, $0))) }, shape: shape, dtype: .float64)
        case .float16: return try Tensor(floats: (0..<count).map { Float(Float16(bitPattern: load(UInt16.self, $0))) }, shape: shape, dtype: .float16)
        case .bfloat16: return try Tensor(floats: (0..<count).map { Float(bitPattern: UInt32(load(UInt16.self, $0)) << 16) }, shape: shape, dtype: .bfloat16)
        case .int64, .uint64: return try Tensor(ints: (0..<count).map { Int64(bitPattern: load(UInt64.self, $0)) }, shape: shape, dtype: dtype)
        case .int32: return try Tensor(ints: (0..<count).map { Int64(Int32(bitPattern: load(UInt32.self, $0))) }, shape: shape, dtype: dtype)
        case .uint32: return try Tensor(ints: (0..<count).map { Int64(load(UInt32.self, $0)) }, shape: shape, dtype: dtype)
        case .int16: return try Tensor(ints: (0..<count).map { Int64(Int16(bitPattern: load(UInt16.self, $0))) }, shape: shape, dtype: dtype)
        case .uint16: return try Tensor(ints: (0..<count).map { Int64(load(UInt16.self, $0)) }, shape: shape, dtype: dtype)
        case .int8: return try Tensor(ints: (0..<count).map { Int64(Int8(bitPattern: bytes[$0])) }, shape: shape, dtype: dtype)
        case .uint8: return try Tensor(ints: (0..<count).map { Int64(bytes[$0]) }, shape: shape, dtype: dtype)
        case .bool: return try Tensor(bools: (0..<count).map { bytes[$0] != 0 }, shape: shape)
        case .string: throw KilnError.invalidTensor("string tensors are not supported")
        }
    }

    /// Encodes `tensor`'s elements as little-endian bytes of its dtype (bfloat16 keeps its 16
    /// bits; float64 is widened from the stored float32 values).
    public static func encode(_ tensor: Tensor) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tensor.count * tensor.dtype.byteSize)
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
        }
        switch tensor.dtype {
        case .float32: tensor.floats.forEach { append($0.bitPattern) }
        case .float64: tensor.floats.forEach { append(Double($0).bitPattern) }
        case .float16: tensor.floats.forEach { append(Float16($0).bitPattern) }
        case .bfloat16: tensor.floats.forEach { append(UInt16(truncatingIfNeeded: $0.bitPattern >> 16)) }
        case .int64, .uint64: tensor.ints.forEach { append(UInt64(bitPattern: $0)) }
        case .int32, .uint32: tensor.ints.forEach { append(UInt32(truncatingIfNeeded: $0)) }
        case .int16, .uint16: tensor.ints.forEach { append(UInt16(truncatingIfNeeded: $0)) }
        case .int8, .uint8: tensor.ints.forEach { bytes.append(UInt8(truncatingIfNeeded: $0)) }
        case .bool: tensor.bools.forEach { bytes.append($0 ? 1 : 0) }
        case .string: break
        }
        return bytes
    }
}
