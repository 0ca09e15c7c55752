// AVX2+FMA kernels for LayerNorm, softmax, GELU and attention (see include/kiln_simd.h).
//
// Why C: Swift has no per-function target attribute, and compiling the whole package for AVX2
// would make the binary crash on older x86-64 CPUs. Here each function is compiled for
// AVX2+FMA on its own (`KILN_AVX2`) and only called after the run-time cpuid check in
// KilnKernels (KernelISA). The math mirrors the Swift kernels (Cephes exp, Eigen/XLA erf,
// two-pass LayerNorm statistics) so both paths agree to ~1e-6.
#include "kiln_simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#define KILN_AVX2 __attribute__((target("avx2,fma")))

int kiln_simd_has_avx2_build(void) { return 1; }

// loadu(tail_masks + 8 - r) has its first r lanes set: masked loads/stores for row tails.
static const int32_t tail_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

KILN_AVX2 static inline __m256i tail_mask(ptrdiff_t remaining) {
    return _mm256_loadu_si256((const __m256i *)(tail_masks + 8 - remaining));
}

KILN_AVX2 static inline float horizontal_sum(__m256 v) {
    __m128 low = _mm256_castps256_ps128(v);
    __m128 high = _mm256_extractf128_ps(v, 1);
    low = _mm_add_ps(low, high);
    low = _mm_add_ps(low, _mm_movehl_ps(low, low));
    low = _mm_add_ss(low, _mm_movehdup_ps(low));
    return _mm_cvtss_f32(low);
}

KILN_AVX2 static inline float horizontal_max(__m256 v) {
    __m128 low = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    low = _mm_max_ps(low, _mm_movehl_ps(low, low));
    low = _mm_max_ss(low, _mm_movehdup_ps(low));
    return _mm_cvtss_f32(low);
}

// e^x, Cephes: x = k·ln2 + r, polynomial in r, scale by 2^k; clamped to [-87.33, 88.37].
KILN_AVX2 static inline __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.33f)), _mm256_set1_ps(88.37f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 poly = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(poly, _mm256_castsi256_ps(exponent));
}

// erf(x): x·P(x²)/Q(x²) on [-4, 4] (Eigen/XLA's rational approximation), ±1 beyond.
KILN_AVX2 static inline __m256 erf256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0f)), _mm256_set1_ps(4.0f));
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-2.72614225801306e-10f);
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.77068142495902e-08f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.10102402082508e-06f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.69250639462346e-05f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-7.34990630326855e-04f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.95459980854025e-03f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.60960333262415e-02f));
    p = _mm256_mul_ps(p, x);
    __m256 q = _mm256_set1_ps(-1.45660718464996e-05f);
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-2.13374055278905e-04f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.68282697438203e-03f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-7.37332916720468e-03f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.42647390514189e-02f));
    return _mm256_div_ps(p, q);
}

KILN_AVX2 static inline __m256 gelu_erf256(__m256 x) {
    __m256 half_x = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
    __m256 e = erf256(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
    return _mm256_fmadd_ps(half_x, e, half_x);
}

// x / (1 + e^{-2u}), u = √(2/π)·(x + 0.044715·x³): the tanh form without cancellation.
KILN_AVX2 static inline __m256 gelu_tanh256(__m256 x) {
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
    __m256 e = exp256(_mm256_mul_ps(u, _mm256_set1_ps(-2.0f)));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

KILN_AVX2 void kiln_avx2_add_rows(const float *a, const float *b, const float *bias, float *out, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 sum = _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        if (bias) sum = _mm256_add_ps(sum, _mm256_loadu_ps(bias + i));
        _mm256_storeu_ps(out + i, sum);
    }
    for (; i < n; i++) out[i] = a[i] + b[i] + (bias ? bias[i] : 0.0f);
}

KILN_AVX2 void kiln_avx2_layer_norm_row(const float *x, const float *gamma, const float *beta, float *out,
                                        ptrdiff_t n, float epsilon) {
    __m256 sum_v = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) sum_v = _mm256_add_ps(sum_v, _mm256_loadu_ps(x + i));
    float sum = horizontal_sum(sum_v);
    for (; i < n; i++) sum += x[i];
    const float mean = sum / (float)n;
    const __m256 mean_v = _mm256_set1_ps(mean);
    __m256 squares_v = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), mean_v);
        squares_v = _mm256_fmadd_ps(d, d, squares_v);
    }
    float squares = horizontal_sum(squares_v);
    for (; i < n; i++) squares += (x[i] - mean) * (x[i] - mean);
    const float inverse = 1.0f / sqrtf(squares / (float)n + epsilon);
    const __m256 inverse_v = _mm256_set1_ps(inverse);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mean_v), inverse_v), _mm256_loadu_ps(gamma + i));
        if (beta) v = _mm256_add_ps(v, _mm256_loadu_ps(beta + i));
        _mm256_storeu_ps(out + i, v);
    }
    for (; i < n; i++) out[i] = (x[i] - mean) * inverse * gamma[i] + (beta ? beta[i] : 0.0f);
}

