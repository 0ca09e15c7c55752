// SkinnyGemm: Kiln's own fp16 GEMM for few rows (KernelSource `kiln_gemm_skinny_m1..m4`), where
// cuBLASLt's kernels are slow.
// Status: experimental, off by default (KILN_CUDA_SKINNY_GEMM=1). It matches the reference on every
// shipped model (tools/gpu-check step 2, 2026-12-07) but is about 2x slower than cuBLAS on an H100
// (tools/gpu_skinny_gemm_bench.py, M = 32, 12 distinct weights each, one CUDA graph, best K span
// per shape: QKV 9.2 vs 4.8 us, out-projection 7.6 vs 3.4, FFN-in + GELU 10.0 vs 7.0, FFN-out 9.9
// vs 8.1; a BERT-base chain of 48 GEMMs 464.7 vs 273.3 us). Not yet diagnosed; suspects: the
// split-K tail (vector reductions, a fence, a counter, then the last block reads the sums back:
// four L2 round trips after the weights arrive) and too few bytes in flight per SM when K is not
// split. Warming L2 with the next GEMM's weights (cp.async.bulk.prefetch)
// did not help (464.7 vs 472.2 us per 48 GEMMs) and was removed.
// Pattern: for M <= 64 rows (a batch-1 or -2 request at seq 32) a GEMM is bound by streaming its
// weights once: BERT-base's 1.2-4.7 MB per GEMM cost ~0.4-1.6 us at an H100's bandwidth, while
// cuBLASLt's kernels take 5.6-7.9 us at M = 32. The kernel gives each warp 32 columns x a K span,
// keeps every weight load 16 bytes wide with the next 64-k chunk in flight while it multiplies the
// current one, splits K over blocks until the GPU is full, and fuses bias and activation into
// its epilogue (so no separate bias+GELU kernel runs).
// Safe: it computes the same Y = act(X·W + bias) in fp32 from the same fp16 operands (only the
// summation order differs: a fixed order within a block, fp32 atomics across K splits), the
// launcher only takes shapes and alignments the kernel supports, and the split-K workspace and
// tile counters are left all zero by every call.
import CKilnCUDA

/// The device scratch of the skinny GEMM's split-K reduction, owned by one engine (whose runs
/// are serialised on one stream, so calls never overlap).
final class SkinnyGemmWorkspace {
    /// Most rows the kernel takes (4 m-tiles of 16).
    static let maxRows = 64
    /// Most columns (the workspace holds maxRows x maxColumns sums).
    static let maxColumns = 8192
    /// Columns per block (4 warps x 32).
    static let blockColumns = 128
    /// K per chunk of the kernel's inner loop; K and every split are multiples of it.
    static let chunk = 64

    let sums: DeviceBuffer  // fp32 [maxRows, maxColumns], all zero between calls
    let counters: DeviceBuffer  // uint32 [maxColumns / blockColumns], all zero between calls
    let multiprocessors: Int

    init(multiprocessors: Int, stream: kcu_stream) throws {
        sums = try DeviceBuffer(byteCount: Self.maxRows * Self.maxColumns * 4)
        counters = try DeviceBuffer(byteCount: Self.maxColumns / Self.blockColumns * 4)
        try checkDriver(kcu_memset_d8_async(sums.address, 0, sums.byteCount, stream), "cuMemsetD8Async")
        try checkDriver(kcu_memset_d8_async(counters.address, 0, counters.byteCount, stream), "cuMemsetD8Async")
        try checkDriver(kcu_stream_synchronize(stream), "cuStreamSynchronize")
        self.multiprocessors = max(1, multiprocessors)
    }

    /// Whether the kernel takes a GEMM of this shape (`lda` in elements; the caller checks that
    /// X, Wᵀ and Y are 16-byte aligned).
    static func fits(rows: Int, n: Int, k: Int, lda: Int) -> Bool {
        rows >= 1 && rows <= maxRows && n % 32 == 0 && n <= maxColumns && k % chunk == 0 && k > 0 && lda % 8 == 0 && lda >= k
    }

    /// The K span of one block: the largest multiple of 64 that divides K and still gives at
    /// least one block per SM (fewer, longer blocks mean fewer atomics and a longer stream of
    /// loads per warp); 64 when even that leaves SMs idle.
    static func kSpan(n: Int, k: Int, multiprocessors: Int) -> Int {
        let tiles = (n + blockColumns - 1) / blockColumns
        var best = chunk
        for span in stride(from: chunk, through: k, by: chunk) where k % span == 0 && tiles * (k / span) >= multiprocessors {
            best = span
        }
        return best
    }

    /// The kernel entry point for `rows` rows (one specialisation per m-tile count).
    static func entryPoint(rows: Int) -> String { "kiln_gemm_skinny_m\((rows + 15) / 16)" }
}

extension KernelLauncher {
    /// Y[rows, n] = act(X[rows, k] · W + bias) with `weightsT` = Wᵀ ([n, k] fp16), `bias` n fp16 or 0,
    /// act 0 none, 1 erf GELU, 2 tanh GELU, 3 ReLU; Y is contiguous ([rows, n]).
    func skinnyGemm(input: kcu_deviceptr, lda: Int, weightsT: kcu_deviceptr, bias: kcu_deviceptr, output: kcu_deviceptr,
                    rows: Int, n: Int, k: Int, activation: Int32, workspace: SkinnyGemmWorkspace) throws {
        let span = SkinnyGemmWorkspace.kSpan(n: n, k: k, multiprocessors: workspace.multiprocessors)
        let tiles = (n + SkinnyGemmWorkspace.blockColumns - 1) / SkinnyGemmWorkspace.blockColumns
        try launch(SkinnyGemmWorkspace.entryPoint(rows: rows), grid: (tiles, (k + span - 1) / span, 1), block: 128,
                   [.pointer(input), .int32(Int32(lda)), .pointer(weightsT), .pointer(bias), .pointer(output),
                    .pointer(workspace.sums.address), .pointer(workspace.counters.address), .int32(Int32(rows)),
                    .int32(Int32(n)), .int32(Int32(k)), .int32(Int32(span)), .int32(activation)])
    }
}
