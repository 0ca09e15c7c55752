// AVX2+FMA versions of Kiln's CPU SIMD kernels (row-level building blocks; threading stays in
// Swift). The package is compiled for baseline x86-64, so these functions carry their own
// `target("avx2,fma")` attribute: call them only when KilnKernels' run-time dispatch
// (`KernelISA.detected`, cpuid + xgetbv) says the CPU has AVX2 and FMA. Every function has a
// Swift baseline twin in Sources/KilnKernels/CPU and a reference implementation; the kernel
// tests hold all three equal.
#ifndef KILN_SIMD_H
#define KILN_SIMD_H

#include <stddef.h>
// The INT8 GEMM's quantize/epilogue kernels (included here so that module caches built before
// that header existed are invalidated).
#include "kiln_int8.h"
// The fp32 GEMM on packed weights (same reason).
#include "kiln_sgemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/// A spin-wait hint (x86 `pause`, arm64 `yield`) for threads polling a flag: it saves power and
/// leaves the core's execution resources to a hyper-threaded sibling while the thread waits.
static inline void kiln_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Names the calling thread (shown by top -H, /proc/PID/task/TID/comm; at most 15 bytes kept).
void kiln_set_thread_name(const char *name);
/// The calling thread's nice value (Linux: per thread; 0 elsewhere).
int kiln_thread_nice(void);
/// The main thread's nice value (Linux), or `fallback` where it cannot be read.
int kiln_main_thread_nice(int fallback);
/// Sets the calling thread's nice value; 0 on success, else errno (EPERM/EACCES when raising
/// priority without CAP_SYS_NICE).
int kiln_set_thread_nice(int value);

/// 1 when this build contains the AVX2 kernels (x86-64), 0 elsewhere (the functions below are
/// then stubs that must not be called).
int kiln_simd_has_avx2_build(void);

/// out[i] = a[i] + b[i] (+ bias[i] when bias is not NULL), n floats; out may alias a or b.
void kiln_avx2_add_rows(const float *a, const float *b, const float *bias, float *out, ptrdiff_t n);

/// One LayerNorm row: out = (x - mean) / sqrt(var + epsilon) * gamma (+ beta), two-pass
/// statistics in fp32; out may alias x.
void kiln_avx2_layer_norm_row(const float *x, const float *gamma, const float *beta, float *out,
                              ptrdiff_t n, float epsilon);

/// Softmax of one row of n floats (out may alias x). An all -inf row gives a uniform result
/// (the max is taken as 0), like the Swift kernel.
void kiln_avx2_softmax_row(const float *x, float *out, ptrdiff_t n);

/// GELU over n floats: erf form (tanh_form == 0) or tanh form; out may alias x.
void kiln_avx2_gelu(const float *x, float *out, ptrdiff_t n, int tanh_form);

/// Attention for one (sequence, head): scores = q·kᵀ·scale (+ mask), softmax per row,
/// out = P·v. q, k, v and out point at the head's first column of the sequence's first token;
/// rows are in_stride (q/k/v) and out_stride (out) floats apart. mask (NULL for none) is the
/// additive mask of the first query row, mask_row_stride floats between query rows (0: per-key
/// mask). scores: length*length floats of scratch.
void kiln_avx2_attention_head(const float *q, const float *k, const float *v, ptrdiff_t in_stride,
                              float *out, ptrdiff_t out_stride, ptrdiff_t length, ptrdiff_t head_size,
                              float scale, const float *mask, ptrdiff_t mask_row_stride, float *scores);

#ifdef __cplusplus
}
#endif

#endif
