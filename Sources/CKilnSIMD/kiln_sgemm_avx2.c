// AVX2+FMA fp32 GEMM on weights packed once (see include/kiln_sgemm.h).
//
// Layout: W [k, n] becomes ceil(n/16) panels, each k rows of 16 contiguous floats (columns past
// n are zero), so the micro-kernel reads one panel as a single sequential stream.
// Micro-kernel: a 6×16 tile of Y in 12 ymm accumulators; per k step two aligned loads of the
// panel row and six broadcasts of A (15 registers of 16). Zen 3 issues 2 FMAs per cycle, so the
// loop is FMA-bound (12 FMAs vs 8 loads per step).
// Blocking: k is cut into near-equal blocks of at most 384 (a 384×16 panel slice is 24 KB: it
// stays in the 32 KB L1d while every 6-row tile of the row block reuses it); rows into blocks of
// 144 (a 144×384 A block is 216 KB: it stays in the 512 KB L2 while the panels stream past).
// Tiles accumulate in Y across k blocks; the bias seeds the first block and the activation runs
// on the last, while the tile is still in registers (ReLU) or L1 (GELU through kiln_avx2_gelu,
// the GELU kernel's own code, so results match the unfused path; tanh through libm).
// Edges: fewer than 6 rows use the same kernel instantiated for 1..5 rows; a partial panel
// (n not a multiple of 16) uses masked loads/stores, never touching Y past column n.
// Threads: callers split (row range, panel range) pairs; disjoint pairs write disjoint Y.
#include "kiln_sgemm.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

size_t kiln_sgemm_packed_count(ptrdiff_t k, ptrdiff_t n) {
    return (size_t)((n + KILN_SGEMM_PANEL - 1) / KILN_SGEMM_PANEL) * (size_t)k * KILN_SGEMM_PANEL;
}

