import Foundation
import KilnCore

/// The slow, obviously-correct INT8 FusedMatMul (see `KilnOperators+Int8.swift` for the node
/// form): quantize `A` with the same rounding as the fast kernel, multiply levels in int32
/// (exact), dequantize with `s_a·s_w[n]`, add the bias, apply the activation in double.
/// The oneDNN kernel must match it up to fp32 rounding of the epilogue.
public enum Int8MatMulReference {
    /// `Y [rows, N]` for fp32 `input [rows, K]`.
    /// - Parameter inputScale: static activation scale, or nil for `max|input| / 127`.
    public static func run(
        input: [Float], rows: Int, quantizedWeights: [Int8], weightScales: [Float], bias: [Float]?,
        inputSize: Int, outputSize: Int, activation: GemmActivation, inputScale: Float?
    ) -> [Float] {
        let count = rows * inputSize
        var levels = [Int8](repeating: 0, count: count)
        let scale = input.withUnsafeBufferPointer { values in
            let scale = inputScale ?? Int8Quantization.activationScale(absMax: Int8Quantization.absMax(values.baseAddress!, count: count))
            levels.withUnsafeMutableBufferPointer { Int8Quantization.quantize(values.baseAddress!, count: count, scale: scale, into: $0.baseAddress!) }
            return scale
        }
        var output = [Float](repeating: 0, count: rows * outputSize)
        var accumulator = [Int32](repeating: 0, count: outputSize)
        for m in 0..<rows {
            for n in 0..<outputSize { accumulator[n] = 0 }
            for k in 0..<inputSize {
                let a = Int32(levels[m * inputSize + k])
                if a == 0 { continue }
                for n in 0..<outputSize { accumulator[n] += a * Int32(quantizedWeights[k * outputSize + n]) }
            }
            for n in 0..<outputSize {
                let value = Double(accumulator[n]) * Double(scale) * Double(weightScales[n]) + Double(bias?[n] ?? 0)
                output[m * outputSize + n] = Float(activate(value, activation))
            }
        }
        return output
    }

    /// The reference kernel for an INT8 FusedMatMul node: `(A, Wq, bias?, weightScales) -> Y`.
    public static let kernel: ReferenceKernel = { context in
        let a = try context.input(0)
        let weights = try context.input(1)
        let scales = try context.input(KilnOperators.weightScalesInput)
        guard weights.rank == 2, a.shape.last == weights.shape[0], scales.count == weights.shape[1] else {
            throw context.failure("int8 FusedMatMul needs A [..., K], Wq [K, N], scales [N]; got \(a.signature), \(weights.signature), \(scales.signature)")
        }
        let activationName = try context.node.string("activation", default: "none")
        guard let activation = GemmActivation(rawValue: activationName) else { throw context.failure("unknown activation '\(activationName)'") }
        let inputScale = context.node.attributes[KilnOperators.inputScaleAttribute] == nil
            ? nil : try context.node.float(KilnOperators.inputScaleAttribute, default: 1)
        let (inputSize, outputSize) = (weights.shape[0], weights.shape[1])
        let rows = a.count / max(inputSize, 1)
        let values = run(
            input: a.floats, rows: rows, quantizedWeights: weights.ints.map { Int8(truncatingIfNeeded: $0) }, weightScales: scales.floats,
            bias: context.optionalInput(2)?.floats, inputSize: inputSize, outputSize: outputSize, activation: activation, inputScale: inputScale)
        return [try Tensor(floats: values, shape: Array(a.shape.dropLast()) + [outputSize])]
    }

    static func activate(_ x: Double, _ activation: GemmActivation) -> Double {
        switch activation {
        case .none: return x
        case .relu: return max(x, 0)
        case .tanh: return Foundation.tanh(x)
        case .gelu: return 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot()))
        case .geluTanh: return 0.5 * x * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
        }
    }
}
