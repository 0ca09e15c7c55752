import Foundation
import KilnCore

/// Operators that create tensors: `Constant`, `ConstantOfShape`, `Range`.
enum GeneratorKernels {
    static func register(into table: inout [String: ReferenceKernel]) {
        table["Constant"] = constant
        table["ConstantOfShape"] = constantOfShape
        table["Range"] = range
    }

    private static func constant(_ context: OpContext) throws -> [Tensor] {
        let node = context.node
        if let value = try node.tensor("value") { return [value] }
        switch (node.attributes["value_float"], node.attributes["value_floats"], node.attributes["value_int"], node.attributes["value_ints"]) {
        case (.float(let value)?, _, _, _): return [Tensor.scalar(value)]
        case (_, .floats(let values)?, _, _): return [try Tensor(floats: values, shape: [values.count])]
        case (_, _, .int(let value)?, _): return [Tensor.scalar(value)]
        case (_, _, _, .ints(let values)?): return [try Tensor(ints: values, shape: [values.count])]
        default: throw context.failure("has no supported value attribute (value, value_float(s), value_int(s))")
        }
    }

    private static func constantOfShape(_ context: OpContext) throws -> [Tensor] {
        let shape = try context.input(0).ints.map(Int.init)
        guard shape.allSatisfy({ $0 >= 0 }) else { throw context.failure("shape \(shape) has a negative dimension") }
        let fill = try context.node.tensor("value") ?? Tensor.scalar(Float(0))
        guard fill.count == 1 else { throw context.failure("value must hold exactly one element") }
        let count = Tensor.elementCount(of: shape)
        return [try fill.picking([Int](repeating: 0, count: count), shape: shape)]
    }

    /// `start, start+delta, ...` while before `limit`; count = max(ceil((limit-start)/delta), 0).
    private static func range(_ context: OpContext) throws -> [Tensor] {
        let start = try context.input(0)
        let limit = try context.input(1)
        let delta = try context.input(2)
        if start.dtype.isInteger {
            let (first, end, step) = (start.ints[0], limit.ints[0], delta.ints[0])
            guard step != 0 else { throw context.failure("delta cannot be 0") }
            let count = Swift.max(0, Int((Double(end - first) / Double(step)).rounded(.up)))
            return [try Tensor(ints: (0..<count).map { first + Int64($0) * step }, shape: [count], dtype: start.dtype)]
        }
        let (first, end, step) = (start.floats[0], limit.floats[0], delta.floats[0])
        guard step != 0 else { throw context.failure("delta cannot be 0") }
        let count = Swift.max(0, Int(((end - first) / step).rounded(.up)))
        guard count < 1 << 31 else { throw context.failure("range would have \(count) elements") }
        return [try Tensor(floats: (0..<count).map { first + Float($0) * step }, shape: [count], dtype: start.dtype)]
    }
}
