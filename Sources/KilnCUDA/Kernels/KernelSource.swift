// KernelSource: the CUDA C source of Kiln's own GPU kernels, compiled by NVRTC at engine build
// for the GPU that is present. Why source, not binaries: no CUDA toolkit at Kiln build time, and
// the exact SASS for the present arch (sm_90 on Hopper) without shipping fat binaries.
// The source uses no CUDA headers (NVRTC's builtin headers vary by version): fp16 is stored as
// `unsigned short` and converted with the PTX cvt instructions. Every kernel computes in fp32.

/// Kiln's CUDA C kernels and the NVRTC options for an architecture.
public enum KernelSource {
    /// Entry points the engine loads from the compiled module.
    public static let entryPoints = [
        "kiln_gather_rows", "kiln_add_broadcast", "kiln_layer_norm", "kiln_gelu", "kiln_attention",
        "kiln_f32_to_f16", "kiln_f16_to_f32", "kiln_copy_rows", "kiln_bias_gelu", "kiln_bias_gelu8", "kiln_binary_f32", "kiln_copy_rows_f32",
        "kiln_attention_mma32", "kiln_attention_mma64", "kiln_layer_norm_warp", "kiln_layer_norm_warp_prefetch", "kiln_layer_norm_warp8", "kiln_quantize_s8", "kiln_dequant_s32",
        "kiln_gemm_skinny_m1", "kiln_gemm_skinny_m2", "kiln_gemm_skinny_m3", "kiln_gemm_skinny_m4",
    ]

    /// Widest row the warp-per-row LayerNorm keeps in registers (16 fp16 pairs per lane).
    public static let warpLayerNormMaxWidth = 1024

    /// Whether a LayerNorm row fits the 16-byte-vector kernel `kiln_layer_norm_warp8` (8 halves a
    /// lane per step, at most 4 steps: widths 256, 512, 768, 1024).
    public static func vectorLayerNormFits(width: Int) -> Bool { width % 256 == 0 && width > 0 && width <= 1024 }

    /// Whether a LayerNorm row fits the warp-per-row kernel (pairs spread evenly over 32 lanes).
    public static func warpLayerNormFits(width: Int) -> Bool { width % 64 == 0 && width <= warpLayerNormMaxWidth }

    /// Whether the tensor-core attention kernel handles a head size and sequence length: head
    /// 32 or 64, a sequence that is a multiple of 16 up to 128 (what shape buckets produce).
    public static func tensorCoreAttentionFits(headSize: Int, sequence: Int) -> Bool {
        (headSize == 32 || headSize == 64) && sequence >= 16 && sequence <= 128 && sequence % 16 == 0
    }

    /// Whether Q, K and V allow the tensor-core kernel's 16-byte loads: addresses 16-byte aligned
    /// and rows a multiple of 8 halves apart (the fused QKV GEMM output always is).
    public static func tensorCoreAttentionAligned(q: UInt64, k: UInt64, v: UInt64, qkvStride: Int) -> Bool {
        q % 16 == 0 && k % 16 == 0 && v % 16 == 0 && qkvStride % 8 == 0
    }

    /// Warps per tensor-core attention block (each owns 16 query rows of one (head, batch)): up to
    /// 4, so a block stages K and V once for 64 rows; one when (batch x heads) blocks would not
    /// cover the GPU's SMs (H100 batch 1: 12 blocks for 132 SMs), spreading the 16-row tiles
    /// over more blocks that each stage K and V again (a few KB, from L2).
    public static func tensorCoreAttentionWarps(batch: Int, heads: Int, sequence: Int, multiprocessors: Int) -> Int {
        let tiles = max(1, sequence / 16)
        return batch * heads >= multiprocessors ? min(4, tiles) : 1
    }

    /// Dynamic shared memory of one tensor-core attention block: K and V rows, each padded by 8
    /// halves.
    public static func tensorCoreAttentionSharedBytes(sequence: Int, headSize: Int) -> Int {
        2 * sequence * (headSize + 8) * 2
    }

    /// NVRTC options: compile straight to SASS for `architecture` (e.g. `sm_90`).
    public static func options(architecture: String) -> [String] {
        ["--gpu-architecture=\(architecture)", "--std=c++17", "-default-device", "--extra-device-vectorization"]
    }

    /// The largest attention sequence length the shared-memory attention kernel handles for a
    /// head size, given the per-block shared memory limit (K and V of one head as fp16, plus
    /// per-warp query and probability rows).
    public static func maxAttentionSequence(headSize: Int, sharedMemoryLimit: Int, warps: Int = attentionWarps) -> Int {
        let perKey = (2 * headSize + 2) * 2 + warps * 4
        let fixed = warps * headSize * 4
        return max(0, (sharedMemoryLimit - fixed) / perKey)
    }

    /// Dynamic shared memory of one attention block.
    public static func attentionSharedBytes(sequence: Int, headSize: Int, warps: Int = attentionWarps) -> Int {
        sequence * (2 * headSize + 2) * 2 + warps * (headSize + sequence) * 4
    }

    /// Warps per attention block (each warp owns query rows).
    public static let attentionWarps = 4
    /// Query rows one attention block handles at most.
    public static let attentionRowsPerBlock = 16

    /// Query rows per attention block for a launch: 16 while that still gives two blocks per SM
    /// of an H100-sized GPU (~264 blocks), fewer (down to one row per warp) for small batches, where
    /// one block's serial rows, not the GPU's width, set the time (batch 1: 24 blocks of 16 rows
    /// leave most SMs idle). More blocks re-stage K and V per block, cheap at these lengths.
    public static func attentionRows(batch: Int, heads: Int, sequence: Int, targetBlocks: Int = 264) -> Int {
        for rows in [attentionRowsPerBlock, 8] where batch * heads * ((sequence + rows - 1) / rows) >= targetBlocks { return rows }
        return attentionWarps
    }
    /// Threads per LayerNorm block (one block per row).
    public static let layerNormThreads = 256

    /// Up to this many rows the warp-per-row LayerNorm runs one row per block (see KernelLauncher).
    public static let layerNormSpreadRows = 512

