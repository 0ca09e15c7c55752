
/// Symmetric INT8 quantization as Kiln's int8 GEMMs use it: `q = clamp(round(x / scale), -L, L)`
/// with `L = 127` for activations and ``Int8Quantization/weightLevels`` for weights, and
/// `x ≈ q · scale`. Shared by the oneDNN kernel (KilnKernels' `Int8MatMulKernel`) and the reference
/// (`Int8MatMulReference`) and the quantization pass, so all round identically and differ only in accumulation order
/// (which is exact in int32).
public enum Int8Quantization {
    /// Largest activation level (`s8`).
    public static let activationLevels: Float = 127

    /// Largest weight level. 63 (7 bits) and not 127: on CPUs without VNNI, oneDNN's int8
    /// GEMM multiplies u8×s8 pairs with `vpmaddubsw`, whose 16-bit pair sums saturate once
    /// `|a₁w₁ + a₂w₂| > 32767` (255·127·2 = 64770 can). With 7-bit weights the worst pair is
    /// 255·63·2 = 32130, so results are exact; ONNX Runtime's `reduce_range` does the same.
    public static let weightLevels: Float = 63

    /// The scale that maps `absMax` to the top activation level (1 when `absMax` is 0 or not finite).
    public static func activationScale(absMax: Float) -> Float {
        absMax > 0 && absMax.isFinite ? absMax / activationLevels : 1
    }

    /// Per-output-channel weight scales of a row-major `[inputSize, outputSize]` matrix.
    public static func weightScales(_ weights: UnsafeBufferPointer<Float>, inputSize: Int, outputSize: Int) -> [Float] {
        var absMax = [Float](repeating: 0, count: outputSize)
        for k in 0..<inputSize {
            for n in 0..<outputSize { absMax[n] = max(absMax[n], abs(weights[k * outputSize + n])) }
        }
        return absMax.map { $0 > 0 && $0.isFinite ? $0 / weightLevels : 1 }
    }

    /// Quantizes a row-major `[inputSize, outputSize]` matrix with per-column `scales`.
    public static func quantizeWeights(
        _ weights: UnsafeBufferPointer<Float>, scales: [Float], inputSize: Int, outputSize: Int
    ) -> [Int8] {
        var quantized = [Int8](repeating: 0, count: inputSize * outputSize)
        for k in 0..<inputSize {
            for n in 0..<outputSize {
                quantized[k * outputSize + n] = level(weights[k * outputSize + n] / scales[n], limit: weightLevels)
            }
        }
        return quantized
    }

    /// Quantizes `count` activations with one `scale` into `output`. NaN becomes level 0 in both
    /// the 8-wide loop and the scalar tail (and in the AVX2 u8 kernel): a NaN then adds nothing
    /// to the GEMM's dot products instead of an arbitrary full-scale value of one sign, and the
    /// level of an element never depends on its position in the buffer.
    public static func quantize(_ input: UnsafePointer<Float>, count: Int, scale: Float, into output: UnsafeMutablePointer<Int8>) {
        let inverse = 1 / scale
        var index = 0
        // Eight at a time: the compiler turns this into AVX2 multiplies, rounds and packs.
        while index + 8 <= count {
            let scaled = UnsafeRawPointer(input + index).loadUnaligned(as: SIMD8<Float>.self) * inverse
            // NaN → 0 before clamping: min/max would otherwise turn it into -127.
            let raw = scaled.replacing(with: 0, where: scaled .!= scaled)
            let rounded = raw.rounded(.toNearestOrEven).clamped(lowerBound: SIMD8(repeating: -activationLevels), upperBound: SIMD8(repeating: activationLevels))
            let levels = SIMD8<Int8>(truncatingIfNeeded: SIMD8<Int32>(rounded))
            UnsafeMutableRawPointer(output + index).storeBytes(of: levels, as: SIMD8<Int8>.self)
            index += 8
        }
        while index < count {
            output[index] = level(input[index] * inverse, limit: activationLevels)
            index += 1
        }
    }

    /// The largest `|x|` of `count` values (NaN-free input assumed; NaN compares false and is skipped).
    public static func absMax(_ input: UnsafePointer<Float>, count: Int) -> Float {
        var best = SIMD8<Float>(repeating: 0)
        var index = 0
        while index + 8 <= count {
            let values = UnsafeRawPointer(input + index).loadUnaligned(as: SIMD8<Float>.self)
            best = pointwiseMax(best, pointwiseMax(values, -values))
            index += 8
        }
        var result = best.max()
        while index < count {
            result = max(result, abs(input[index]))
            index += 1
        }
        return result
    }

    /// One value's level: round half to even, then clamp to `±limit`.
    @inline(__always)
    static func level(_ scaled: Float, limit: Float) -> Int8 {
        guard scaled.isFinite else { return scaled.isNaN ? 0 : (scaled > 0 ? Int8(limit) : -Int8(limit)) }
        return Int8(min(max(scaled.rounded(.toNearestOrEven), -limit), limit))
    }
}