KILN_AVX2 void kiln_avx2_softmax_row(const float *x, float *out, ptrdiff_t n) {
    __m256 max_v = _mm256_set1_ps(-INFINITY);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) max_v = _mm256_max_ps(max_v, _mm256_loadu_ps(x + i));
    float maximum = horizontal_max(max_v);
    for (; i < n; i++) maximum = x[i] > maximum ? x[i] : maximum;
    if (maximum == -INFINITY) maximum = 0;  // an all-masked row: keep it finite (uniform result)
    const __m256 maximum_v = _mm256_set1_ps(maximum);
    __m256 sum_v = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), maximum_v));
        _mm256_storeu_ps(out + i, e);
        sum_v = _mm256_add_ps(sum_v, e);
    }
    if (i < n) {
        __m256i mask = tail_mask(n - i);
        __m256 e = exp256(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), maximum_v));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(out + i, mask, e);
        sum_v = _mm256_add_ps(sum_v, e);
    }
    const __m256 inverse_v = _mm256_set1_ps(1.0f / horizontal_sum(sum_v));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(out + i), inverse_v));
    if (i < n) {
        __m256i mask = tail_mask(n - i);
        _mm256_maskstore_ps(out + i, mask, _mm256_mul_ps(_mm256_maskload_ps(out + i, mask), inverse_v));
    }
}

KILN_AVX2 void kiln_avx2_gelu(const float *x, float *out, ptrdiff_t n, int tanh_form) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        _mm256_storeu_ps(out + i, tanh_form ? gelu_tanh256(v) : gelu_erf256(v));
    }
    if (i < n) {
        __m256i mask = tail_mask(n - i);
        __m256 v = _mm256_maskload_ps(x + i, mask);
        _mm256_maskstore_ps(out + i, mask, tanh_form ? gelu_tanh256(v) : gelu_erf256(v));
    }
}

KILN_AVX2 static inline float dot(const float *a, const float *b, ptrdiff_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    if (i + 8 <= n) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        i += 8;
    }
    if (i < n) {
        __m256i mask = tail_mask(n - i);
        acc1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, mask), _mm256_maskload_ps(b + i, mask), acc1);
    }
    return horizontal_sum(_mm256_add_ps(acc0, acc1));
}

// out[row, c0 ..< c0+8·blocks] = Σ_j p[row, j] · v[j, same columns], up to 4 vectors at once.
KILN_AVX2 static inline void context_block(const float *p, const float *v, ptrdiff_t in_stride, float *out,
                                           ptrdiff_t length, ptrdiff_t width) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const ptrdiff_t full = width / 8;
    const ptrdiff_t rest = width % 8;
    const __m256i mask = tail_mask(rest == 0 ? 8 : rest);
    for (ptrdiff_t j = 0; j < length; j++) {
        const __m256 weight = _mm256_broadcast_ss(p + j);
        const float *row = v + j * in_stride;
        for (ptrdiff_t b = 0; b < full; b++) acc[b] = _mm256_fmadd_ps(weight, _mm256_loadu_ps(row + 8 * b), acc[b]);
        if (rest) acc[full] = _mm256_fmadd_ps(weight, _mm256_maskload_ps(row + 8 * full, mask), acc[full]);
    }
    for (ptrdiff_t b = 0; b < full; b++) _mm256_storeu_ps(out + 8 * b, acc[b]);
    if (rest) _mm256_maskstore_ps(out + 8 * full, mask, acc[full]);
}

KILN_AVX2 void kiln_avx2_attention_head(const float *q, const float *k, const float *v, ptrdiff_t in_stride,
                                        float *out, ptrdiff_t out_stride, ptrdiff_t length, ptrdiff_t head_size,
                                        float scale, const float *mask, ptrdiff_t mask_row_stride, float *scores) {
    for (ptrdiff_t row = 0; row < length; row++) {
        float *score_row = scores + row * length;
        const float *query_row = q + row * in_stride;
        const float *mask_row = mask ? mask + row * mask_row_stride : NULL;
        for (ptrdiff_t j = 0; j < length; j++) {
            float s = dot(query_row, k + j * in_stride, head_size) * scale;
            score_row[j] = mask_row ? s + mask_row[j] : s;
        }
        kiln_avx2_softmax_row(score_row, score_row, length);
    }
    for (ptrdiff_t row = 0; row < length; row++) {
        for (ptrdiff_t column = 0; column < head_size; column += 32) {
            ptrdiff_t width = head_size - column < 32 ? head_size - column : 32;
            context_block(scores + row * length, v + column, in_stride, out + row * out_stride + column, length, width);
        }
    }
}

#else  // not x86-64: stubs, never called (KernelISA.detected is .baseline there)

int kiln_simd_has_avx2_build(void) { return 0; }
void kiln_avx2_add_rows(const float *a, const float *b, const float *bias, float *out, ptrdiff_t n) {
    (void)a; (void)b; (void)bias; (void)out; (void)n;
}
void kiln_avx2_layer_norm_row(const float *x, const float *gamma, const float *beta, float *out, ptrdiff_t n, float epsilon) {
    (void)x; (void)gamma; (void)beta; (void)out; (void)n; (void)epsilon;
}
void kiln_avx2_softmax_row(const float *x, float *out, ptrdiff_t n) { (void)x; (void)out; (void)n; }
void kiln_avx2_gelu(const float *x, float *out, ptrdiff_t n, int tanh_form) { (void)x; (void)out; (void)n; (void)tanh_form; }
void kiln_avx2_attention_head(const float *q, const float *k, const float *v, ptrdiff_t in_stride, float *out,
                              ptrdiff_t out_stride, ptrdiff_t length, ptrdiff_t head_size, float scale,
                              const float *mask, ptrdiff_t mask_row_stride, float *scores) {
    (void)q; (void)k; (void)v; (void)in_stride; (void)out; (void)out_stride; (void)length; (void)head_size;
    (void)scale; (void)mask; (void)mask_row_stride; (void)scores;
}

#endif
