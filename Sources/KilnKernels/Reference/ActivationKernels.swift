import Foundation
import KilnCore

/// Activation functions and normalizations used by transformer encoders.
enum ActivationKernels {
    static func register(into table: inout [String: ReferenceKernel]) {
        table["Relu"] = { try UnaryKernels.floatMap($0) { Swift.max($0, 0) } }
        table["Sigmoid"] = { try UnaryKernels.floatMap($0, sigmoid) }
        table["Tanh"] = { try UnaryKernels.floatMap($0, tanhf) }
        table["Gelu"] = gelu
        table["Softmax"] = { try softmax($0) }
        table["LogSoftmax"] = { try softmax($0, logarithm: true) }
        table["LayerNormalization"] = layerNormalization
    }

    /// The logistic function, written to avoid overflow for large negative inputs.
    static func sigmoid(_ x: Float) -> Float {
        x >= 0 ? 1 / (1 + expf(-x)) : expf(x) / (1 + expf(x))
    }

    /// GELU, exact (`0.5x(1+erf(x/√2))`) or with the tanh approximation.
    static func gelu(_ context: OpContext) throws -> [Tensor] {
        let approximate = try context.node.string("approximate", default: "none")
        switch approximate {
        case "none":
            return try UnaryKernels.floatMap(context) { 0.5 * $0 * (1 + erff($0 / Float(2).squareRoot())) }
        case "tanh":
            let scale = Float(2 / Double.pi).squareRoot()
            return try UnaryKernels.floatMap(context) { 0.5 * $0 * (1 + tanhf(scale * ($0 + 0.044715 * $0 * $0 * $0))) }
        default:
            throw context.failure("unknown approximate='\(approximate)' (expected 'none' or 'tanh')")
        }
    }

    /// Softmax (or LogSoftmax). Before opset 13 the input is viewed as 2-D at `axis` (default 1) and normalized
    /// over everything from `axis` on; from 13 it is normalized along `axis` (default -1).
    static func softmax(_ context: OpContext, logarithm: Bool = false) throws -> [Tensor] {
        let input = try context.input(0)
        let legacy = context.opset < 13
        let axis = try context.axis(try context.node.int("axis", default: legacy ? 1 : -1), rank: input.rank)
        let values = input.floats
        let outer = input.shape[..<axis].reduce(1, *)
        let (length, inner) = legacy
            ? (input.shape[axis...].reduce(1, *), 1)
            : (input.shape[axis], input.shape[(axis + 1)...].reduce(1, *))
        var output = [Float](repeating: 0, count: values.count)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * length * inner + i
                var maximum = -Float.infinity
                for k in 0..<length { maximum = Swift.max(maximum, values[base + k * inner]) }
                var sum: Float = 0
                for k in 0..<length {
                    let e = expf(values[base + k * inner] - maximum)
                    output[base + k * inner] = e
                    sum += e
                }
                for k in 0..<length {
                    let index = base + k * inner
                    output[index] = logarithm ? values[index] - maximum - logf(sum) : output[index] / sum
                }
            }
        }
        return [try Tensor(floats: output, shape: input.shape, dtype: input.dtype)]
    }

    /// LayerNormalization (opset 17): normalizes over the axes from `axis` to the end, then
    /// applies scale and optional bias; optionally also returns Mean and InvStdDev.
    static func layerNormalization(_ context: OpContext) throws -> [Tensor] {
        let input = try context.input(0)
        let scale = try context.input(1).floats
        let bias = context.optionalInput(2)?.floats
        let axis = try context.axis(try context.node.int("axis", default: -1), rank: input.rank)
        let epsilon = try context.node.float("epsilon", default: 1e-5)
        let width = input.shape[axis...].reduce(1, *)
        guard scale.count == width, bias.map({ $0.count == width }) ?? true else {
            throw context.failure("scale/bias must have \(width) elements to match \(input.signature) at axis \(axis)")
        }
        let rows = input.count / Swift.max(width, 1)
        let values = input.floats
        var output = [Float](repeating: 0, count: values.count)
        var means = [Float](repeating: 0, count: rows)
        var inverseDeviations = [Float](repeating: 0, count: rows)
        for row in 0..<rows {
            let slice = values[(row * width)..<((row + 1) * width)]
            let mean = slice.reduce(0, +) / Float(width)
            let variance = slice.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(width)
            let inverse = 1 / (variance + epsilon).squareRoot()
            for (k, value) in slice.enumerated() {
                output[row * width + k] = (value - mean) * inverse * scale[k] + (bias?[k] ?? 0)
            }
            means[row] = mean
            inverseDeviations[row] = inverse
        }
        let statisticsShape = input.shape[..<axis] + [Int](repeating: 1, count: input.rank - axis)
        return [
            try Tensor(floats: output, shape: input.shape, dtype: input.dtype),
            try Tensor(floats: means, shape: Array(statisticsShape)),
            try Tensor(floats: inverseDeviations, shape: Array(statisticsShape)),
        ]
    }
}
