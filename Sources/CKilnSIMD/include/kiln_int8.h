// AVX2 row kernels around the INT8 GEMM (Sources/KilnKernels/CPU/Int8MatMulKernel.swift): the
// activation quantization before it and the dequantization epilogue after it. Same contract as
// kiln_simd.h: compiled for AVX2 per function, called only after KernelISA's cpuid check; every
// function has a Swift baseline twin (Int8RowKernels) and the INT8 reference
// (Int8MatMulReference) that the kernel tests hold equal.
#ifndef KILN_INT8_H
#define KILN_INT8_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// out[i] = clamp(round_half_even(x[i]·inv_scale), -127, 127) + 128, n values: the s8 level
/// shifted into u8 (the operand type of the u8×s8 GEMM on AVX2). NaN maps to level 0 (128).
void kiln_avx2_quantize_u8(const float *x, uint8_t *out, ptrdiff_t n, float inv_scale);

/// max |x[i]| over n floats (NaN skipped); 0 for n == 0.
float kiln_avx2_abs_max(const float *x, ptrdiff_t n);

/// The INT8 GEMM epilogue over rows×n int32 accumulators (row-major):
/// out[r, c] = (float)(acc[r, c] + compensation[c]) · scales[c] + bias[c]  (bias may be NULL),
/// then, per row while it is in cache, GELU when gelu != 0 (1: erf form, 2: tanh form; the same
/// kiln_avx2_gelu as the fp32 path). out may alias acc (converted in place).
void kiln_avx2_int8_dequantize(const int32_t *acc, float *out, ptrdiff_t rows, ptrdiff_t n,
                               const int32_t *compensation, const float *scales, const float *bias, int gelu);

#ifdef __cplusplus
}
#endif

#endif
