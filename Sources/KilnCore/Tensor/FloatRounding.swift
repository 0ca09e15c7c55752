/// Rounding of `Float` values to the narrower floating types Kiln stores.
///
/// The reference executor keeps fp16 and bf16 tensors as `Float` arrays whose values are
/// exactly representable in the narrow type; these helpers do the round-to-nearest-even step.
public enum FloatRounding {
    /// Rounds to the nearest IEEE half-precision value (ties to even), as a `Float`.
    @inlinable
    public static func toFloat16(_ value: Float) -> Float {
        Float(Float16(value))
    }

    /// Rounds to the nearest bfloat16 value (ties to even; NaN stays NaN), as a `Float`.
    @inlinable
    public static func toBFloat16(_ value: Float) -> Float {
        Float(bitPattern: bfloat16Bits(value) << 16)
    }

    /// The 16 bits of the bfloat16 nearest to `value` (ties to even).
    @inlinable
    public static func bfloat16Bits(_ value: Float) -> UInt32 {
        if value.isNaN { return 0x7FC0 }
        let bits = value.bitPattern
        let roundingBias: UInt32 = 0x7FFF + ((bits >> 16) & 1)
        return (bits &+ roundingBias) >> 16
    }

    /// Rounds `value` to the precision of `dtype` (identity for float32 and float64).
    @inlinable
    public static func round(_ value: Float, to dtype: DType) -> Float {
        switch dtype {
        case .float16: return toFloat16(value)
        case .bfloat16: return toBFloat16(value)
        default: return value
        }
    }
}
