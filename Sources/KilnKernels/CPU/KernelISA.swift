#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKilnSIMD
import KilnCore

/// Which instruction set the SIMD kernels (LayerNorm, softmax, GELU, attention, embeddings)
/// run with, chosen at run time.
///
/// The package compiles for baseline x86-64 (so the binary runs on any x86-64 CPU); the AVX2+FMA
/// kernels live in the `CKilnSIMD` C target, each function compiled for AVX2 on its own, and are
/// only called when ``detected`` says the CPU (and OS) supports AVX2 and FMA. Every kernel takes
/// an `isa` parameter defaulting to ``detected`` so that tests can run both paths on one machine.
public enum KernelISA: String, Sendable, CaseIterable {
    /// Portable Swift SIMD code (SSE2 on x86-64, NEON on arm64).
    case baseline
    /// The C kernels compiled for AVX2 + FMA.
    case avx2

    /// The best level this CPU runs: `.avx2` when cpuid reports AVX2 and FMA with OS support for
    /// the YMM registers, else `.baseline`. `KILN_SIMD=baseline` in the environment forces the
    /// portable kernels (for comparisons).
    public static let detected: KernelISA = {
        if let forced = getenv("KILN_SIMD"), String(cString: forced) == "baseline" { return .baseline }
        return isSupported(.avx2) ? .avx2 : .baseline
    }()

    /// Whether `isa` can run on this CPU (and is compiled into this binary).
    public static func isSupported(_ isa: KernelISA) -> Bool {
        switch isa {
        case .baseline: return true
        case .avx2:
            return kiln_simd_has_avx2_build() == 1 && CPUFeatures.detected.flags.isSuperset(of: ["avx2", "fma"])
        }
    }
}
