import Foundation
import KilnCore

/// Arithmetic, comparison and logical operators, with broadcasting.
enum ElementwiseKernels {
    static func register(into table: inout [String: ReferenceKernel]) {
        table["Add"] = { try binary($0, float: +, int: { $0 &+ $1 }) }
        table["Sub"] = { try binary($0, float: -, int: { $0 &- $1 }) }
        table["Mul"] = { try binary($0, float: *, int: { $0 &* $1 }) }
        table["Div"] = { context in
            try binary(context, float: /, int: { lhs, rhs in
                guard rhs != 0 else { throw context.failure("integer division by zero") }
                return lhs / rhs  // C semantics: truncation toward zero, as ONNX Runtime does.
            })
        }
        table["Pow"] = pow
        table["Mod"] = mod
        table["Max"] = { try variadic($0, float: { $0.isNaN || $1.isNaN ? .nan : Swift.max($0, $1) }, int: Swift.max) }
        table["Min"] = { try variadic($0, float: { $0.isNaN || $1.isNaN ? .nan : Swift.min($0, $1) }, int: Swift.min) }
        table["Equal"] = { try compare($0, float: ==, int: ==) }
        table["Greater"] = { try compare($0, float: >, int: >) }
        table["GreaterOrEqual"] = { try compare($0, float: >=, int: >=) }
        table["Less"] = { try compare($0, float: <, int: <) }
        table["LessOrEqual"] = { try compare($0, float: <=, int: <=) }
        table["And"] = { try logical($0) { $0 && $1 } }
        table["Or"] = { try logical($0) { $0 || $1 } }
        table["Xor"] = { try logical($0) { $0 != $1 } }
        table["Not"] = { context in
            let input = try context.input(0)
            return [try Tensor(bools: input.bools.map { !$0 }, shape: input.shape)]
        }
        table["Where"] = whereKernel
    }

    /// Applies `float` or `int` elementwise to the broadcast inputs 0 and 1; the result has input 0's dtype.
    static func binary(
        _ context: OpContext, float: (Float, Float) -> Float, int: (Int64, Int64) throws -> Int64
    ) throws -> [Tensor] {
        let lhs = try context.input(0)
        let rhs = try context.input(1)
        return [try combine(lhs, rhs, context: context, float: float, int: int)]
    }

    private static func combine(
        _ lhs: Tensor, _ rhs: Tensor, context: OpContext, float: (Float, Float) -> Float, int: (Int64, Int64) throws -> Int64
    ) throws -> Tensor {
        let shape = try Broadcasting.shape(of: [lhs, rhs], in: context)
        let left = Broadcasting.sourceIndices(from: lhs.shape, to: shape)
        let right = Broadcasting.sourceIndices(from: rhs.shape, to: shape)
        switch (lhs.storage, rhs.storage) {
        case (.int(let a), .int(let b)):
            return try Tensor(ints: zip(left, right).map { try int(a[$0], b[$1]) }, shape: shape, dtype: lhs.dtype)
        case (.float(let a), _):
            let b = rhs.floats
            return try Tensor(floats: zip(left, right).map { float(a[$0], b[$1]) }, shape: shape, dtype: lhs.dtype)
        default:
            throw context.failure("cannot combine \(lhs.signature) with \(rhs.signature)")
        }
    }

    private static func variadic(_ context: OpContext, float: (Float, Float) -> Float, int: (Int64, Int64) -> Int64) throws -> [Tensor] {
        let tensors = try context.inputs.indices.map { try context.input($0) }
        guard var result = tensors.first else { throw context.failure("needs at least one input") }
        for next in tensors.dropFirst() {
            result = try combine(result, next, context: context, float: float, int: int)
        }
        return [result]
    }

