/// How an INT8 `FusedMatMul` is written in a graph (and so in a plan file).
///
/// `FusedMatMul(A, Wq, bias?, weightScales)` with `precision = "int8"`:
/// - `Wq`: int8 `[K, N]` constant, symmetric levels (7-bit, see KilnKernels' `Int8Quantization`);
/// - `weightScales`: fp32 `[N]` constant, `W ≈ Wq[k, n] · weightScales[n]`;
/// - attribute `input_scale` (float): the static activation scale from calibration,
///   `A ≈ clamp(round(A / input_scale), ±127) · input_scale`; absent = dynamic scaling (the
///   scale is `max|A| / 127` of each call).
/// The result is fp32, as for every FusedMatMul. Engines and the reference both implement it.
extension KilnOperators {
    /// The `precision` value of an INT8 FusedMatMul.
    public static let int8Precision = "int8"

    /// Float attribute on INT8 FusedMatMul: the static activation scale (absent: dynamic).
    public static let inputScaleAttribute = "input_scale"

    /// Input position of the weight scales of an INT8 FusedMatMul.
    public static let weightScalesInput = 3
}

extension Node {
    /// Whether this is a `kiln::FusedMatMul` marked `precision = "int8"`.
    public var isInt8MatMul: Bool {
        domain == KilnOperators.domain && opType == KilnOperators.fusedMatMul
            && attributes[KilnOperators.precisionAttribute] == .string(KilnOperators.int8Precision)
    }
}
