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
        "kiln_f32_to_f16", "kiln_f16_to_f32", "kiln_copy_rows", "kiln_bias_gelu", "kiln_binary_f32", "kiln_copy_rows_f32",
    ]

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
    /// Query rows one attention block handles.
    public static let attentionRowsPerBlock = 16
    /// Threads per LayerNorm block (one block per row).
    public static let layerNormThreads = 256

    /// The complete translation unit.
    public static let source = #"""
    // Kiln CUDA kernels (generated into NVRTC at engine build).
    typedef unsigned short half_t;
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

    // out[r, :] = table[index[r], :] (indices already validated and made non-negative on the host).
    extern "C" __global__ void kiln_gather_rows(const half_t* table, const int* index, half_t* out, int rows, int width) {
        int r = blockIdx.x;
        if (r >= rows) return;
        const half_t* src = table + (long long)index[r] * width;
        half_t* dst = out + (long long)r * width;
        for (int c = threadIdx.x; c < width; c += blockDim.x) dst[c] = src[c];
    }

    // out[i] = a[i] + b[i % b_count]: b broadcasts over leading axes.
    extern "C" __global__ void kiln_add_broadcast(const half_t* a, const half_t* b, half_t* out, long long n, long long b_count) {
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
            out[i] = f2h(h2f(a[i]) + h2f(b[i % b_count]));
    }

    // One block per row: sum = x (+ skip) (+ bias); y = (sum - mean) / sqrt(var + eps) * gamma (+ beta).
    // Two passes over the row kept in shared memory (fp32); y goes to out (fp16) and/or out32
    // (fp32, for values that feed the fp32 NLU heads); sum_out optional.
    extern "C" __global__ void kiln_layer_norm(const half_t* x, const half_t* skip, const float* bias, const float* gamma,
                                               const float* beta, half_t* out, float* out32, half_t* sum_out, int width, float eps) {
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

    extern "C" __global__ void kiln_gelu(const half_t* x, half_t* out, long long n, int tanh_form) {
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
            float v = h2f(x[i]);
            out[i] = f2h(tanh_form ? gelu_tanh(v) : gelu_erf(v));
        }
    }

    // In place: x[r, c] = gelu(x[r, c] + bias[c]) (the erf GELU cuBLASLt's epilogue lacks).
    // Rows are grid-strided and columns block-strided (no per-element 64-bit division); even
    // widths go two halves per 4-byte access.
    extern "C" __global__ void kiln_bias_gelu(half_t* x, const half_t* bias, int rows, int width) {
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

    extern "C" __global__ void kiln_f32_to_f16(const float* x, half_t* out, long long n) {
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
            out[i] = f2h(x[i]);
    }

    extern "C" __global__ void kiln_f16_to_f32(const half_t* x, float* out, long long n) {
        for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
            out[i] = h2f(x[i]);
    }

    extern "C" __global__ void kiln_copy_rows_f32(const float* in, float* out, int rows, int width, long long in_stride) {
        int r = blockIdx.x;
        if (r >= rows) return;
        for (int c = threadIdx.x; c < width; c += blockDim.x) out[(long long)r * width + c] = in[r * in_stride + c];
    }

    // Materialises a strided view: out[r, c] = in[r * in_stride + c], contiguous out.
    extern "C" __global__ void kiln_copy_rows(const half_t* in, half_t* out, int rows, int width, long long in_stride) {
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
    """#
}
