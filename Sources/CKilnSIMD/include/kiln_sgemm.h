// Kiln's own AVX2+FMA fp32 GEMM with weights packed once: Y = act(A·W + bias).
//
// Why: Debian's oneDNN 2.6.3 runs every fp32 matmul on an AVX2 CPU as `gemm:jit`, which
// re-arranges W on every call; here W is laid out once (at kernel construction) in panels of
// 16 columns and each call only streams them. Like the other CKilnSIMD functions these are
// compiled for AVX2+FMA on their own: call them only after KilnKernels' run-time check
// (`KernelISA.detected == .avx2`).
#ifndef KILN_SGEMM_H
#define KILN_SGEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Columns per packed panel (the micro-kernel's width).
#define KILN_SGEMM_PANEL 16

/// Epilogues of kiln_sgemm_avx2 (applied after the bias).
enum kiln_sgemm_activation {
    KILN_SGEMM_NONE = 0,
    KILN_SGEMM_GELU = 1,       // erf form (kiln_avx2_gelu, the GELU kernel's code)
    KILN_SGEMM_GELU_TANH = 2,  // tanh form (kiln_avx2_gelu)
    KILN_SGEMM_RELU = 3,
    KILN_SGEMM_TANH = 4        // libm tanhf (used by pooler heads: a few rows)
};

/// Floats the packed form of a k×n W takes: ceil(n/16) panels of k×16 (zero-padded columns).
size_t kiln_sgemm_packed_count(ptrdiff_t k, ptrdiff_t n);

/// Packs row-major W [k, n] into `packed` (kiln_sgemm_packed_count floats, 32-byte aligned):
/// panel p holds columns 16p..16p+15, k rows of 16 floats, columns past n zero.
void kiln_sgemm_pack(const float *w, ptrdiff_t k, ptrdiff_t n, float *packed);

/// Y[rows, n] = act(A·W + bias) for rows row_begin..<row_end and panels panel_begin..<panel_end
/// (columns 16·panel_begin ..< min(n, 16·panel_end)); disjoint (row, panel) ranges may run on
/// different threads at once. A is row-major [rows, k] (lda = k), Y row-major (ldy = n), bias
/// n floats or NULL. Y must not overlap A.
void kiln_sgemm_avx2(const float *a, ptrdiff_t row_begin, ptrdiff_t row_end, const float *packed,
                     ptrdiff_t k, ptrdiff_t n, ptrdiff_t panel_begin, ptrdiff_t panel_end,
                     const float *bias, int activation, float *y);

#ifdef __cplusplus
}
#endif

#endif
