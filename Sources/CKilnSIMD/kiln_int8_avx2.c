// AVX2 activation quantization and dequantization epilogue of the INT8 GEMM (see
// include/kiln_int8.h).
//
// Why u8: without AVX512-VNNI, int8 dot products on x86 go through vpmaddubsw, which multiplies
// an *unsigned* byte by a signed byte. oneDNN's fast AVX2 int8 GEMM therefore takes u8
// activations; given s8 it first copies and shifts the whole source (+128) on every call and
// then pays the same correction again. Here the shift happens for free while quantizing
// (level + 128), and the correction, -128·Σ_k w[k, n] per output column, is an exact int32
// constant the epilogue adds before scaling. 7-bit weights keep vpmaddubsw's 16-bit pair sums
// exact: 255·63·2 = 32130 < 32767.
//
// The epilogue applies the GEMM's GELU row by row right after dequantizing it (gelu != 0), while
// the row is still in L1, instead of as a second pass over the whole [rows, N] output; it calls the
// same kiln_avx2_gelu as the fp32 path, on the same values, so results are identical.
//
// Rounding matches Int8Quantization.quantize bit for bit: x·(1/scale) in fp32, round half to
// even (cvtps under the default MXCSR), clamp to ±127; NaN → level 0.
#include "kiln_int8.h"
#include "kiln_simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>

#define KILN_AVX2 __attribute__((target("avx2,fma")))

// 8 floats → 8 int32 levels in [-127, 127] (NaN → 0).
KILN_AVX2 static inline __m256i levels8(__m256 x, __m256 inverse) {
    __m256 scaled = _mm256_mul_ps(x, inverse);
    __m256 ordered = _mm256_cmp_ps(scaled, scaled, _CMP_ORD_Q);
    // max/min return their second operand for NaN, so NaN becomes -127 here and 0 below.
    __m256 clamped = _mm256_min_ps(_mm256_max_ps(scaled, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(_mm256_and_ps(clamped, ordered));
}

KILN_AVX2 void kiln_avx2_quantize_u8(const float *x, uint8_t *out, ptrdiff_t n, float inv_scale) {
    const __m256 inverse = _mm256_set1_ps(inv_scale);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i shift = _mm256_set1_epi8((char)0x80);
    ptrdiff_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = levels8(_mm256_loadu_ps(x + i), inverse);
        __m256i b = levels8(_mm256_loadu_ps(x + i + 8), inverse);
        __m256i c = levels8(_mm256_loadu_ps(x + i + 16), inverse);
        __m256i d = levels8(_mm256_loadu_ps(x + i + 24), inverse);
        // packs work per 128-bit lane; the permute puts the 4-byte groups back in order.
        __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        bytes = _mm256_permutevar8x32_epi32(bytes, order);
        // s8 level + 128 == level XOR 0x80 (two's complement).
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_xor_si256(bytes, shift));
    }
    for (; i < n; i++) {
        float scaled = x[i] * inv_scale;
        int level = 0;
        if (scaled == scaled) {
            scaled = scaled < -127.0f ? -127.0f : (scaled > 127.0f ? 127.0f : scaled);
            level = (int)nearbyintf(scaled);
        }
        out[i] = (uint8_t)(level + 128);
    }
}

KILN_AVX2 float kiln_avx2_abs_max(const float *x, ptrdiff_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 best = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        // max_ps(v, best) keeps best when v is NaN (second operand wins).
        best = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), best);
    }
    __m128 low = _mm_max_ps(_mm256_castps256_ps128(best), _mm256_extractf128_ps(best, 1));
    low = _mm_max_ps(low, _mm_movehl_ps(low, low));
    low = _mm_max_ss(low, _mm_movehdup_ps(low));
    float result = _mm_cvtss_f32(low);
    for (; i < n; i++) {
        float value = fabsf(x[i]);
        if (value > result) result = value;
    }
    return result;
}

KILN_AVX2 void kiln_avx2_int8_dequantize(const int32_t *acc, float *out, ptrdiff_t rows, ptrdiff_t n,
                                         const int32_t *compensation, const float *scales, const float *bias,
                                         int gelu) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const int32_t *in_row = acc + r * n;
        float *out_row = out + r * n;
        ptrdiff_t c = 0;
        for (; c + 8 <= n; c += 8) {
            __m256i sum = _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(in_row + c)),
                                           _mm256_loadu_si256((const __m256i *)(compensation + c)));
            __m256 value = _mm256_mul_ps(_mm256_cvtepi32_ps(sum), _mm256_loadu_ps(scales + c));
            if (bias) value = _mm256_add_ps(value, _mm256_loadu_ps(bias + c));
            _mm256_storeu_ps(out_row + c, value);
        }
        for (; c < n; c++) {
            float value = (float)(in_row[c] + compensation[c]) * scales[c];
            out_row[c] = bias ? value + bias[c] : value;
        }
        if (gelu) kiln_avx2_gelu(out_row, out_row, n, gelu == 2);
    }
}

#else

void kiln_avx2_quantize_u8(const float *x, uint8_t *out, ptrdiff_t n, float inv_scale) {
    (void)x; (void)out; (void)n; (void)inv_scale;
}
float kiln_avx2_abs_max(const float *x, ptrdiff_t n) {
    (void)x; (void)n;
    return 0;
}
void kiln_avx2_int8_dequantize(const int32_t *acc, float *out, ptrdiff_t rows, ptrdiff_t n,
                               const int32_t *compensation, const float *scales, const float *bias, int gelu) {
    (void)acc; (void)out; (void)rows; (void)n; (void)compensation; (void)scales; (void)bias; (void)gelu;
}

#endif
