/// Vectorized elementary functions on `SIMD16<Float>` for the SIMD kernels, plus unaligned
/// loads/stores and tail handling. Each function states its accuracy; the tests check it
/// against the C library over dense grids.
public enum VectorMath {
    public typealias Vector = SIMD16<Float>
    /// Lanes per vector.
    public static let width = 16

    @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>) -> Vector {
        UnsafeRawPointer(pointer).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func store(_ value: Vector, _ pointer: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: Vector.self)
    }

    /// Loads `count` (< 16) floats; the other lanes hold `fill`.
    @inline(__always)
    static func loadPartial(_ pointer: UnsafePointer<Float>, count: Int, fill: Float) -> Vector {
        var value = Vector(repeating: fill)
        for lane in 0..<count { value[lane] = pointer[lane] }
        return value
    }

    /// Stores the first `count` (< 16) lanes.
    @inline(__always)
    static func storePartial(_ value: Vector, _ pointer: UnsafeMutablePointer<Float>, count: Int) {
        for lane in 0..<count { pointer[lane] = value[lane] }
    }

    /// `e^x`, relative error ≤ 2 ulp on [-87, 88]; saturates to ~0 below and `Float.greatestFiniteMagnitude`-ish
    /// (e^88.3) above. Cephes' polynomial after range reduction `x = k·ln2 + r`.
    @inline(__always)
    public static func exp(_ x: Vector) -> Vector {
        let clamped = x.clamped(lowerBound: Vector(repeating: -87.33), upperBound: Vector(repeating: 88.37))
        // Round x·log2(e) to the nearest integer with the 1.5·2^23 trick; its low bits hold k.
        let magic: Float = 12_582_912
        let shifted = clamped * 1.442_695_04 + magic
        let k = shifted - magic
        var r = clamped - k * 0.693_359_375
        r = r - k * -2.121_944_4e-4
        var p = Vector(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_6e-2
        p = p * r + 1.666_666_55e-1
        p = p * r + 5.000_000_1e-1
        let poly = p * (r * r) + r + 1
        let integerK = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
        let scale = unsafeBitCast((integerK &+ 127) &<< 23, to: Vector.self)
        return poly * scale
    }

    /// `erf(x)`, absolute error ≤ 1e-6 (measured ≤ 4e-7): a rational minimax approximation
    /// `x·P(x²)/Q(x²)` on [-4, 4] (the one Eigen and XLA use); `|erf| = 1` in fp32 beyond.
    @inline(__always)
    public static func erf(_ x: Vector) -> Vector {
        let clamped = x.clamped(lowerBound: Vector(repeating: -4), upperBound: Vector(repeating: 4))
        let x2 = clamped * clamped
        var p = Vector(repeating: -2.726_142_258_013_06e-10)
        p = p * x2 + 2.770_681_424_959_02e-08
        p = p * x2 + -2.101_024_020_825_08e-06
        p = p * x2 + -5.692_506_394_623_46e-05
        p = p * x2 + -7.349_906_303_268_55e-04
        p = p * x2 + -2.954_599_808_540_25e-03
        p = p * x2 + -1.609_603_332_624_15e-02
        p = p * clamped
        var q = Vector(repeating: -1.456_607_184_649_96e-05)
        q = q * x2 + -2.133_740_552_789_05e-04
        q = q * x2 + -1.682_826_974_382_03e-03
        q = q * x2 + -7.373_329_167_204_68e-03
        q = q * x2 + -1.426_473_905_141_89e-02
        return p / q
    }

    /// `tanh(x) = 1 - 2/(e^{2x} + 1)`, absolute error ≤ 3e-7.
    @inline(__always)
    public static func tanh(_ x: Vector) -> Vector {
        1 - 2 / (exp(x + x) + 1)
    }

    /// GELU, erf form: `0.5·x·(1 + erf(x/√2))`.
    @inline(__always)
    public static func gelu(_ x: Vector) -> Vector {
        0.5 * x * (1 + erf(x * 0.707_106_781_186_547_5))
    }

    /// GELU, tanh form: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, computed as the
    /// equivalent `x / (1 + e^{-2u})`, which has no cancellation.
    @inline(__always)
    public static func geluTanh(_ x: Vector) -> Vector {
        let u = 0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x)
        return x / (1 + exp(-(u + u)))
    }
}
