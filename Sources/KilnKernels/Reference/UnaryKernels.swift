import Foundation
import KilnCore

/// Elementwise math on one tensor, type conversion, and the pass-through operators.
enum UnaryKernels {
    static func register(into table: inout [String: ReferenceKernel]) {
        table["Sqrt"] = { try floatMap($0, sqrtf) }
        table["Exp"] = { try floatMap($0, expf) }
        table["Log"] = { try floatMap($0, logf) }
        table["Erf"] = { try floatMap($0, erff) }
        table["Floor"] = { try floatMap($0, floorf) }
        table["Ceil"] = { try floatMap($0, ceilf) }
        table["Reciprocal"] = { try floatMap($0) { 1 / $0 } }
        table["Abs"] = { try signedMap($0, float: Swift.abs, int: { $0 == .min ? $0 : Swift.abs($0) }) }
        table["Neg"] = { try signedMap($0, float: { -$0 }, int: { 0 &- $0 }) }
        table["IsNaN"] = { context in
            let input = try context.input(0)
            return [try Tensor(bools: input.floats.map(\.isNaN), shape: input.shape)]
        }
        table["IsInf"] = isInf
        table["Identity"] = { [try $0.input(0)] }
        table["Dropout"] = dropout
        table["Cast"] = cast
    }

    /// Applies `operation` to every element of input 0, keeping its floating dtype.
    static func floatMap(_ context: OpContext, _ operation: (Float) -> Float) throws -> [Tensor] {
        let input = try context.input(0)
        guard case .float(let values) = input.storage else {
            throw context.failure("expects a floating-point input, got \(input.signature)")
        }
        return [try Tensor(floats: values.map(operation), shape: input.shape, dtype: input.dtype)]
    }

    private static func signedMap(_ context: OpContext, float: (Float) -> Float, int: (Int64) -> Int64) throws -> [Tensor] {
        let input = try context.input(0)
        switch input.storage {
        case .float(let values): return [try Tensor(floats: values.map(float), shape: input.shape, dtype: input.dtype)]
        case .int(let values): return [try Tensor(ints: values.map(int), shape: input.shape, dtype: input.dtype)]
        case .bool: throw context.failure("does not accept bool input")
        }
    }

    private static func isInf(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let positive = try context.node.int("detect_positive", default: 1) == 1
        let negative = try context.node.int("detect_negative", default: 1) == 1
        let flags = input.floats.map { $0.isInfinite && (($0 > 0 && positive) || ($0 < 0 && negative)) }
        return [try Tensor(bools: flags, shape: input.shape)]
    }

    private static func dropout(_ context: OpContext) throws -> [Tensor] {
        // Inference: the output is the input; the optional mask keeps everything.
        let input = try context.input(0)
        var outputs = [input]
        if context.node.outputs.count > 1 {
            outputs.append(try Tensor(bools: [Bool](repeating: true, count: input.count), shape: input.shape))
        }
        return outputs
    }

    private static func cast(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let code = try context.node.int("to", default: -1)
        guard let target = CastTarget.dtype(onnxCode: code) else {
            throw context.failure("unsupported target type \(code) (Kiln casts between float, integer and bool types)")
        }
        return [try convert(input, to: target)]
    }

    /// Converts `tensor` to `target` the way ONNX Runtime does: floats truncate toward zero when
    /// cast to integers, integers wrap to the target width, anything non-zero becomes `true`.
    static func convert(_ tensor: Tensor, to target: DType) throws -> Tensor {
        if target == .bool { return try Tensor(bools: tensor.bools, shape: tensor.shape) }
        if target.isFloatingPoint { return try Tensor(floats: tensor.floats, shape: tensor.shape, dtype: target) }
        let values = tensor.ints.map { wrap($0, to: target) }
        return try Tensor(ints: values, shape: tensor.shape, dtype: target)
    }

    private static func wrap(_ value: Int64, to dtype: DType) -> Int64 {
        switch dtype {
        case .int32: return Int64(Int32(truncatingIfNeeded: value))
        case .int16: return Int64(Int16(truncatingIfNeeded: value))
        case .int8: return Int64(Int8(truncatingIfNeeded: value))
        case .uint8: return Int64(UInt8(truncatingIfNeeded: value))
        case .uint16: return Int64(UInt16(truncatingIfNeeded: value))
        case .uint32: return Int64(UInt32(truncatingIfNeeded: value))
        default: return value
        }
    }
}

/// ONNX `TensorProto.DataType` codes, as `Cast`'s `to` attribute uses them.
public enum CastTarget {
    /// The Kiln dtype for an ONNX type code, or nil for types Kiln does not support.
    public static func dtype(onnxCode code: Int64) -> DType? {
        switch code {
        case 1: return .float32
        case 2: return .uint8
        case 3: return .int8
        case 4: return .uint16
        case 5: return .int16
        case 6: return .int32
        case 7: return .int64
        case 9: return .bool
        case 10: return .float16
        case 11: return .float64
        case 12: return .uint32
        case 13: return .uint64
        case 16: return .bfloat16
        default: return nil
        }
    }
}
