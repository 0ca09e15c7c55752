// CuBLASLtGemm: Y[M, N] = act(X[M, K] · W[K, N] + bias) with fp16 operands and fp32 accumulation.
// Row-major trick: cuBLASLt is column-major, so we compute Yᵀ = Wᵀ·Xᵀ, where the row-major
// W [K, N] *is* the column-major Wᵀ (N x K, ld N) and X with row stride `lda` is Xᵀ (K x M).
// The bias epilogue adds a vector over the rows of Yᵀ, i.e. over N: exactly the bias.
// Plans (descriptors + chosen algorithm) are cached per shape, so after the first call of a shape
// a GEMM is one cublasLtMatmul; with autotuning the candidates are timed once and the fastest kept.
import CKilnCUDA

/// cuBLASLt enum values (cublasLt.h, CUDA 12/13), declared here because no headers are used.
enum LtConstants {
    static let r16F: Int32 = 2, r32F: Int32 = 0, r8I: Int32 = 3, r32I: Int32 = 10
    static let compute32F: Int32 = 68, compute32I: Int32 = 72
    static let opT: Int32 = 1
    static let descTransA: Int32 = 3, descTransB: Int32 = 4, descEpilogue: Int32 = 7, descBiasPointer: Int32 = 8
    static let descBiasDataType: Int32 = 26
    static let epilogueDefault: UInt32 = 1, epilogueBias: UInt32 = 4, epilogueReluBias: UInt32 = 6, epilogueGeluBias: UInt32 = 36
    static let prefMaxWorkspace: Int32 = 1
}

/// What the GEMM applies after the product (cuBLASLt epilogues).
public enum GemmEpilogue: String, Sendable, Codable {
    case none, bias, reluBias, geluTanhBias

    var ltValue: UInt32 {
        switch self {
        case .none: LtConstants.epilogueDefault
        case .bias: LtConstants.epilogueBias
        case .reluBias: LtConstants.epilogueReluBias
        case .geluTanhBias: LtConstants.epilogueGeluBias
        }
    }
}

/// The shape key of one cached GEMM plan.
struct GemmShape: Hashable, Sendable {
    var m: Int, n: Int, k: Int, lda: Int
    var outputF32: Bool
    var epilogue: GemmEpilogue
    /// fp32 operands (the NLU heads, kept in full precision like the CPU engine's precision pass).
    var inputF32 = false
    /// int8 operands, int32 output (INT8 plans): weights are then `[N, K]` row-major levels
    /// (cuBLASLt's int8 kernels take the "TN" form: op(A) = Aᵀ), `lda` the int8 input's row
    /// stride; `outputF32`, `epilogue` are ignored (the dequantization kernel does both).
    var int8 = false
}

/// A cuBLASLt handle, workspace and per-shape plan cache for one engine.
final class CuBLASLtGemm: @unchecked Sendable {
    private let handle: klt_handle
    let workspace: DeviceBuffer
    private var plans: [GemmShape: Plan] = [:]
    /// Time candidate algorithms on first use of a shape and keep the fastest.
    var autotune: Bool
    /// Chosen algorithm index per shape (the timing cache a plan can record).
    private(set) var choices: [GemmShape: Int] = [:]
    let version: Int
    /// The GemmTimingCache scope of this GPU and library (set by the engine): autotuning takes a
    /// choice recorded there instead of timing again, and records its own. nil: always time.
    var timingScope: String?
    /// Shapes whose choice came from the timing cache / was timed here.
    private(set) var reusedChoices = 0, timedChoices = 0

    final class Plan {
        var desc: klt_matmul_desc?
        var a: klt_layout?, b: klt_layout?, d: klt_layout?
        var candidates: [klt_heuristic] = []
        var chosen = 0
        deinit {
            if let desc { _ = klt_matmul_desc_destroy(desc) }
            for layout in [a, b, d] { if let layout { _ = klt_layout_destroy(layout) } }
        }
    }

    /// How many of the heuristic's candidates autotuning times (it returns fewer for some shapes).
    static let autotuneCandidates = GemmTimingCache.currentCandidates

    /// Bytes written between autotuning runs of small-M GEMMs so that each run reads its weights
    /// from device memory, as a forward pass does (BERT-base's 170 MB of fp16 weights do not fit
    /// the 50-60 MB L2 of an H100/H200, but one GEMM's 1-5 MB does: timed back to back, a GEMM
    /// runs from L2 and the choice favours algorithms that are fast only there).
    static let cacheFlushBytes = 192 << 20

    /// Up to this many rows the weights dominate a GEMM's traffic and autotuning flushes L2
    /// between runs. Above it the activations (just written by the previous kernel, so in L2 in
    /// a forward pass) dominate, and flushing them chose slower algorithms (BERT-base batch 256
    /// on an H200: 4.81 vs 4.46 ms per forward).
    static let cacheFlushMaxRows = 64

