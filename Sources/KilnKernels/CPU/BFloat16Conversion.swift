/// Conversion between fp32 and bf16 (stored as the upper 16 bits of an IEEE float, in `UInt16`).
public enum BFloat16Conversion {
    /// Rounds `count` floats to bf16, to nearest even (NaN stays NaN).
    public static func convert(_ source: UnsafePointer<Float>, to destination: UnsafeMutablePointer<UInt16>, count: Int) {
        var index = 0
        while index + 16 <= count {
            let bits = UnsafeRawPointer(source + index).loadUnaligned(as: SIMD16<UInt32>.self)
            let rounded = bfloat16Bits(bits)
            UnsafeMutableRawPointer(destination + index).storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: rounded), as: SIMD16<UInt16>.self)
            index += 16
        }
        while index < count {
            destination[index] = roundToBFloat16(source[index])
            index += 1
        }
    }

    /// Widens `count` bf16 values to fp32 (exact).
    public static func convert(_ source: UnsafePointer<UInt16>, to destination: UnsafeMutablePointer<Float>, count: Int) {
        for index in 0..<count {
            destination[index] = Float(bitPattern: UInt32(source[index]) << 16)
        }
    }

    /// One float rounded to bf16 bits.
    @inline(__always)
    public static func roundToBFloat16(_ value: Float) -> UInt16 {
        if value.isNaN { return 0x7FC0 }
        let bits = value.bitPattern
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    @inline(__always)
    static func bfloat16Bits(_ bits: SIMD16<UInt32>) -> SIMD16<UInt32> {
        let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
        let isNaN = (bits & 0x7FFF_FFFF) .> 0x7F80_0000
        return rounded.replacing(with: 0x7FC0, where: isNaN)
    }
}
