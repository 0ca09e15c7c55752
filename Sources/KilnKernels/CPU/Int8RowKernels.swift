import CKilnSIMD
import KilnCore

/// The element-wise steps around the INT8 GEMM (``Int8MatMulKernel``): quantizing fp32
/// activations to the u8 form the GEMM takes, and the dequantization epilogue. Each has an AVX2
/// version (`kiln_int8_avx2.c`) and a portable Swift one here, chosen by `isa`; both agree bit for
/// bit with ``Int8Quantization/quantize(_:count:scale:into:)`` plus 128 (quantize) and to fp32
/// rounding with the double epilogue of ``Int8MatMulReference`` (dequantize).
///
/// Single-threaded row functions: ``Int8MatMulKernel`` runs them per row or column slice on ``ComputePool``.
public enum Int8RowKernels {
    /// `out[i] = level(x[i] / scale) + 128`, levels rounded half to even and clamped to ±127
    /// (NaN → 0): the s8 level shifted into u8.
    public static func quantizeU8(
        _ input: UnsafePointer<Float>, count: Int, inverseScale: Float, into output: UnsafeMutablePointer<UInt8>,
        isa: KernelISA = .detected
    ) {
        if isa == .avx2 {
            kiln_avx2_quantize_u8(input, output, count, inverseScale)
            return
        }
        for index in 0..<count { output[index] = UInt8(level(input[index] * inverseScale) + 128) }
    }

    /// One activation level: clamp to ±127, round half to even; NaN → 0 (clamping first is the
    /// same as rounding first, the bounds being integers).
    @inline(__always)
    static func level(_ scaled: Float) -> Int {
        guard !scaled.isNaN else { return 0 }
        return Int(min(max(scaled, -127), 127).rounded(.toNearestOrEven))
    }

    /// The largest `|x|` of `count` floats (NaN skipped).
    public static func absMax(_ input: UnsafePointer<Float>, count: Int, isa: KernelISA = .detected) -> Float {
        if isa == .avx2 { return kiln_avx2_abs_max(input, count) }
        return Int8Quantization.absMax(input, count: count)
    }

    /// `out[r, c] = Float(acc[r, c] + compensation[c]) · scales[c] + bias[c]` for `rows × columns`
    /// int32 accumulators, then `gelu` (when given) row by row while the row is in cache — the
    /// same ``GeluKernel`` arithmetic as a separate pass, so the values are identical; `output` may
    /// be `accumulators` reinterpreted (in place).
    public static func dequantize(
        _ accumulators: UnsafePointer<Int32>, into output: UnsafeMutablePointer<Float>, rows: Int, columns: Int,
        compensation: UnsafePointer<Int32>, scales: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        gelu: GeluKernel.Approximation? = nil, isa: KernelISA = .detected
    ) {
        if isa == .avx2 {
            let form: Int32 = gelu.map { $0 == .tanh ? 2 : 1 } ?? 0
            kiln_avx2_int8_dequantize(accumulators, output, rows, columns, compensation, scales, bias, form)
            return
        }
        for row in 0..<rows {
            let base = row * columns
            for column in 0..<columns {
                let value = Float(accumulators[base + column] &+ compensation[column]) * scales[column]
                output[base + column] = bias.map { value + $0[column] } ?? value
            }
            if let gelu {
                GeluKernel.run(input: output + base, output: output + base, count: columns, approximation: gelu, width: 1, isa: isa)
            }
        }
    }
}