    init(workspaceBytes: Int = 32 << 20, autotune: Bool = false) throws {
        try CUDALibraries.load(.cublasLt)
        var handle: klt_handle?
        try checkBLAS(klt_create(&handle), "cublasLtCreate")
        self.handle = handle!
        workspace = try DeviceBuffer(byteCount: workspaceBytes)
        self.autotune = autotune
        version = klt_version()
    }

    deinit { _ = klt_destroy(handle) }

    /// Queues the GEMM on `stream`. `weights` is fp16 [K, N] row-major; `bias` has N elements of
    /// the output type; `input` is fp16 with rows `shape.lda` elements apart.
    func run(_ shape: GemmShape, input: kcu_deviceptr, weights: kcu_deviceptr, bias: kcu_deviceptr, output: kcu_deviceptr, stream: kcu_stream) throws {
        let plan = try plans[shape] ?? makePlan(shape, input: input, weights: weights, bias: bias, output: output, stream: stream)
        // int8 GEMMs scale in int32 (alpha 1, beta 0 have other bit patterns than in fp32).
        var alpha: (Float, Int32) = (1, 1), beta: (Float, Int32) = (0, 0)
        var biasPointer = bias
        if shape.epilogue != .none && !shape.int8 {
            try checkBLAS(klt_matmul_desc_set(plan.desc, LtConstants.descBiasPointer, &biasPointer, 8), "set bias pointer")
        }
        var algo = plan.candidates[plan.chosen].algo
        let status = withUnsafePointer(to: &alpha) { alphaPair in
            withUnsafePointer(to: &beta) { betaPair in
                let alphaPointer = shape.int8 ? UnsafeRawPointer(alphaPair) + 4 : UnsafeRawPointer(alphaPair)
                let betaPointer = shape.int8 ? UnsafeRawPointer(betaPair) + 4 : UnsafeRawPointer(betaPair)
                return klt_matmul(
                    handle, plan.desc, alphaPointer, UnsafeRawPointer(bitPattern: UInt(weights)), plan.a, UnsafeRawPointer(bitPattern: UInt(input)), plan.b,
                    betaPointer, UnsafeRawPointer(bitPattern: UInt(output)), plan.d, UnsafeMutableRawPointer(bitPattern: UInt(output)), plan.d, &algo,
                    UnsafeMutableRawPointer(bitPattern: UInt(workspace.address)), workspace.byteCount, stream)
            }
        }
        try checkBLAS(status, "cublasLtMatmul(M=\(shape.m) N=\(shape.n) K=\(shape.k))")
    }

    private func makePlan(_ shape: GemmShape, input: kcu_deviceptr, weights: kcu_deviceptr, bias: kcu_deviceptr, output: kcu_deviceptr, stream: kcu_stream) throws -> Plan {
        let plan = Plan()
        if shape.int8 { try describeInt8(shape, plan) } else { try describe(shape, plan, bias: bias) }
        var preference: klt_preference?
        try checkBLAS(klt_preference_create(&preference), "cublasLtMatmulPreferenceCreate")
        defer { _ = klt_preference_destroy(preference) }
        var workspaceBytes = UInt64(workspace.byteCount)
        try checkBLAS(klt_preference_set(preference, LtConstants.prefMaxWorkspace, &workspaceBytes, 8), "set workspace")
        var results = [klt_heuristic](repeating: klt_heuristic(), count: autotune ? Self.autotuneCandidates : 1)
        var returned: Int32 = 0
        try checkBLAS(klt_heuristic_query(handle, plan.desc, plan.a, plan.b, plan.d, plan.d, preference, Int32(results.count), &results, &returned),
                      "cublasLtMatmulAlgoGetHeuristic(M=\(shape.m) N=\(shape.n) K=\(shape.k)\(shape.int8 ? " int8" : ""))")
        guard returned > 0 else { throw CUDAError.unsupported("cuBLASLt has no algorithm for M=\(shape.m) N=\(shape.n) K=\(shape.k)\(shape.int8 ? " int8" : "")") }
        plan.candidates = Array(results.prefix(Int(returned)))
        plans[shape] = plan
        if autotune && plan.candidates.count > 1 {
            let key = Self.key(shape)
            if let scope = timingScope, let cached = GemmTimingCache.shared.choice(scope: scope, key: key), cached < plan.candidates.count {
                plan.chosen = cached
                reusedChoices += 1
            } else {
                plan.chosen = try fastest(plan, shape, input: input, weights: weights, bias: bias, output: output, stream: stream)
                timedChoices += 1
                if let scope = timingScope { GemmTimingCache.shared.record(scope: scope, key: key, choice: plan.chosen) }
            }
        }
        choices[shape] = plan.chosen
        return plan
    }

    /// The timing-cache key of a shape: everything that changes cuBLASLt's candidate list.
    static func key(_ shape: GemmShape) -> String {
        let types = shape.int8 ? "s8" : (shape.inputF32 ? "f32-in/" : "") + (shape.outputF32 ? "f32" : "f16")
        return "\(shape.m)x\(shape.n)x\(shape.k)/lda\(shape.lda)/\(shape.epilogue.rawValue)/\(types)"
    }

