import CDNNL
import KilnCore

/// The instruction-set features of the CPU Kiln runs on, read with `cpuid` (and `xgetbv`, so a
/// feature counts only when the OS also saves its registers).
///
/// Plans record the features they need; kernels check them before picking a code path, and
/// asking for bf16 on a CPU without AVX512_BF16 is a ``KilnError`` rather than a slow or wrong
/// answer.
public struct CPUFeatures: Sendable, Equatable, CustomStringConvertible {
    /// AVX2 and FMA3 (x86-64-v3).
    public let hasAVX2: Bool
    /// AVX-512 Foundation plus the BW/DQ/VL subsets (x86-64-v4, oneDNN's `avx512_core`).
    public let hasAVX512Core: Bool
    /// AVX-512 VNNI (int8 dot products).
    public let hasAVX512VNNI: Bool
    /// AVX512_BF16 (`vdpbf16ps`): the bf16 GEMM path needs it.
    public let hasAVX512BF16: Bool
    /// AMX tiles with bf16 (Sapphire Rapids and later).
    public let hasAMXBF16: Bool

    /// Creates a feature set by hand (tests, plan files).
    public init(hasAVX2: Bool, hasAVX512Core: Bool, hasAVX512VNNI: Bool, hasAVX512BF16: Bool, hasAMXBF16: Bool) {
        self.hasAVX2 = hasAVX2
        self.hasAVX512Core = hasAVX512Core
        self.hasAVX512VNNI = hasAVX512VNNI
        self.hasAVX512BF16 = hasAVX512BF16
        self.hasAMXBF16 = hasAMXBF16
    }

    /// The features of the CPU this process runs on (read once).
    public static let current: CPUFeatures = detect()

    /// Reads the features with `cpuid`/`xgetbv`.
    public static func detect() -> CPUFeatures {
        var leaf1: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        var leaf7: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        var leaf7s1: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &leaf1) { _ = kiln_cpuid(1, 0, $0.baseAddress!.assumingMemoryBound(to: UInt32.self)) }
        withUnsafeMutableBytes(of: &leaf7) { _ = kiln_cpuid(7, 0, $0.baseAddress!.assumingMemoryBound(to: UInt32.self)) }
        withUnsafeMutableBytes(of: &leaf7s1) { _ = kiln_cpuid(7, 1, $0.baseAddress!.assumingMemoryBound(to: UInt32.self)) }
        let xcr0 = kiln_xgetbv0()
        func bit(_ value: UInt32, _ index: UInt32) -> Bool { (value >> index) & 1 == 1 }
        let osSavesYMM = xcr0 & 0x6 == 0x6
        let osSavesZMM = xcr0 & 0xE6 == 0xE6
        let osSavesTiles = xcr0 & 0x60000 == 0x60000
        let (_, _, ecx1, _) = leaf1
        let (_, ebx7, ecx7, edx7) = leaf7
        let avx2 = osSavesYMM && bit(ebx7, 5) && bit(ecx1, 12)
        // avx512f, avx512dq, avx512bw, avx512vl
        let avx512Core = osSavesZMM && bit(ebx7, 16) && bit(ebx7, 17) && bit(ebx7, 30) && bit(ebx7, 31)
        return CPUFeatures(
            hasAVX2: avx2,
            hasAVX512Core: avx512Core,
            hasAVX512VNNI: avx512Core && bit(ecx7, 11),
            hasAVX512BF16: avx512Core && bit(leaf7s1.0, 5),
            hasAMXBF16: osSavesTiles && bit(edx7, 22) && bit(edx7, 24))
    }

    /// The highest instruction-set level oneDNN will dispatch to on this CPU
    /// (`dnnl_get_effective_cpu_isa`), e.g. `avx2`, `avx512_core_bf16`, `avx512_core_amx`.
    public static var oneDNNISA: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_sse41: return "sse41"
        case dnnl_cpu_isa_avx: return "avx"
        case dnnl_cpu_isa_avx2: return "avx2"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case let other: return "isa(0x\(String(other.rawValue, radix: 16)))"
        }
    }

    /// Throws unless the CPU can run bf16 kernels.
    /// - Parameter what: what needs bf16, for the message ("a bf16 plan", "FusedMatMul 'fc1'").
    public func requireBFloat16(for what: String) throws {
        guard hasAVX512BF16 else {
            throw KilnError.invalidInput(
                "\(what) needs bf16 arithmetic, but this CPU has no AVX512_BF16 (features: \(self)). "
                    + "Build the plan with --precision fp32, or run it on a CPU with AVX512_BF16 "
                    + "(Intel Cooper Lake/Sapphire Rapids or later, AMD Zen 4 or later).")
        }
    }

    public var description: String {
        var names: [String] = []
        if hasAVX2 { names.append("avx2") }
        if hasAVX512Core { names.append("avx512_core") }
        if hasAVX512VNNI { names.append("avx512_vnni") }
        if hasAVX512BF16 { names.append("avx512_bf16") }
        if hasAMXBF16 { names.append("amx_bf16") }
        return names.isEmpty ? "baseline x86-64" : names.joined(separator: ", ")
    }
}