    private static func compare(_ context: OpContext, float: (Float, Float) -> Bool, int: (Int64, Int64) -> Bool) throws -> [Tensor] {
        let lhs = try context.input(0)
        let rhs = try context.input(1)
        let shape = try Broadcasting.shape(of: [lhs, rhs], in: context)
        let left = Broadcasting.sourceIndices(from: lhs.shape, to: shape)
        let right = Broadcasting.sourceIndices(from: rhs.shape, to: shape)
        let result: [Bool]
        if lhs.dtype.isFloatingPoint || rhs.dtype.isFloatingPoint {
            let a = lhs.floats, b = rhs.floats
            result = zip(left, right).map { float(a[$0], b[$1]) }
        } else {
            let a = lhs.ints, b = rhs.ints
            result = zip(left, right).map { int(a[$0], b[$1]) }
        }
        return [try Tensor(bools: result, shape: shape)]
    }

    private static func logical(_ context: OpContext, _ operation: (Bool, Bool) -> Bool) throws -> [Tensor] {
        let lhs = try context.input(0)
        let rhs = try context.input(1)
        let shape = try Broadcasting.shape(of: [lhs, rhs], in: context)
        let a = lhs.bools, b = rhs.bools
        let left = Broadcasting.sourceIndices(from: lhs.shape, to: shape)
        let right = Broadcasting.sourceIndices(from: rhs.shape, to: shape)
        return [try Tensor(bools: zip(left, right).map { operation(a[$0], b[$1]) }, shape: shape)]
    }

    private static func whereKernel(_ context: OpContext) throws -> [Tensor] {
        let condition = try context.input(0)
        let onTrue = try context.input(1)
        let onFalse = try context.input(2)
        let shape = try Broadcasting.shape(of: [condition, onTrue, onFalse], in: context)
        let flags = condition.bools
        let c = Broadcasting.sourceIndices(from: condition.shape, to: shape)
        let t = Broadcasting.sourceIndices(from: onTrue.shape, to: shape)
        let f = Broadcasting.sourceIndices(from: onFalse.shape, to: shape)
        let storage: Tensor.Storage
        switch (onTrue.storage, onFalse.storage) {
        case (.float(let a), .float(let b)):
            storage = .float((0..<c.count).map { flags[c[$0]] ? a[t[$0]] : b[f[$0]] })
        case (.int(let a), .int(let b)):
            storage = .int((0..<c.count).map { flags[c[$0]] ? a[t[$0]] : b[f[$0]] })
        case (.bool(let a), .bool(let b)):
            storage = .bool((0..<c.count).map { flags[c[$0]] ? a[t[$0]] : b[f[$0]] })
        default:
            throw context.failure("X (\(onTrue.signature)) and Y (\(onFalse.signature)) must have the same dtype")
        }
        return [try Tensor(dtype: onTrue.dtype, shape: shape, storage: storage)]
    }

    private static func pow(_ context: OpContext) throws -> [Tensor] {
        let base = try context.input(0)
        let exponent = try context.input(1)
        if case .int = base.storage {
            return try binary(context, float: Foundation.pow, int: { lhs, rhs in
                rhs < 0 ? 0 : (0..<rhs).reduce(Int64(1)) { accumulated, _ in accumulated &* lhs }
            })
        }
        // A float base with an integer exponent still gives the base's type.
        let shape = try Broadcasting.shape(of: [base, exponent], in: context)
        let a = base.floats, b = exponent.floats
        let left = Broadcasting.sourceIndices(from: base.shape, to: shape)
        let right = Broadcasting.sourceIndices(from: exponent.shape, to: shape)
        return [try Tensor(floats: zip(left, right).map { Foundation.pow(a[$0], b[$1]) }, shape: shape, dtype: base.dtype)]
    }

    private static func mod(_ context: OpContext) throws -> [Tensor] {
        let useFmod = try context.node.int("fmod", default: 0) == 1
        return try binary(
            context,
            float: { lhs, rhs in
                let remainder = fmodf(lhs, rhs)
                if useFmod { return remainder }
                return remainder != 0 && (remainder < 0) != (rhs < 0) ? remainder + rhs : remainder
            },
            int: { lhs, rhs in
                guard rhs != 0 else { throw context.failure("integer modulo by zero") }
                let remainder = lhs % rhs
                if useFmod { return remainder }
                return remainder != 0 && (remainder < 0) != (rhs < 0) ? remainder + rhs : remainder
            })
    }
}