void kiln_sgemm_pack(const float *w, ptrdiff_t k, ptrdiff_t n, float *packed) {
    ptrdiff_t panels = (n + KILN_SGEMM_PANEL - 1) / KILN_SGEMM_PANEL;
    for (ptrdiff_t p = 0; p < panels; p++) {
        for (ptrdiff_t r = 0; r < k; r++) {
            float *row = packed + (p * k + r) * KILN_SGEMM_PANEL;
            for (ptrdiff_t c = 0; c < KILN_SGEMM_PANEL; c++) {
                ptrdiff_t column = p * KILN_SGEMM_PANEL + c;
                row[c] = column < n ? w[r * n + column] : 0.0f;
            }
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

#include "kiln_simd.h"

#define KILN_AVX2 __attribute__((target("avx2,fma")))
#define KILN_INLINE __attribute__((always_inline)) inline

#ifndef KILN_SGEMM_K_BLOCK
#define KILN_SGEMM_K_BLOCK 384
#endif
#ifndef KILN_SGEMM_ROW_BLOCK
#define KILN_SGEMM_ROW_BLOCK 144
#endif
enum { MICRO_ROWS = 6, ROW_BLOCK = KILN_SGEMM_ROW_BLOCK, K_BLOCK = KILN_SGEMM_K_BLOCK };

// loadu(lane_masks + 8 - r) has its first r lanes set (0 <= r <= 8).
static const int32_t lane_masks[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

KILN_AVX2 static KILN_INLINE __m256i lane_mask(ptrdiff_t lanes) {
    return _mm256_loadu_si256((const __m256i *)(lane_masks + 8 - lanes));
}

// One tile: rows × 16 columns of Y (nr of them real; `wide` == 0: nr <= 8 and only the first 8
// are computed). `rows` and `wide` are compile-time constants at every call (tile_rows), so the
// loops unroll and c0/c1 live in registers.
KILN_AVX2 static KILN_INLINE void tile(const int rows, const int wide, const float *a, const float *panel, ptrdiff_t kc,
                                       float *y, ptrdiff_t ldy, ptrdiff_t nr, const float *bias, int first, int last,
                                       int activation) {
    __m256 c0[MICRO_ROWS], c1[MICRO_ROWS];
    const int full = nr == KILN_SGEMM_PANEL;
    const __m256i m0 = lane_mask(nr < 8 ? nr : 8), m1 = lane_mask(nr > 8 ? nr - 8 : 0);
    if (first) {
        __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
        if (bias) {
            b0 = full ? _mm256_loadu_ps(bias) : _mm256_maskload_ps(bias, m0);
            b1 = full ? _mm256_loadu_ps(bias + 8) : _mm256_maskload_ps(bias + 8, m1);
        }
        for (int i = 0; i < rows; i++) { c0[i] = b0; c1[i] = b1; }
    } else {
        for (int i = 0; i < rows; i++) {
            c0[i] = full ? _mm256_loadu_ps(y + i * ldy) : _mm256_maskload_ps(y + i * ldy, m0);
            c1[i] = !wide ? _mm256_setzero_ps() : full ? _mm256_loadu_ps(y + i * ldy + 8) : _mm256_maskload_ps(y + i * ldy + 8, m1);
        }
    }
#if defined(__clang__)
#pragma clang loop unroll_count(4)
#endif
    for (ptrdiff_t p = 0; p < kc; p++) {
        const __m256 w0 = _mm256_load_ps(panel + p * KILN_SGEMM_PANEL);
        const __m256 w1 = wide ? _mm256_load_ps(panel + p * KILN_SGEMM_PANEL + 8) : w0;
        for (int i = 0; i < rows; i++) {
            const __m256 x = _mm256_broadcast_ss(a + p * MICRO_ROWS + i);
            c0[i] = _mm256_fmadd_ps(x, w0, c0[i]);
            if (wide) c1[i] = _mm256_fmadd_ps(x, w1, c1[i]);
        }
    }
    if (last && activation == KILN_SGEMM_RELU) {
        const __m256 zero = _mm256_setzero_ps();
        for (int i = 0; i < rows; i++) { c0[i] = _mm256_max_ps(c0[i], zero); c1[i] = _mm256_max_ps(c1[i], zero); }
    }
    for (int i = 0; i < rows; i++) {
        if (full) {
            _mm256_storeu_ps(y + i * ldy, c0[i]);
            _mm256_storeu_ps(y + i * ldy + 8, c1[i]);
        } else {
            _mm256_maskstore_ps(y + i * ldy, m0, c0[i]);
            if (wide) _mm256_maskstore_ps(y + i * ldy + 8, m1, c1[i]);
        }
    }
    if (!last || activation == KILN_SGEMM_NONE || activation == KILN_SGEMM_RELU) return;
    for (int i = 0; i < rows; i++) {
        float *row = y + i * ldy;
        if (activation == KILN_SGEMM_TANH) {
            for (ptrdiff_t j = 0; j < nr; j++) row[j] = tanhf(row[j]);
        } else {
            kiln_avx2_gelu(row, row, nr, activation == KILN_SGEMM_GELU_TANH);
        }
    }
}

// Instantiates `tile` for 1..6 rows, 16 columns or (a last panel of at most 8 real columns, e.g.
// small classifier heads) 8, so such panels skip the FMAs and loads of their empty half.
#define KILN_TILE_CASE(r) \
    case r: \
        if (wide) tile(r, 1, a, panel, kc, y, ldy, nr, bias, first, last, activation); \
        else tile(r, 0, a, panel, kc, y, ldy, nr, bias, first, last, activation); \
        break;
KILN_AVX2 static void tile_rows(ptrdiff_t rows, const float *a, const float *panel, ptrdiff_t kc,
                                float *y, ptrdiff_t ldy, ptrdiff_t nr, const float *bias, int first, int last,
                                int activation) {
    const int wide = nr > 8;
    switch (rows) {
    KILN_TILE_CASE(6)
    KILN_TILE_CASE(5)
    KILN_TILE_CASE(4)
    KILN_TILE_CASE(3)
    KILN_TILE_CASE(2)
    default:
        if (wide) tile(1, 1, a, panel, kc, y, ldy, nr, bias, first, last, activation);
        else tile(1, 0, a, panel, kc, y, ldy, nr, bias, first, last, activation);
        break;
    }
}
#undef KILN_TILE_CASE

// Copies rows m0..<m1, columns k0..<k0+kc of A into tiles of 6 rows, each kc steps of 6
// floats (row i of a tile at offset 6·p + i): the micro-kernel then reads A as one sequential
// stream instead of six strided ones. Missing rows of the last tile are left as they are (the
// kernel instantiated for fewer rows never reads them).
KILN_AVX2 static void pack_rows(const float *a, ptrdiff_t lda, ptrdiff_t m0, ptrdiff_t m1, ptrdiff_t k0, ptrdiff_t kc,
                                float *out) {
    for (ptrdiff_t i = m0; i < m1; i += MICRO_ROWS) {
        const ptrdiff_t rows = m1 - i < MICRO_ROWS ? m1 - i : MICRO_ROWS;
        for (ptrdiff_t r = 0; r < rows; r++) {
            const float *source = a + (i + r) * lda + k0;
            for (ptrdiff_t p = 0; p < kc; p++) out[p * MICRO_ROWS + r] = source[p];
        }
        out += kc * MICRO_ROWS;
    }
}

// The packed-A buffer of the calling thread: one row block × one k block (216 KB), allocated on
// first use and kept for the thread's life (GEMM threads are the long-lived OpenMP team and
// the engine's workers), so no call allocates.
static float *row_buffer(void) {
    static _Thread_local float *buffer;
    if (!buffer) buffer = aligned_alloc(64, sizeof(float) * ROW_BLOCK * K_BLOCK);
    return buffer;
}

KILN_AVX2 void kiln_sgemm_avx2(const float *a, ptrdiff_t row_begin, ptrdiff_t row_end, const float *packed,
                               ptrdiff_t k, ptrdiff_t n, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                               const float *bias, int activation, float *y) {
    const ptrdiff_t k_blocks = (k + K_BLOCK - 1) / K_BLOCK;
    const ptrdiff_t k_step = (k + k_blocks - 1) / k_blocks;
    float *a_block = row_buffer();
    if (!a_block) abort();
    for (ptrdiff_t k0 = 0; k0 < k; k0 += k_step) {
        const ptrdiff_t kc = k - k0 < k_step ? k - k0 : k_step;
        const int first = k0 == 0, last = k0 + kc >= k;
        for (ptrdiff_t m0 = row_begin; m0 < row_end; m0 += ROW_BLOCK) {
            const ptrdiff_t m1 = row_end - m0 < ROW_BLOCK ? row_end : m0 + ROW_BLOCK;
            pack_rows(a, k, m0, m1, k0, kc, a_block);
            for (ptrdiff_t p = panel_begin; p < panel_end; p++) {
                const float *panel = packed + (p * k + k0) * KILN_SGEMM_PANEL;
                const ptrdiff_t column = p * KILN_SGEMM_PANEL;
                const ptrdiff_t nr = n - column < KILN_SGEMM_PANEL ? n - column : KILN_SGEMM_PANEL;
                const float *panel_bias = bias ? bias + column : NULL;
                const float *a_tile = a_block;
                for (ptrdiff_t i = m0; i < m1; i += MICRO_ROWS, a_tile += kc * MICRO_ROWS) {
                    const ptrdiff_t rows = m1 - i < MICRO_ROWS ? m1 - i : MICRO_ROWS;
                    tile_rows(rows, a_tile, panel, kc, y + i * n + column, n, nr, panel_bias, first, last, activation);
                }
            }
        }
    }
}

#else

void kiln_sgemm_avx2(const float *a, ptrdiff_t row_begin, ptrdiff_t row_end, const float *packed, ptrdiff_t k,
                     ptrdiff_t n, ptrdiff_t panel_begin, ptrdiff_t panel_end, const float *bias, int activation,
                     float *y) {
    (void)a; (void)row_begin; (void)row_end; (void)packed; (void)k; (void)n;
    (void)panel_begin; (void)panel_end; (void)bias; (void)activation; (void)y;
}

#endif
