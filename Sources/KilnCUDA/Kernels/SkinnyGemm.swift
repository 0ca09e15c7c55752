// SkinnyGemm: Kiln's own fp16 GEMM for few rows (kiln_gemm_skinny), where cuBLASLt is slow.
// Status: experimental, off by default (KILN_CUDA_SKINNY_GEMM=1). On an H200 (2026-12-03) it
// matched the reference on every shipped model but was slower than cuBLASLt: BERT-base seq 32
// batch 1 1.075 vs 0.671 ms per forward, batch 2 1.599 ms. Likely causes, not yet measured one
// by one: X fragments are 4-byte loads from L1/L2 on every k step (no shared-memory staging, no
// cp.async pipelining), so the k loop waits on load latency; split-K does 2 atomics per output
// element per block. Kept because its fragment layout and in-kernel split-K reduction are
// verified; the next version should stage X in shared memory once per block and pipeline W.
// Pattern: for M <= 64 rows (a batch-1 or -2 request at seq 32), a GEMM is bound by streaming
// its weights once, and cuBLASLt's kernels run 5-8 us for what that costs ~1 us on an H200; this
// kernel spreads the columns (32 per block) and, when there are too few column tiles to fill the
// GPU, K (split-K with an in-kernel reduction by the last block of each tile) over about two
// blocks per SM, and fuses bias and activation into its epilogue (no separate bias+GELU kernel).
// Safe: it computes the same Y = act(X·W + bias) in fp32 from the same fp16 operands (only the
// summation order differs), the launcher only takes shapes the kernel supports, and the split-K
// workspace is left all zero by every call (the last block reads each sum with atomicExch).
import CKilnCUDA

/// The device scratch of the skinny GEMM's split-K reduction, owned by one engine (whose runs
/// are serialised on one stream, so calls never overlap).
final class SkinnyGemmWorkspace {
    /// Most rows the kernel takes (4 m-tiles of 16).
    static let maxRows = 64
    /// Most columns (the workspace holds maxRows x maxColumns sums).
    static let maxColumns = 4096
    /// Most split-K blocks per column tile.
    static let maxSplits = 32

    let sums: DeviceBuffer  // fp32 [maxRows, maxColumns], all zero between calls
    let counters: DeviceBuffer  // uint32 [maxColumns / 32], all zero between calls
    let multiprocessors: Int

    init(multiprocessors: Int, stream: kcu_stream) throws {
        sums = try DeviceBuffer(byteCount: Self.maxRows * Self.maxColumns * 4)
        counters = try DeviceBuffer(byteCount: Self.maxColumns / 32 * 4)
        try checkDriver(kcu_memset_d8_async(sums.address, 0, sums.byteCount, stream), "cuMemsetD8Async")
        try checkDriver(kcu_memset_d8_async(counters.address, 0, counters.byteCount, stream), "cuMemsetD8Async")
        try checkDriver(kcu_stream_synchronize(stream), "cuStreamSynchronize")
        self.multiprocessors = max(1, multiprocessors)
    }

    /// Whether the kernel takes a GEMM of this shape (`lda` in elements; pointers checked by the caller).
    static func fits(rows: Int, n: Int, k: Int, lda: Int) -> Bool {
        rows >= 1 && rows <= maxRows && n % 32 == 0 && n <= maxColumns && k % 16 == 0 && lda % 2 == 0 && lda >= k
    }

    /// How K is split: about two blocks per SM, at least 128 k per block (fewer, larger blocks
    /// beat the atomics of many small ones), spans a multiple of 16.
    func split(n: Int, k: Int) -> (splits: Int, span: Int) {
        let tiles = n / 32
        let wanted = (2 * multiprocessors + tiles - 1) / tiles
        let splits = max(1, min(wanted, k / 128, Self.maxSplits))
        let span = ((k + splits - 1) / splits + 15) / 16 * 16
        return ((k + span - 1) / span, span)
    }
}

extension KernelLauncher {
    /// Y[rows, n] = act(X[rows, k] · W + bias) with `weightsT` = Wᵀ ([n, k] fp16), `bias` n fp16 or 0,
    /// act 0 none, 1 erf GELU, 2 tanh GELU, 3 ReLU; Y is contiguous ([rows, n]).
    func skinnyGemm(input: kcu_deviceptr, lda: Int, weightsT: kcu_deviceptr, bias: kcu_deviceptr, output: kcu_deviceptr,
                    rows: Int, n: Int, k: Int, activation: Int32, workspace: SkinnyGemmWorkspace) throws {
        let (splits, span) = workspace.split(n: n, k: k)
        try launch("kiln_gemm_skinny", grid: (n / 32, splits, 1), block: 128,
                   [.pointer(input), .int32(Int32(lda)), .pointer(weightsT), .pointer(bias), .pointer(output),
                    .pointer(workspace.sums.address), .pointer(workspace.counters.address), .int32(Int32(rows)),
                    .int32(Int32(n)), .int32(Int32(k)), .int32(Int32(span)), .int32(activation)])
    }
}