    /// fp16 (or fp32 head) operands, fp32 accumulation, optional bias/activation epilogue.
    private func describe(_ shape: GemmShape, _ plan: Plan, bias: kcu_deviceptr) throws {
        let outType = shape.outputF32 ? LtConstants.r32F : LtConstants.r16F
        try checkBLAS(klt_matmul_desc_create(&plan.desc, LtConstants.compute32F, LtConstants.r32F), "cublasLtMatmulDescCreate")
        var epilogue = shape.epilogue.ltValue
        try checkBLAS(klt_matmul_desc_set(plan.desc, LtConstants.descEpilogue, &epilogue, 4), "set epilogue")
        if shape.epilogue != .none {
            var biasType = outType
            try checkBLAS(klt_matmul_desc_set(plan.desc, LtConstants.descBiasDataType, &biasType, 4), "set bias type")
            var biasPointer = bias
            try checkBLAS(klt_matmul_desc_set(plan.desc, LtConstants.descBiasPointer, &biasPointer, 8), "set bias pointer")
        }
        let inType = shape.inputF32 ? LtConstants.r32F : LtConstants.r16F
        try checkBLAS(klt_layout_create(&plan.a, inType, UInt64(shape.n), UInt64(shape.k), Int64(shape.n)), "layout W")
        try checkBLAS(klt_layout_create(&plan.b, inType, UInt64(shape.k), UInt64(shape.m), Int64(shape.lda)), "layout X")
        try checkBLAS(klt_layout_create(&plan.d, outType, UInt64(shape.n), UInt64(shape.m), Int64(shape.n)), "layout Y")
    }

    /// s8 x s8 -> s32 in the "TN" form: A = the [N, K] row-major levels read as column-major
    /// K x N (ld K) and transposed; B = the quantized input, column-major K x M (ld `lda`);
    /// D = int32 [M, N] row-major. cuBLASLt's int8 tensor-core kernels with plain (non-COL32)
    /// layouts need exactly this (op(A) = T, op(B) = N) and K, leading dimensions and pointers
    /// aligned to 4 bytes (the binding keeps K and N multiples of 4; arena blocks are aligned).
    private func describeInt8(_ shape: GemmShape, _ plan: Plan) throws {
        try checkBLAS(klt_matmul_desc_create(&plan.desc, LtConstants.compute32I, LtConstants.r32I), "cublasLtMatmulDescCreate(int8)")
        var transpose = LtConstants.opT
        try checkBLAS(klt_matmul_desc_set(plan.desc, LtConstants.descTransA, &transpose, 4), "set transA")
        try checkBLAS(klt_layout_create(&plan.a, LtConstants.r8I, UInt64(shape.k), UInt64(shape.n), Int64(shape.k)), "layout Wq")
        try checkBLAS(klt_layout_create(&plan.b, LtConstants.r8I, UInt64(shape.k), UInt64(shape.m), Int64(shape.lda)), "layout Xq")
        try checkBLAS(klt_layout_create(&plan.d, LtConstants.r32I, UInt64(shape.n), UInt64(shape.m), Int64(shape.n)), "layout Y32")
    }

    /// Times each candidate (median of 7 after a warm-up) and returns the index of the fastest.
    private func fastest(_ plan: Plan, _ shape: GemmShape, input: kcu_deviceptr, weights: kcu_deviceptr, bias: kcu_deviceptr, output: kcu_deviceptr, stream: kcu_stream) throws -> Int {
        var start: kcu_event?, end: kcu_event?
        try checkDriver(kcu_event_create(&start, 0), "cuEventCreate")
        try checkDriver(kcu_event_create(&end, 0), "cuEventCreate")
        defer { _ = kcu_event_destroy(start); _ = kcu_event_destroy(end) }
        // Without the flush buffer (no memory for it), runs are timed from L2.
        let flush = shape.m <= Self.cacheFlushMaxRows ? try? DeviceBuffer(byteCount: Self.cacheFlushBytes) : nil
        var best = (index: 0, time: Float.infinity)
        for index in plan.candidates.indices {
            plan.chosen = index
            var times: [Float] = []
            do {
                try run(shape, input: input, weights: weights, bias: bias, output: output, stream: stream)
                for _ in 0..<7 {
                    if let flush { try checkDriver(kcu_memset_d8_async(flush.address, 0, flush.byteCount, stream), "cuMemsetD8Async") }
                    try checkDriver(kcu_event_record(start, stream), "cuEventRecord")
                    try run(shape, input: input, weights: weights, bias: bias, output: output, stream: stream)
                    try checkDriver(kcu_event_record(end, stream), "cuEventRecord")
                    try checkDriver(kcu_event_synchronize(end), "cuEventSynchronize")
                    var ms: Float = 0
                    try checkDriver(kcu_event_elapsed_ms(&ms, start, end), "cuEventElapsedTime")
                    times.append(ms)
                }
            } catch { continue }  // a candidate that fails is simply not chosen
            let median = times.sorted()[times.count / 2]
            if median < best.time { best = (index, median) }
        }
        return best.index
    }
}
