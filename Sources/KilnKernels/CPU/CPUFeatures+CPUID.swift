import CDNNL
import KilnCore

/// Run-time detection of the instruction sets the CPU kernels dispatch on, with `cpuid` (and
/// `xgetbv`, so a feature counts only when the OS also saves its registers), expressed as
/// KilnCore's ``CPUFeatures`` flag set (Linux `/proc/cpuinfo` names) so plans and kernels
/// speak the same language.
extension CPUFeatures {
    /// The features `cpuid` reports for this CPU (read once): `avx2`, `fma`, `avx512f`,
    /// `avx512dq`, `avx512bw`, `avx512vl`, `avx512_vnni`, `avx512_bf16`, `amx_tile`, `amx_bf16`.
    public static let detected: CPUFeatures = detectWithCPUID()

    /// AVX-512 F, DQ, BW and VL (what oneDNN calls `avx512_core`: its AVX-512 GEMM kernels).
    public var hasAVX512Core: Bool {
        flags.isSuperset(of: ["avx512f", "avx512dq", "avx512bw", "avx512vl"])
    }

    /// AVX512_BF16 (`vdpbf16ps`) is usable: the bf16 GEMM path needs it.
    public var hasAVX512BF16: Bool {
        flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512_bf16"])
    }

    /// Reads the features with `cpuid`/`xgetbv`.
    public static func detectWithCPUID() -> CPUFeatures {
        func leaf(_ leaf: UInt32, _ subleaf: UInt32) -> (eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32) {
            var registers: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
            withUnsafeMutableBytes(of: &registers) { _ = kiln_cpuid(leaf, subleaf, $0.baseAddress!.assumingMemoryBound(to: UInt32.self)) }
            return registers
        }
        func bit(_ value: UInt32, _ index: UInt32) -> Bool { (value >> index) & 1 == 1 }
        let basic = leaf(1, 0)
        let extended = leaf(7, 0)
        let extended1 = leaf(7, 1)
        let xcr0 = kiln_xgetbv0()
        let osSavesYMM = xcr0 & 0x6 == 0x6
        let osSavesZMM = xcr0 & 0xE6 == 0xE6
        let osSavesTiles = xcr0 & 0x60000 == 0x60000
        var flags: Set<String> = []
        func add(_ name: String, _ present: Bool) { if present { flags.insert(name) } }
        add("fma", osSavesYMM && bit(basic.ecx, 12))
        add("avx2", osSavesYMM && bit(extended.ebx, 5))
        add("avx512f", osSavesZMM && bit(extended.ebx, 16))
        add("avx512dq", osSavesZMM && bit(extended.ebx, 17))
        add("avx512bw", osSavesZMM && bit(extended.ebx, 30))
        add("avx512vl", osSavesZMM && bit(extended.ebx, 31))
        add("avx512_vnni", osSavesZMM && bit(extended.ecx, 11))
        add("avx512_bf16", osSavesZMM && bit(extended1.eax, 5))
        add("amx_tile", osSavesTiles && bit(extended.edx, 24))
        add("amx_bf16", osSavesTiles && bit(extended.edx, 22))
        return CPUFeatures(flags: flags)
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

    /// Throws unless this CPU can run bf16 kernels.
    /// - Parameter what: what needs bf16, for the message ("a bf16 plan", "FusedMatMul 'fc1' in bf16").
    public func requireBFloat16(for what: String) throws {
        guard hasAVX512BF16 else {
            let present = flags.sorted().joined(separator: ", ")
            throw KilnError.invalidInput(
                "\(what) needs bf16 arithmetic, but this CPU has no AVX512_BF16 (cpuid reports: \(present.isEmpty ? "none of the AVX-512 features" : present)). "
                    + "Build the plan with --precision fp32, or run it on a CPU with AVX512_BF16 "
                    + "(Intel Cooper Lake/Sapphire Rapids or later, AMD Zen 4 or later).")
        }
    }
}
