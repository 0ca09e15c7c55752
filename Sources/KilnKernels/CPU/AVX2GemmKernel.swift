import CKilnSIMD
import KilnCore

/// `Y = activation(A·W + bias)` in fp32 on Kiln's own AVX2+FMA GEMM (`kiln_sgemm_avx2.c`), with
/// `W` packed once at construction into 16-column panels.
///
/// Why it exists: Debian's oneDNN 2.6.3 has no AVX2 brgemm, so every fp32 matmul runs as
/// `gemm:jit`, which re-packs `W` on every call; this kernel streams the panels it laid out once.
/// ``FusedMatMulKernel`` delegates here for fp32 on CPUs with AVX2 and FMA (see
/// ``GemmBackend``). Immutable after construction; safe to share between threads.
public final class AVX2GemmKernel: @unchecked Sendable {
    /// `K`.
    public let inputSize: Int
    /// `N`.
    public let outputSize: Int
    /// The epilogue.
    public let activation: GemmActivation

    private let packed: UnsafeMutablePointer<Float>
    private let packedCount: Int
    private let bias: UnsafeMutablePointer<Float>?

    /// Whether this CPU (and build) can run the kernel: AVX2 and FMA, and `KILN_SIMD` not
    /// forcing the baseline kernels.
    public static var isSupported: Bool { KernelISA.detected == .avx2 }

    /// Packs `weights` (`inputSize × outputSize`, row-major, copied) and copies `bias`.
    /// Sizes must already be checked by the caller (``FusedMatMulKernel`` does).
    init(weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?, inputSize: Int, outputSize: Int,
         activation: GemmActivation) {
        precondition(inputSize > 0 && outputSize > 0 && weights.count == inputSize * outputSize)
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.activation = activation
        packedCount = kiln_sgemm_packed_count(inputSize, outputSize)
        // 64-byte alignment: the micro-kernel's aligned panel loads need 32.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(packedCount, 16) * 4, alignment: 64)
        packed = raw.bindMemory(to: Float.self, capacity: max(packedCount, 16))
        kiln_sgemm_pack(weights.baseAddress!, inputSize, outputSize, packed)
        if let bias {
            let storage = UnsafeMutablePointer<Float>.allocate(capacity: outputSize)
            storage.update(from: bias.baseAddress!, count: outputSize)
            self.bias = storage
        } else {
            self.bias = nil
        }
    }

    deinit {
        packed.deallocate()
        bias?.deallocate()
    }

    /// Bytes of the packed panels.
    public var packedWeightsSize: Int { packedCount * MemoryLayout<Float>.size }

    /// The packed panels (16 columns × K each, zero-padded at the N edge).
    public var packedWeightBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: packed, count: packedWeightsSize) }

    /// Panels of 16 output columns.
    var panelCount: Int { (outputSize + Int(KILN_SGEMM_PANEL) - 1) / Int(KILN_SGEMM_PANEL) }

    /// Computes `Y = activation(A·W + bias)`.
    /// - Parameters:
    ///   - input: `A`, `rows × inputSize` fp32.
    ///   - rows: `M`; nothing happens for 0.
    ///   - output: `Y`, `rows × outputSize` fp32; must not overlap `input`.
    ///   - threads: at most this many chunks run concurrently (default ``CPUThreading/threadCount``).
    public func run(input: UnsafePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>,
                    threads: Int = CPUThreading.threadCount) {
        guard rows > 0 else { return }
        let split = Self.split(rows: rows, panels: panelCount, inputSize: inputSize, threads: threads)
        let code = activationCode
        CPUThreading.parallelChunks(split.chunks) { chunk, chunks in
            let rowRange = split.byRows ? Self.share(rows, chunk, chunks, multiple: 6) : 0..<rows
            let panelRange = split.byRows ? 0..<panelCount : Self.share(panelCount, chunk, chunks, multiple: 1)
            guard !rowRange.isEmpty, !panelRange.isEmpty else { return }
            kiln_sgemm_avx2(input, rowRange.lowerBound, rowRange.upperBound, packed, inputSize, outputSize,
                            panelRange.lowerBound, panelRange.upperBound, bias, code, output)
        }
    }

    /// How to cut one GEMM: one chunk when it is too small to pay for a parallel region (about
    /// 5 µs of work), by panels when there are enough for every thread (each thread then reads
    /// only its share of `W`, what batch-1 GEMMs are bound by), else by rows.
    static func split(rows: Int, panels: Int, inputSize: Int, threads: Int) -> (chunks: Int, byRows: Bool) {
        let work = rows * panels * 16 * inputSize
        guard threads > 1, work >= 128 * 1024 else { return (1, false) }
        if panels >= 2 * threads || rows < 12 * threads { return (min(threads, panels), false) }
        return (min(threads, (rows + 5) / 6), true)
    }

    /// Chunk `chunk` of `0..<count` cut into `chunks` near-equal parts on multiples of `multiple`.
    static func share(_ count: Int, _ chunk: Int, _ chunks: Int, multiple: Int) -> Range<Int> {
        let units = (count + multiple - 1) / multiple
        let lower = min(count, units * chunk / chunks * multiple)
        let upper = min(count, units * (chunk + 1) / chunks * multiple)
        return lower..<upper
    }

    private var activationCode: Int32 {
        switch activation {
        case .none: return Int32(KILN_SGEMM_NONE.rawValue)
        case .gelu: return Int32(KILN_SGEMM_GELU.rawValue)
        case .geluTanh: return Int32(KILN_SGEMM_GELU_TANH.rawValue)
        case .relu: return Int32(KILN_SGEMM_RELU.rawValue)
        case .tanh: return Int32(KILN_SGEMM_TANH.rawValue)
        }
    }
}