    /// The complete translation unit.
    public static let source = #"""
    // Kiln CUDA kernels (generated into NVRTC at engine build).
    typedef unsigned short half_t;
    // Programmatic dependent launch (Hopper+): launched with it (KernelLauncher), a kernel may be
    // scheduled while the previous kernel on the stream drains, so every kernel first waits for
    // its predecessor's completion and memory (griddepcontrol.wait; before any load or store, so
    // neither read-after-write nor write-after-read can race), then lets its own successor start
    // being scheduled (launch_dependents: the successor waits the same way, so this only hides
    // launch latency). Both are no-ops for a kernel launched without the attribute.
    #if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    #define KILN_GRID_ENTER() asm volatile("griddepcontrol.wait;\n\tgriddepcontrol.launch_dependents;" ::: "memory")
    #else
    #define KILN_GRID_ENTER()
    #endif
    __device__ __forceinline__ float h2f(half_t h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
    __device__ __forceinline__ half_t f2h(float f) { half_t h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
    __device__ __forceinline__ float warp_sum(float v) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        return v;
    }
    __device__ __forceinline__ float warp_max(float v) {
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
        return v;
    }
    #define KILN_NEG_INF __int_as_float(0xff800000)
    __device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
    __device__ __forceinline__ float gelu_tanh(float x) {
        return 0.5f * x * (1.0f + tanhf(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    }

    struct __attribute__((aligned(16))) kiln_u4 { unsigned int x, y, z, w; };
    __device__ __forceinline__ kiln_u4 ld_stream_u4(const half_t* p) {
        kiln_u4 v;
        asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
        return v;
    }
    __device__ __forceinline__ kiln_u4 ld_u4(const half_t* p) {
        kiln_u4 v;
        asm("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
        return v;
    }
    // A plain (coherent) 16-byte load, for memory the same kernel writes (in-place kernels).
    __device__ __forceinline__ kiln_u4 ld_u4_rw(const half_t* p) {
        kiln_u4 v;
        asm volatile("ld.global.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p) : "memory");
        return v;
    }
    __device__ __forceinline__ unsigned int u4_word(const kiln_u4& v, int i) {
        return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
    }
    __device__ __forceinline__ void ld_f4(const float* p, float* v) {
        asm("ld.global.nc.v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(v[0]), "=f"(v[1]), "=f"(v[2]), "=f"(v[3]) : "l"(p));
    }
    __device__ __forceinline__ void unpack_half8(const kiln_u4& w, float* v) {
        unsigned int words[4] = {w.x, w.y, w.z, w.w};
        #pragma unroll
        for (int i = 0; i < 4; i++) { v[2 * i] = h2f((half_t)(words[i] & 0xffffu)); v[2 * i + 1] = h2f((half_t)(words[i] >> 16)); }
    }
    __device__ __forceinline__ unsigned int pack_half2(float lo, float hi) {
        return (unsigned int)f2h(lo) | ((unsigned int)f2h(hi) << 16);
    }
    __device__ __forceinline__ void st_half8(half_t* p, const float* v) {
        asm volatile("st.global.v4.u32 [%0], {%1,%2,%3,%4};" :: "l"(p), "r"(pack_half2(v[0], v[1])), "r"(pack_half2(v[2], v[3])),
                     "r"(pack_half2(v[4], v[5])), "r"(pack_half2(v[6], v[7])) : "memory");
    }

    // out[r, :] = table[index[r], :] (indices already validated and made non-negative on the host).
    extern "C" __global__ void kiln_gather_rows(const half_t* table, const int* index, half_t* out, int rows, int width) {
        KILN_GRID_ENTER();
        int r = blockIdx.x;
        if (r >= rows) return;
        const half_t* src = table + (long long)index[r] * width;
        half_t* dst = out + (long long)r * width;
        for (int c = threadIdx.x; c < width; c += blockDim.x) dst[c] = src[c];
    }

    // out[i] = a[i] + b[i % b_count]: b broadcasts over leading axes.
    extern "C" __global__ void kiln_add_broadcast(const half_t* a, const half_t* b, half_t* out, long long n, long long b_count) {
        KILN_GRID_ENTER();
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
            out[i] = f2h(h2f(a[i]) + h2f(b[i % b_count]));
    }

    // One block per row: sum = x (+ skip) (+ bias); y = (sum - mean) / sqrt(var + eps) * gamma (+ beta).
    // Two passes over the row kept in shared memory (fp32); y goes to out (fp16) and/or out32
    // (fp32, for values that feed the fp32 NLU heads); sum_out optional.
    extern "C" __global__ void kiln_layer_norm(const half_t* x, const half_t* skip, const float* bias, const float* gamma,
                                               const float* beta, half_t* out, float* out32, half_t* sum_out, int width, float eps) {
        KILN_GRID_ENTER();
        extern __shared__ float row[];
        __shared__ float partial[32];
        long long base = (long long)blockIdx.x * width;
        float local = 0.f;
        for (int c = threadIdx.x; c < width; c += blockDim.x) {
            float v = h2f(x[base + c]);
            if (skip) v += h2f(skip[base + c]);
            if (bias) v += bias[c];
            row[c] = v;
            local += v;
            if (sum_out) sum_out[base + c] = f2h(v);
        }
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
        local = warp_sum(local);
        if (lane == 0) partial[warp] = local;
        __syncthreads();
        float total = 0.f;
        for (int w = 0; w < warps; w++) total += partial[w];
        float mean = total / width;
        __syncthreads();
        local = 0.f;
        for (int c = threadIdx.x; c < width; c += blockDim.x) { float d = row[c] - mean; local += d * d; }
        local = warp_sum(local);
        if (lane == 0) partial[warp] = local;
        __syncthreads();
        total = 0.f;
        for (int w = 0; w < warps; w++) total += partial[w];
        float inv = rsqrtf(total / width + eps);
        for (int c = threadIdx.x; c < width; c += blockDim.x) {
            float y = (row[c] - mean) * inv * gamma[c];
            if (beta) y += beta[c];
            if (out) out[base + c] = f2h(y);
            if (out32) out32[base + c] = y;
        }
    }

    // The same LayerNorm with one warp per row and the row in registers (widths a multiple of 64
    // up to 1024: lane l holds fp16 pairs l, l + 32, ...; 4-byte loads, coalesced across the warp):
    // no shared memory or block barriers, only warp shuffles, 8 rows per 256-thread block.
    #define KILN_LN_MAX_PAIRS 16
    extern "C" __global__ void kiln_layer_norm_warp(const half_t* x, const half_t* skip, const float* bias, const float* gamma,
                                                    const float* beta, half_t* out, float* out32, half_t* sum_out, int rows,
                                                    int width, float eps) {
        KILN_GRID_ENTER();
        int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
        if (r >= rows) return;
        int pairs = width >> 6;
        long long base = (long long)r * width;
        const unsigned int* xr = (const unsigned int*)(x + base);
        const unsigned int* sr = skip ? (const unsigned int*)(skip + base) : 0;
        float v[2 * KILN_LN_MAX_PAIRS];
        float sum = 0.f;
        #pragma unroll
        for (int i = 0; i < KILN_LN_MAX_PAIRS; i++) {
            if (i < pairs) {
                int p = i * 32 + lane;
                unsigned int w = xr[p];
                float a = h2f((half_t)(w & 0xffffu)), b = h2f((half_t)(w >> 16));
                if (sr) { unsigned int t = sr[p]; a += h2f((half_t)(t & 0xffffu)); b += h2f((half_t)(t >> 16)); }
                if (bias) { a += bias[2 * p]; b += bias[2 * p + 1]; }
                v[2 * i] = a; v[2 * i + 1] = b;
                sum += a + b;
                if (sum_out) ((unsigned int*)(sum_out + base))[p] = (unsigned int)f2h(a) | ((unsigned int)f2h(b) << 16);
            }
        }
        float mean = warp_sum(sum) / width;
        float var = 0.f;
        #pragma unroll
        for (int i = 0; i < KILN_LN_MAX_PAIRS; i++) {
            if (i < pairs) {
                float d0 = v[2 * i] - mean, d1 = v[2 * i + 1] - mean;
                var += d0 * d0 + d1 * d1;
            }
        }
        float inv = rsqrtf(warp_sum(var) / width + eps);
        #pragma unroll
        for (int i = 0; i < KILN_LN_MAX_PAIRS; i++) {
            if (i < pairs) {
                int p = i * 32 + lane, c = 2 * p;
                float y0 = (v[2 * i] - mean) * inv * gamma[c], y1 = (v[2 * i + 1] - mean) * inv * gamma[c + 1];
                if (beta) { y0 += beta[c]; y1 += beta[c + 1]; }
                if (out) ((unsigned int*)(out + base))[p] = (unsigned int)f2h(y0) | ((unsigned int)f2h(y1) << 16);
                if (out32) { out32[base + c] = y0; out32[base + c + 1] = y1; }
            }
        }
    }

    // Two floats loaded or stored with one 8-byte access.
    struct alignas(8) kiln_float2 { float x, y; };

    // kiln_layer_norm_warp for a few rows (batch 1-16 at seq 32), where it is latency-bound: every
    // load of the row, gamma and beta included (8-byte loads, callers check alignment), is issued
    // before the statistics, so it waits for memory once instead of twice. Slower for many rows
    // (the extra registers cost occupancy: 29 vs 20 us at 8192 x 768 on an H200).
    extern "C" __global__ void kiln_layer_norm_warp_prefetch(const half_t* x, const half_t* skip, const float* bias, const float* gamma,
                                                    const float* beta, half_t* out, float* out32, half_t* sum_out, int rows,
                                                    int width, float eps) {
        KILN_GRID_ENTER();
        int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
        if (r >= rows) return;
        int pairs = width >> 6;
        long long base = (long long)r * width;
        const unsigned int* xr = (const unsigned int*)(x + base);
        const unsigned int* sr = skip ? (const unsigned int*)(skip + base) : 0;
        // Every load of the row is issued up front, gamma and beta too (8-byte loads, a pair per
        // lane), so the kernel waits for memory once instead of once before and once after the
        // statistics (at batch 1 it is latency-bound).
        float v[2 * KILN_LN_MAX_PAIRS];
        kiln_float2 g[KILN_LN_MAX_PAIRS], bt[KILN_LN_MAX_PAIRS];
        #pragma unroll
        for (int i = 0; i < KILN_LN_MAX_PAIRS; i++) {
            if (i < pairs) {
                int p = i * 32 + lane;
                unsigned int w = xr[p];
                float a = h2f((half_t)(w & 0xffffu)), b = h2f((half_t)(w >> 16));
                if (sr) { unsigned int t = sr[p]; a += h2f((half_t)(t & 0xffffu)); b += h2f((half_t)(t >> 16)); }
                if (bias) { kiln_float2 bb = ((const kiln_float2*)bias)[p]; a += bb.x; b += bb.y; }
                v[2 * i] = a; v[2 * i + 1] = b;
                g[i] = ((const kiln_float2*)gamma)[p];
                if (beta) bt[i] = ((const kiln_float2*)beta)[p]; else { bt[i].x = 0.f; bt[i].y = 0.f; }
            }
        }
        float sum = 0.f;
        #pragma unroll
        for (int i = 0; i < KILN_LN_MAX_PAIRS; i++) {
            if (i < pairs) {
                sum += v[2 * i] + v[2 * i + 1];
                if (sum_out) ((unsigned int*)(sum_out + base))[i * 32 + lane] = (unsigned int)f2h(v[2 * i]) | ((unsigned int)f2h(v[2 * i + 1]) << 16);
            }
        }
        float mean = warp_sum(sum) / width;
        float var = 0.f;
        #pragma unroll
        for (int i = 0; i < KILN_LN_MAX_PAIRS; i++) {
            if (i < pairs) {
                float d0 = v[2 * i] - mean, d1 = v[2 * i + 1] - mean;
                var += d0 * d0 + d1 * d1;
            }
        }
        float inv = rsqrtf(warp_sum(var) / width + eps);
        #pragma unroll
        for (int i = 0; i < KILN_LN_MAX_PAIRS; i++) {
            if (i < pairs) {
                int p = i * 32 + lane;
                float y0 = (v[2 * i] - mean) * inv * g[i].x + bt[i].x, y1 = (v[2 * i + 1] - mean) * inv * g[i].y + bt[i].y;
                if (out) ((unsigned int*)(out + base))[p] = (unsigned int)f2h(y0) | ((unsigned int)f2h(y1) << 16);
                if (out32) { kiln_float2 y; y.x = y0; y.y = y1; ((kiln_float2*)(out32 + base))[p] = y; }
            }
        }
    }

    // The warp-per-row LayerNorm with 16-byte accesses (lane l holds halves 8l .. 8l+7,
    // 8(l+32) .., ...; widths a multiple of 256 up to 1024, e.g. BERT's 768; MiniLM's 384 is not)
    // and every load of the row, fp32 parameters included, issued before the statistics: fewer,
    // wider memory instructions for the latency-bound small batches and the bandwidth-bound large
    // ones. The same fp32 arithmetic as kiln_layer_norm_warp; only the order of the additions in
    // the row sums differs.
    #define KILN_LN8_MAX_VECTORS 4
    extern "C" __global__ void kiln_layer_norm_warp8(const half_t* x, const half_t* skip, const float* bias, const float* gamma,
                                                     const float* beta, half_t* out, float* out32, half_t* sum_out, int rows,
                                                     int width, float eps) {
        KILN_GRID_ENTER();
        int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
        if (r >= rows) return;
        int vectors = width >> 8;
        long long base = (long long)r * width;
        kiln_u4 xw[KILN_LN8_MAX_VECTORS], sw[KILN_LN8_MAX_VECTORS];
        float v[KILN_LN8_MAX_VECTORS][8], bv[KILN_LN8_MAX_VECTORS][8];
        #pragma unroll
        for (int i = 0; i < KILN_LN8_MAX_VECTORS; i++) {
            if (i < vectors) {
                int c = (i * 32 + lane) * 8;
                xw[i] = ld_u4(x + base + c);
                if (skip) sw[i] = ld_u4(skip + base + c);
                if (bias) { ld_f4(bias + c, bv[i]); ld_f4(bias + c + 4, bv[i] + 4); }
            }
        }
        float sum = 0.f;
        #pragma unroll
        for (int i = 0; i < KILN_LN8_MAX_VECTORS; i++) {
            if (i < vectors) {
                unpack_half8(xw[i], v[i]);
                if (skip) { float t[8]; unpack_half8(sw[i], t);
                    #pragma unroll
                    for (int j = 0; j < 8; j++) v[i][j] += t[j]; }
                #pragma unroll
                for (int j = 0; j < 8; j++) { if (bias) v[i][j] += bv[i][j]; sum += v[i][j]; }
                if (sum_out) st_half8(sum_out + base + (i * 32 + lane) * 8, v[i]);
            }
        }
        float mean = warp_sum(sum) / width;
        float var = 0.f;
        #pragma unroll
        for (int i = 0; i < KILN_LN8_MAX_VECTORS; i++) {
            if (i < vectors) {
                #pragma unroll
                for (int j = 0; j < 8; j++) { float d = v[i][j] - mean; var += d * d; }
            }
        }
        float inv = rsqrtf(warp_sum(var) / width + eps);
        #pragma unroll
        for (int i = 0; i < KILN_LN8_MAX_VECTORS; i++) {
            if (i < vectors) {
                int c = (i * 32 + lane) * 8;
                float g[8], y[8];
                ld_f4(gamma + c, g); ld_f4(gamma + c + 4, g + 4);
                #pragma unroll
                for (int j = 0; j < 8; j++) y[j] = (v[i][j] - mean) * inv * g[j];
                if (beta) { float b[8]; ld_f4(beta + c, b); ld_f4(beta + c + 4, b + 4);
                    #pragma unroll
                    for (int j = 0; j < 8; j++) y[j] += b[j]; }
                if (out) st_half8(out + base + c, y);
                if (out32) {
                    asm volatile("st.global.v4.f32 [%0], {%1,%2,%3,%4};" :: "l"(out32 + base + c), "f"(y[0]), "f"(y[1]), "f"(y[2]), "f"(y[3]) : "memory");
                    asm volatile("st.global.v4.f32 [%0], {%1,%2,%3,%4};" :: "l"(out32 + base + c + 4), "f"(y[4]), "f"(y[5]), "f"(y[6]), "f"(y[7]) : "memory");
                }
            }
        }
    }

    extern "C" __global__ void kiln_gelu(const half_t* x, half_t* out, long long n, int tanh_form) {
        KILN_GRID_ENTER();
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
            float v = h2f(x[i]);
            out[i] = f2h(tanh_form ? gelu_tanh(v) : gelu_erf(v));
        }
    }

    // In place, 8 halves a thread: x[r, c] = gelu(x[r, c] + bias[c]) for widths that are a multiple
    // of 8 with 16-byte aligned x and bias (the launcher checks; kiln_bias_gelu takes the rest).
    // One 16-byte vector per thread and no loop-carried work, so a warp keeps 512 bytes in flight
    // per access and enough blocks cover the GPU: the FFN activations of a large batch (BERT-base
    // batch 256: 8192 x 3072 halves, 50 MB each way) stream at memory speed.
    extern "C" __global__ void kiln_bias_gelu8(half_t* x, const half_t* bias, long long vectors, int row_vectors) {
        KILN_GRID_ENTER();
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < vectors; i += (long long)gridDim.x * blockDim.x) {
            kiln_u4 w = ld_u4_rw(x + 8 * i);
            kiln_u4 b = ld_u4(bias + 8 * (long long)(int)(i % row_vectors));
            float v[8], c[8];
            unpack_half8(w, v);
            unpack_half8(b, c);
            #pragma unroll
            for (int j = 0; j < 8; j++) v[j] = gelu_erf(v[j] + c[j]);
            st_half8(x + 8 * i, v);
        }
    }

    // In place: x[r, c] = gelu(x[r, c] + bias[c]) (the erf GELU cuBLASLt's epilogue lacks).
    // Rows are grid-strided and columns block-strided (no per-element 64-bit division); even
    // widths go two halves per 4-byte access.
    extern "C" __global__ void kiln_bias_gelu(half_t* x, const half_t* bias, int rows, int width) {
        KILN_GRID_ENTER();
        for (int r = blockIdx.x; r < rows; r += gridDim.x) {
            half_t* row = x + (long long)r * width;
            if (width & 1) {
                for (int c = threadIdx.x; c < width; c += blockDim.x) row[c] = f2h(gelu_erf(h2f(row[c]) + h2f(bias[c])));
                continue;
            }
            unsigned int* pairs = (unsigned int*)row;
            const unsigned int* bpairs = (const unsigned int*)bias;
            for (int c = threadIdx.x; c < (width >> 1); c += blockDim.x) {
                unsigned int w = pairs[c], b = bpairs[c];
                float lo = gelu_erf(h2f((half_t)(w & 0xffffu)) + h2f((half_t)(b & 0xffffu)));
                float hi = gelu_erf(h2f((half_t)(w >> 16)) + h2f((half_t)(b >> 16)));
                pairs[c] = (unsigned int)f2h(lo) | ((unsigned int)f2h(hi) << 16);
            }
        }
    }

    // fp32 elementwise a op b with broadcasting over 4 axes (strides 0 on broadcast axes):
    // op 0 add, 1 sub, 2 mul. Output contiguous with shape [d0, d1, d2, d3].
    extern "C" __global__ void kiln_binary_f32(const float* a, const float* b, float* out, long long n, int op,
                                               int d1, int d2, int d3, long long a0, long long a1, long long a2, long long a3,
                                               long long b0, long long b1, long long b2, long long b3) {
        KILN_GRID_ENTER();
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
            long long r = i;
            long long i3 = r % d3; r /= d3;
            long long i2 = r % d2; r /= d2;
            long long i1 = r % d1; long long i0 = r / d1;
            float x = a[i0 * a0 + i1 * a1 + i2 * a2 + i3 * a3];
            float y = b[i0 * b0 + i1 * b1 + i2 * b2 + i3 * b3];
            out[i] = op == 0 ? x + y : op == 1 ? x - y : x * y;
        }
    }

    // INT8 GEMM input: q[r, c] = clamp(rint(x[r * ld + c] * inv_scale), -127, 127), q contiguous
    // [rows, width]. Same rounding as KilnCore's Int8Quantization.quantize (multiply by the fp32
    // inverse, round half to even, clamp); NaN becomes 0. Widths and strides that are multiples
    // of 4 move 4 halves (8 bytes) in and 4 levels (4 bytes) out per access.
    __device__ __forceinline__ int quantize_level(float v) {
        v = rintf(v);
        v = v != v ? 0.0f : fminf(fmaxf(v, -127.0f), 127.0f);
        return (int)v;
    }
    extern "C" __global__ void kiln_quantize_s8(const half_t* x, signed char* q, int rows, int width, long long ld, float inv_scale) {
        KILN_GRID_ENTER();
        bool vec = (width & 3) == 0 && (ld & 3) == 0 && ((unsigned long long)x & 7) == 0 && ((unsigned long long)q & 3) == 0;
        for (int r = blockIdx.x; r < rows; r += gridDim.x) {
            const half_t* row = x + (long long)r * ld;
            signed char* out = q + (long long)r * width;
            if (vec) {
                for (int c = threadIdx.x; c < (width >> 2); c += blockDim.x) {
                    unsigned long long w = ((const unsigned long long*)row)[c];
                    unsigned int packed = 0;
                    for (int i = 0; i < 4; i++) {
                        int level = quantize_level(h2f((half_t)((w >> (16 * i)) & 0xffffu)) * inv_scale);
                        packed |= ((unsigned int)(level & 0xff)) << (8 * i);
                    }
                    ((unsigned int*)out)[c] = packed;
                }
            } else {
                for (int c = threadIdx.x; c < width; c += blockDim.x) out[c] = (signed char)quantize_level(h2f(row[c]) * inv_scale);
            }
        }
    }

    // INT8 GEMM epilogue: y[r, c] = act(acc[r, c] * mult[c] + bias[c]) with mult = s_a * s_w[c]
    // (the reference's order: dequantize, add bias, activate); act 0 none, 1 erf GELU, 2 tanh
    // GELU, 3 ReLU. Writes fp16 (out16) or fp32 (out32). Widths that are multiples of 4 read
    // 16 bytes of accumulators per access.
    struct alignas(16) kiln_i4 { int x, y, z, w; };  // own 16-byte vectors: no CUDA headers in NVRTC
    struct alignas(16) kiln_f4 { float x, y, z, w; };
    __device__ __forceinline__ float activate_code(float v, int act) {
        return act == 1 ? gelu_erf(v) : act == 2 ? gelu_tanh(v) : act == 3 ? fmaxf(v, 0.0f) : v;
    }
    extern "C" __global__ void kiln_dequant_s32(const int* acc, const float* mult, const float* bias, half_t* out16, float* out32,
                                                int rows, int width, int act) {
        KILN_GRID_ENTER();
        bool vec = (width & 3) == 0 && ((unsigned long long)acc & 15) == 0 && ((unsigned long long)mult & 15) == 0
            && ((unsigned long long)bias & 15) == 0 && ((unsigned long long)out16 & 7) == 0 && ((unsigned long long)out32 & 15) == 0;
        for (int r = blockIdx.x; r < rows; r += gridDim.x) {
            long long base = (long long)r * width;
            if (vec) {
                for (int c4 = threadIdx.x; c4 < (width >> 2); c4 += blockDim.x) {
                    kiln_i4 a = ((const kiln_i4*)(acc + base))[c4];
                    kiln_f4 m = ((const kiln_f4*)mult)[c4];
                    kiln_f4 b = bias ? ((const kiln_f4*)bias)[c4] : kiln_f4{0.0f, 0.0f, 0.0f, 0.0f};
                    float y0 = activate_code((float)a.x * m.x + b.x, act), y1 = activate_code((float)a.y * m.y + b.y, act);
                    float y2 = activate_code((float)a.z * m.z + b.z, act), y3 = activate_code((float)a.w * m.w + b.w, act);
                    int c = c4 << 2;
                    if (out32) {
                        ((kiln_f4*)(out32 + base))[c4] = kiln_f4{y0, y1, y2, y3};
                    } else {
                        unsigned long long packed = (unsigned long long)f2h(y0) | ((unsigned long long)f2h(y1) << 16)
                            | ((unsigned long long)f2h(y2) << 32) | ((unsigned long long)f2h(y3) << 48);
                        *((unsigned long long*)(out16 + base + c)) = packed;
                    }
                }
            } else {
                for (int c = threadIdx.x; c < width; c += blockDim.x) {
                    float y = activate_code((float)acc[base + c] * mult[c] + (bias ? bias[c] : 0.0f), act);
                    if (out32) out32[base + c] = y; else out16[base + c] = f2h(y);
                }
            }
        }
    }

    extern "C" __global__ void kiln_f32_to_f16(const float* x, half_t* out, long long n) {
        KILN_GRID_ENTER();
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
            out[i] = f2h(x[i]);
    }

    extern "C" __global__ void kiln_f16_to_f32(const half_t* x, float* out, long long n) {
        KILN_GRID_ENTER();
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
            out[i] = h2f(x[i]);
    }

    extern "C" __global__ void kiln_copy_rows_f32(const float* in, float* out, int rows, int width, long long in_stride) {
        KILN_GRID_ENTER();
        int r = blockIdx.x;
        if (r >= rows) return;
        for (int c = threadIdx.x; c < width; c += blockDim.x) out[(long long)r * width + c] = in[r * in_stride + c];
    }

    // Materialises a strided view: out[r, c] = in[r * in_stride + c], contiguous out.
    extern "C" __global__ void kiln_copy_rows(const half_t* in, half_t* out, int rows, int width, long long in_stride) {
        KILN_GRID_ENTER();
        int r = blockIdx.x;
        if (r >= rows) return;
        for (int c = threadIdx.x; c < width; c += blockDim.x) out[(long long)r * width + c] = in[r * in_stride + c];
    }

    // Multi-head attention for short sequences, one block per (head, batch, 16 query rows).
    // Q/K/V rows are `qkv_stride` halves apart (the fused QKV GEMM output read in place); the head
    // h of token t starts at t * qkv_stride + h * head_size. Needs even head_size and qkv_stride
    // (4-byte half pairs; the host checks). K and V of the head are staged in shared memory
    // (fp16; K rows padded one bank apart so lanes reading different keys don't conflict); each
    // warp owns query rows: scores (lanes over keys, two accumulators), softmax with warp
    // reductions in fp32, then context (lanes over pairs of head dims). mask[b, h, i, j] is
    // additive fp32 with broadcast strides (0 for broadcast axes); mask may be null.
    extern "C" __global__ void kiln_attention(const half_t* q, const half_t* k, const half_t* v, long long qkv_stride,
                                              const float* mask, long long mask_batch, long long mask_head, long long mask_row,
                                              half_t* out, long long out_stride, int seq, int head_size, float scale,
                                              int nan_to_zero, int rows_per_block) {
        KILN_GRID_ENTER();
        extern __shared__ unsigned char shared[];
        int head = blockIdx.x, batch = blockIdx.y;
        int warps = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
        int kstride = head_size + 2;
        int pairs = head_size >> 1;
        half_t* ks = (half_t*)shared;
        half_t* vs = ks + seq * kstride;
        float* qs = (float*)(vs + seq * head_size) + warp * (head_size + seq);
        float* ps = qs + head_size;
        long long token0 = (long long)batch * seq;
        int col0 = head * head_size;
        for (int t = warp; t < seq; t += warps) {
            const unsigned int* krow = (const unsigned int*)(k + (token0 + t) * qkv_stride + col0);
            const unsigned int* vrow = (const unsigned int*)(v + (token0 + t) * qkv_stride + col0);
            unsigned int* kd = (unsigned int*)(ks + t * kstride);
            unsigned int* vd = (unsigned int*)(vs + t * head_size);
            for (int p = lane; p < pairs; p += 32) { kd[p] = krow[p]; vd[p] = vrow[p]; }
        }
        __syncthreads();
        int first = blockIdx.z * rows_per_block;
        int last = min(seq, first + rows_per_block);
        for (int i = first + warp; i < last; i += warps) {
            long long qrow = (token0 + i) * qkv_stride + col0;
            for (int d = lane; d < head_size; d += 32) qs[d] = h2f(q[qrow + d]) * scale;
            __syncwarp();
            const float* mrow = mask ? mask + batch * mask_batch + head * mask_head + i * mask_row : 0;
            float best = KILN_NEG_INF;
            for (int j = lane; j < seq; j += 32) {
                const unsigned int* kr = (const unsigned int*)(ks + j * kstride);
                float a0 = 0.f, a1 = 0.f;
                #pragma unroll 8
                for (int p = 0; p < pairs; p++) {
                    unsigned int w = kr[p];
                    a0 += qs[2 * p] * h2f((half_t)(w & 0xffffu));
                    a1 += qs[2 * p + 1] * h2f((half_t)(w >> 16));
                }
                float s = a0 + a1;
                if (mrow) s += mrow[j];
                ps[j] = s;
                best = fmaxf(best, s);
            }
            best = warp_max(best);
            float total = 0.f;
            for (int j = lane; j < seq; j += 32) {
                float e = (best == KILN_NEG_INF) ? 0.f : __expf(ps[j] - best);
                ps[j] = e;
                total += e;
            }
            total = warp_sum(total);
            __syncwarp();
            bool empty = !(total > 0.f);
            float inv = empty ? 0.f : 1.f / total;
            float nan = __int_as_float(0x7fc00000);
            long long orow = (token0 + i) * out_stride + col0;
            for (int p = lane; p < pairs; p += 32) {
                float c0 = 0.f, c1 = 0.f;
                #pragma unroll 4
                for (int j = 0; j < seq; j++) {
                    unsigned int w = ((const unsigned int*)(vs + j * head_size))[p];
                    float pj = ps[j];
                    c0 += pj * h2f((half_t)(w & 0xffffu));
                    c1 += pj * h2f((half_t)(w >> 16));
                }
                float v0 = empty ? (nan_to_zero ? 0.f : nan) : c0 * inv;
                float v1 = empty ? (nan_to_zero ? 0.f : nan) : c1 * inv;
                ((unsigned int*)(out + orow))[p] = (unsigned int)f2h(v0) | ((unsigned int)f2h(v1) << 16);
            }
            __syncwarp();
        }
    }

    // Tensor-core attention (mma.sync m16n8k16, fp16 in, fp32 accumulate) for head size 32 or 64
    // and sequences that are a multiple of 16 up to 128 (the shape buckets). One warp owns 16 query
    // rows; a block holds up to 4 warps of one (head, batch). K and V [seq][HS] are staged in
    // shared memory with 16-byte loads and stores (Q, K, V 16-byte aligned, qkv_stride a multiple
    // of 8: the launcher checks), four vectors per thread in flight, rows padded by 8 halves so
    // that the 8 rows a fragment load touches sit in distinct banks; V's B fragments come
    // transposed out of shared memory by ldmatrix.trans. Scores stay in registers: scale + additive mask, row max / sum
    // over the 4 lanes of a quad, exp in fp32; the unnormalised probabilities become the A
    // fragments of P.V directly (the FlashAttention-2 register layout), and rows are divided by
    // their sum at the end. A row whose scores are all -inf gives NaN (or 0 with nan_to_zero),
    // like kiln_attention.
    __device__ __forceinline__ void mma_16816(float* c, const unsigned int* a, const unsigned int* b) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    __device__ __forceinline__ void ldmatrix_x4_trans(unsigned int* r, const half_t* p) {
        unsigned int address;
        asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"(p));
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                     : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
    }
    #define KILN_MMA_MAX_TILES 16
    template <int HS>
    __device__ __forceinline__ void attention_mma(const half_t* q, const half_t* k, const half_t* v, long long qkv_stride,
                                                  const float* mask, long long mask_batch, long long mask_head, long long mask_row,
                                                  half_t* out, long long out_stride, int seq, float scale, int nan_to_zero) {
        extern __shared__ __attribute__((aligned(16))) unsigned char mma_shared[];
        const int kstride = HS + 8;
        int head = blockIdx.x, batch = blockIdx.y;
        int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
        int g = lane >> 2, tq = lane & 3;
        half_t* ks = (half_t*)mma_shared;
        half_t* vs = ks + seq * kstride;
        long long token0 = (long long)batch * seq;
        int col0 = head * HS;
        const int vectors = seq * (HS / 8);
        for (int base = threadIdx.x; base < vectors; base += 4 * blockDim.x) {
            kiln_u4 kv[4], vv[4];
            #pragma unroll
            for (int u = 0; u < 4; u++) {
                int idx = base + u * blockDim.x;
                if (idx < vectors) {
                    int t = idx / (HS / 8), c = (idx - t * (HS / 8)) * 8;
                    long long offset = (token0 + t) * qkv_stride + col0 + c;
                    kv[u] = ld_u4(k + offset);
                    vv[u] = ld_u4(v + offset);
                }
            }
            #pragma unroll
            for (int u = 0; u < 4; u++) {
                int idx = base + u * blockDim.x;
                if (idx < vectors) {
                    int t = idx / (HS / 8), c = (idx - t * (HS / 8)) * 8;
                    *(kiln_u4*)(ks + t * kstride + c) = kv[u];
                    *(kiln_u4*)(vs + t * kstride + c) = vv[u];
                }
            }
        }
        __syncthreads();
        int row0 = (blockIdx.z * (blockDim.x >> 5) + warp) * 16;
        if (row0 >= seq) return;
        const half_t* q_lo = q + (token0 + row0 + g) * qkv_stride + col0;
        const half_t* q_hi = q_lo + 8 * qkv_stride;
        unsigned int qa[HS / 16][4];
        #pragma unroll
        for (int kk = 0; kk < HS / 16; kk++) {
            int c = kk * 16 + tq * 2;
            qa[kk][0] = *(const unsigned int*)(q_lo + c);
            qa[kk][1] = *(const unsigned int*)(q_hi + c);
            qa[kk][2] = *(const unsigned int*)(q_lo + c + 8);
            qa[kk][3] = *(const unsigned int*)(q_hi + c + 8);
        }
        int tiles = seq >> 3;
        float s[KILN_MMA_MAX_TILES][4];
        #pragma unroll
        for (int nt = 0; nt < KILN_MMA_MAX_TILES; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
            if (nt < tiles) {
                const half_t* krow = ks + (nt * 8 + g) * kstride + tq * 2;
                #pragma unroll
                for (int kk = 0; kk < HS / 16; kk++) {
                    unsigned int b[2] = {*(const unsigned int*)(krow + kk * 16), *(const unsigned int*)(krow + kk * 16 + 8)};
                    mma_16816(s[nt], qa[kk], b);
                }
            }
        }
        const float* m_lo = mask ? mask + batch * mask_batch + head * mask_head + (long long)(row0 + g) * mask_row : 0;
        const float* m_hi = mask ? m_lo + 8 * mask_row : 0;
        float max_lo = KILN_NEG_INF, max_hi = KILN_NEG_INF;
        #pragma unroll
        for (int nt = 0; nt < KILN_MMA_MAX_TILES; nt++) {
            if (nt < tiles) {
                int j = nt * 8 + tq * 2;
                s[nt][0] = s[nt][0] * scale + (m_lo ? m_lo[j] : 0.f);
                s[nt][1] = s[nt][1] * scale + (m_lo ? m_lo[j + 1] : 0.f);
                s[nt][2] = s[nt][2] * scale + (m_hi ? m_hi[j] : 0.f);
                s[nt][3] = s[nt][3] * scale + (m_hi ? m_hi[j + 1] : 0.f);
                max_lo = fmaxf(max_lo, fmaxf(s[nt][0], s[nt][1]));
                max_hi = fmaxf(max_hi, fmaxf(s[nt][2], s[nt][3]));
            }
        }
        for (int o = 1; o <= 2; o <<= 1) {
            max_lo = fmaxf(max_lo, __shfl_xor_sync(0xffffffffu, max_lo, o));
            max_hi = fmaxf(max_hi, __shfl_xor_sync(0xffffffffu, max_hi, o));
        }
        float sum_lo = 0.f, sum_hi = 0.f;
        #pragma unroll
        for (int nt = 0; nt < KILN_MMA_MAX_TILES; nt++) {
            if (nt < tiles) {
                s[nt][0] = max_lo == KILN_NEG_INF ? 0.f : __expf(s[nt][0] - max_lo);
                s[nt][1] = max_lo == KILN_NEG_INF ? 0.f : __expf(s[nt][1] - max_lo);
                s[nt][2] = max_hi == KILN_NEG_INF ? 0.f : __expf(s[nt][2] - max_hi);
                s[nt][3] = max_hi == KILN_NEG_INF ? 0.f : __expf(s[nt][3] - max_hi);
                sum_lo += s[nt][0] + s[nt][1];
                sum_hi += s[nt][2] + s[nt][3];
            }
        }
        for (int o = 1; o <= 2; o <<= 1) {
            sum_lo += __shfl_xor_sync(0xffffffffu, sum_lo, o);
            sum_hi += __shfl_xor_sync(0xffffffffu, sum_hi, o);
        }
        float acc[HS / 8][4];
        #pragma unroll
        for (int nt = 0; nt < HS / 8; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
        #pragma unroll
        for (int kt = 0; kt < KILN_MMA_MAX_TILES / 2; kt++) {
            if (kt < (seq >> 4)) {
                unsigned int a[4] = {pack_half2(s[2 * kt][0], s[2 * kt][1]), pack_half2(s[2 * kt][2], s[2 * kt][3]),
                                     pack_half2(s[2 * kt + 1][0], s[2 * kt + 1][1]), pack_half2(s[2 * kt + 1][2], s[2 * kt + 1][3])};
                // ldmatrix.x4.trans: lanes 0-15 address keys kt*16 + 0..15 of head dims nt*8..+7,
                // lanes 16-31 the same keys of dims nt*8+8..+15; lane (g, tq) receives
                // V[kt*16 + 2tq (+1)][dim g] and V[kt*16 + 8 + 2tq (+1)][dim g] of each: the B
                // fragments of two n-tiles.
                #pragma unroll
                for (int nt = 0; nt < HS / 8; nt += 2) {
                    unsigned int b[4];
                    ldmatrix_x4_trans(b, vs + (kt * 16 + (lane & 15)) * kstride + nt * 8 + (lane >> 4) * 8);
                    mma_16816(acc[nt], a, b);
                    mma_16816(acc[nt + 1], a, b + 2);
                }
            }
        }
        float nan = __int_as_float(0x7fc00000);
        bool empty_lo = !(sum_lo > 0.f), empty_hi = !(sum_hi > 0.f);
        float inv_lo = empty_lo ? 0.f : 1.f / sum_lo, inv_hi = empty_hi ? 0.f : 1.f / sum_hi;
        float fill = nan_to_zero ? 0.f : nan;
        half_t* out_lo = out + (token0 + row0 + g) * out_stride + col0 + tq * 2;
        half_t* out_hi = out_lo + 8 * out_stride;
        #pragma unroll
        for (int nt = 0; nt < HS / 8; nt++) {
            *(unsigned int*)(out_lo + nt * 8) = empty_lo ? pack_half2(fill, fill) : pack_half2(acc[nt][0] * inv_lo, acc[nt][1] * inv_lo);
            *(unsigned int*)(out_hi + nt * 8) = empty_hi ? pack_half2(fill, fill) : pack_half2(acc[nt][2] * inv_hi, acc[nt][3] * inv_hi);
        }
    }
    extern "C" __global__ void kiln_attention_mma32(const half_t* q, const half_t* k, const half_t* v, long long qkv_stride,
                                                    const float* mask, long long mask_batch, long long mask_head, long long mask_row,
                                                    half_t* out, long long out_stride, int seq, float scale, int nan_to_zero) {
        KILN_GRID_ENTER();
        attention_mma<32>(q, k, v, qkv_stride, mask, mask_batch, mask_head, mask_row, out, out_stride, seq, scale, nan_to_zero);
    }
    extern "C" __global__ void kiln_attention_mma64(const half_t* q, const half_t* k, const half_t* v, long long qkv_stride,
                                                    const float* mask, long long mask_batch, long long mask_head, long long mask_row,
                                                    half_t* out, long long out_stride, int seq, float scale, int nan_to_zero) {
        KILN_GRID_ENTER();
        attention_mma<64>(q, k, v, qkv_stride, mask, mask_batch, mask_head, mask_row, out, out_stride, seq, scale, nan_to_zero);
    }
    // Skinny GEMM for a few rows (M <= 64: batch 1-2 at seq 32): Y[M, N] = act(X[M, K]·W + bias),
    // fp16 in and out, fp32 accumulation on the tensor cores (mma.sync m16n8k16). With so few rows
    // a GEMM is bound by streaming W once (BERT-base: 1.2-4.7 MB per GEMM), so the kernel is built
    // around keeping enough weight bytes in flight: every load is 16 bytes, a warp's loads for the
    // next 64-k chunk are issued before it multiplies the current one, and K is split over blocks
    // until the GPU is full.
    // k permutation: the sum over k does not care which physical k an mma's logical k is, as long
    // as A and B agree. Lane (g, t) supplies logical k {2t, 2t+1, 2t+8, 2t+9} of each m16n8k16
    // step; in step s (0..3) of a 64-k chunk it takes physical k 32(s / 2) + 8t + 4(s % 2) .. +3
    // instead. So over a chunk a lane needs k 8t .. 8t+7 and 32+8t .. 32+8t+7 of one W row (wt =
    // Wᵀ, [N, K] row-major) and of each of its X rows: two 16-byte loads each, and each of a
    // warp's W loads covers 64 contiguous bytes (two whole sectors) of 8 rows.
    // Block: 4 warps; warp w owns columns 128·blockIdx.x + 32w .. +32 (4 n-tiles of 8) over k in
    // [kspan·blockIdx.y, +kspan) and all MT m-tiles of 16 rows (rows past M load row M-1 and are
    // never written). The 4 warps read the same X (L1 serves the repeats); W bypasses L1.
    // One split: the epilogue runs from registers. Several: partial sums are added into an fp32
    // workspace ([M, N], all zero between calls) with vector reductions at L2; the last block of a
    // column tile (a counter per tile) reads the sums back through L2, zeroes them, adds the bias,
    // applies the activation (activate_code) and writes Y, then resets its counter. Needs K a
    // multiple of 64, N of 32, lda of 8 and 16-byte aligned X, W and Y (the launcher checks).
    template <int MT> struct SkinnyChunk {
        kiln_u4 w[4][2];       // [n-tile][half of the lane's 16 k]
        kiln_u4 x[MT][2][2];   // [m-tile][row g, row g + 8][half]
    };
    template <int MT>
    __device__ __forceinline__ void skinny_load(SkinnyChunk<MT>& f, const half_t* const* xrow, const half_t* wrow, int k, int kc) {
        #pragma unroll
        for (int nt = 0; nt < 4; nt++) {
            f.w[nt][0] = ld_stream_u4(wrow + (long long)nt * 8 * k + kc);
            f.w[nt][1] = ld_stream_u4(wrow + (long long)nt * 8 * k + kc + 32);
        }
        #pragma unroll
        for (int i = 0; i < 2 * MT; i++) {
            f.x[i >> 1][i & 1][0] = ld_u4(xrow[i] + kc);
            f.x[i >> 1][i & 1][1] = ld_u4(xrow[i] + kc + 32);
        }
    }
    template <int MT>
    __device__ __forceinline__ void skinny_mma(float (&acc)[MT][4][4], const SkinnyChunk<MT>& f) {
        #pragma unroll
        for (int s = 0; s < 4; s++) {
            int h = s >> 1, lo = (s & 1) * 2;
            #pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                unsigned int a[4] = {u4_word(f.x[mt][0][h], lo), u4_word(f.x[mt][1][h], lo),
                                     u4_word(f.x[mt][0][h], lo + 1), u4_word(f.x[mt][1][h], lo + 1)};
                #pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    unsigned int b[2] = {u4_word(f.w[nt][h], lo), u4_word(f.w[nt][h], lo + 1)};
                    mma_16816(acc[mt][nt], a, b);
                }
            }
        }
    }
    template <int MT>
    __device__ __forceinline__ void gemm_skinny(const half_t* x, int lda, const half_t* wt, const half_t* bias, half_t* y,
                                                float* workspace, unsigned int* counters, int m, int n, int k, int kspan, int act) {
        const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
        const int col0 = blockIdx.x * 128 + warp * 32;
        const int kbegin = blockIdx.y * kspan, kend = min(k, kbegin + kspan);
        float acc[MT][4][4];
        #pragma unroll
        for (int mt = 0; mt < MT; mt++)
            #pragma unroll
            for (int nt = 0; nt < 4; nt++) { acc[mt][nt][0] = 0.f; acc[mt][nt][1] = 0.f; acc[mt][nt][2] = 0.f; acc[mt][nt][3] = 0.f; }
        if (col0 < n) {
            const half_t* xrow[2 * MT];
            #pragma unroll
            for (int i = 0; i < 2 * MT; i++) xrow[i] = x + (long long)min((i >> 1) * 16 + g + 8 * (i & 1), m - 1) * lda + 8 * t;
            const half_t* wrow = wt + (long long)(col0 + g) * k + 8 * t;
            SkinnyChunk<MT> f0, f1;
            int kc = kbegin;
            skinny_load(f0, xrow, wrow, k, kc);
            while (true) {
                bool more = kc + 64 < kend;
                if (more) skinny_load(f1, xrow, wrow, k, kc + 64);
                skinny_mma(acc, f0);
                if (!more) break;
                kc += 64;
                bool again = kc + 64 < kend;
                if (again) skinny_load(f0, xrow, wrow, k, kc + 64);
                skinny_mma(acc, f1);
                if (!again) break;
                kc += 64;
            }
        }
        if (gridDim.y == 1) {
            if (col0 >= n) return;
            #pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                int col = col0 + nt * 8 + 2 * t;
                float b0 = bias ? h2f(bias[col]) : 0.f, b1 = bias ? h2f(bias[col + 1]) : 0.f;
                #pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    #pragma unroll
                    for (int h = 0; h < 2; h++) {
                        int row = mt * 16 + g + 8 * h;
                        if (row < m) {
                            float v0 = activate_code(acc[mt][nt][2 * h] + b0, act), v1 = activate_code(acc[mt][nt][2 * h + 1] + b1, act);
                            *(unsigned int*)(y + (long long)row * n + col) = pack_half2(v0, v1);
                        }
                    }
                }
            }
            return;
        }
        if (col0 < n) {
            #pragma unroll
            for (int mt = 0; mt < MT; mt++)
                #pragma unroll
                for (int nt = 0; nt < 4; nt++)
                    #pragma unroll
                    for (int h = 0; h < 2; h++) {
                        int row = mt * 16 + g + 8 * h;
                        if (row < m) {
                            float* p = workspace + (long long)row * n + col0 + nt * 8 + 2 * t;
                            #if __CUDA_ARCH__ >= 900
                            asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" :: "l"(p), "f"(acc[mt][nt][2 * h]), "f"(acc[mt][nt][2 * h + 1]) : "memory");
                            #else
                            asm volatile("red.global.add.f32 [%0], %1;" :: "l"(p), "f"(acc[mt][nt][2 * h]) : "memory");
                            asm volatile("red.global.add.f32 [%0], %1;" :: "l"(p + 1), "f"(acc[mt][nt][2 * h + 1]) : "memory");
                            #endif
                        }
                    }
        }
        __threadfence();
        __syncthreads();
        __shared__ int last;
        if (threadIdx.x == 0) last = atomicAdd(counters + blockIdx.x, 1u) == gridDim.y - 1;
        __syncthreads();
        if (!last) return;
        __threadfence();
        int tile0 = blockIdx.x * 128, width = min(128, n - tile0);
        for (int e = threadIdx.x; e < m * (width >> 2); e += blockDim.x) {
            int row = e / (width >> 2), c = tile0 + (e % (width >> 2)) * 4;
            float* p = workspace + (long long)row * n + c;
            float v[4];
            asm volatile("ld.global.cg.v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(v[0]), "=f"(v[1]), "=f"(v[2]), "=f"(v[3]) : "l"(p) : "memory");
            asm volatile("st.global.cg.v4.f32 [%0], {%1,%1,%1,%1};" :: "l"(p), "f"(0.f) : "memory");
            #pragma unroll
            for (int j = 0; j < 4; j++) v[j] = activate_code(v[j] + (bias ? h2f(bias[c + j]) : 0.f), act);
            unsigned int lo = pack_half2(v[0], v[1]), hi = pack_half2(v[2], v[3]);
            asm volatile("st.global.v2.u32 [%0], {%1, %2};" :: "l"(y + (long long)row * n + c), "r"(lo), "r"(hi) : "memory");
        }
        if (threadIdx.x == 0) counters[blockIdx.x] = 0u;
    }
    extern "C" __global__ void kiln_gemm_skinny_m1(const half_t* x, int lda, const half_t* wt, const half_t* bias,
            half_t* y, float* workspace, unsigned int* counters, int m, int n, int k, int kspan, int act) {
        KILN_GRID_ENTER();
        gemm_skinny<1>(x, lda, wt, bias, y, workspace, counters, m, n, k, kspan, act);
    }
    extern "C" __global__ void kiln_gemm_skinny_m2(const half_t* x, int lda, const half_t* wt, const half_t* bias,
            half_t* y, float* workspace, unsigned int* counters, int m, int n, int k, int kspan, int act) {
        KILN_GRID_ENTER();
        gemm_skinny<2>(x, lda, wt, bias, y, workspace, counters, m, n, k, kspan, act);
    }
    extern "C" __global__ void kiln_gemm_skinny_m3(const half_t* x, int lda, const half_t* wt, const half_t* bias,
            half_t* y, float* workspace, unsigned int* counters, int m, int n, int k, int kspan, int act) {
        KILN_GRID_ENTER();
        gemm_skinny<3>(x, lda, wt, bias, y, workspace, counters, m, n, k, kspan, act);
    }
    extern "C" __global__ void kiln_gemm_skinny_m4(const half_t* x, int lda, const half_t* wt, const half_t* bias,
            half_t* y, float* workspace, unsigned int* counters, int m, int n, int k, int kspan, int act) {
        KILN_GRID_ENTER();
        gemm_skinny<4>(x, lda, wt, bias, y, workspace, counters, m, n, k, kspan, act);
    }
    """#
}
