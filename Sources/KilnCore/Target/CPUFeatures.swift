import Foundation

/// The instruction-set extensions of the CPU Kiln runs on, as Linux reports them in
/// `/proc/cpuinfo` (`avx2`, `avx512f`, `avx512_bf16`, `avx512_vnni`, `amx_bf16`, ...).
///
/// Plans record the features their kernels need; loading one on a CPU without them is a clear
/// error instead of an illegal-instruction crash.
public struct CPUFeatures: Sendable, Equatable {
    /// Feature flags, lowercase, as the kernel names them.
    public let flags: Set<String>

    public init(flags: Set<String>) {
        self.flags = flags
    }

    /// The features of this machine's CPU (empty when `/proc/cpuinfo` cannot be read).
    public static let current: CPUFeatures = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
            let colon = line.firstIndex(of: ":")
        else { return CPUFeatures(flags: []) }
        return CPUFeatures(flags: Set(line[line.index(after: colon)...].split(separator: " ").map(String.init)))
    }()

    /// Whether bf16 dot products run natively (AVX512_BF16 or AMX).
    public var hasBF16: Bool { flags.contains("avx512_bf16") || flags.contains("amx_bf16") }
    /// Whether int8 dot products run natively (AVX512_VNNI or AVX_VNNI).
    public var hasVNNI: Bool { flags.contains("avx512_vnni") || flags.contains("avx_vnni") }

    /// A short name for the best vector ISA present, recorded in plans.
    public var isaLevel: String {
        if flags.contains("avx512f") { return hasBF16 ? "avx512_bf16" : (hasVNNI ? "avx512_vnni" : "avx512") }
        if flags.contains("avx2") { return "avx2" }
        return "sse"
    }

    /// The required features this CPU lacks.
    public func missing(_ required: [String]) -> [String] {
        required.filter { !flags.contains($0) }
    }
}
