// INT8 GEMM micro-benchmark: what Debian's oneDNN (2.6.3) reaches on this CPU for the MiniLM-L6
// GEMM shapes at M = batch 16 × seq 32 = 512 rows, per variant:
//   fp32        f32 × f32 → f32, packed weights (the Kiln fp32 engine's GEMM)
//   u8s8-s32    u8 × s8 → s32, packed weights, no attributes (the Kiln int8 engine's GEMM)
//   u8s8-f32    u8 × s8 → f32 with per-channel output scales (the alternative: oneDNN dequantizes)
//   u8s8-u8     u8 × s8 → u8 with output scales (requantized output: the ceiling of int8 chains)
// Each is timed as the median of repeated runs after a warm-up; GOP/s = 2·M·K·N / time.
// Kiln's own quantize/epilogue work is not included (that is the engine profile's job).
//
// Build and run (threads through OMP_NUM_THREADS):
//   cc -O2 -o /tmp/int8_gemm_micro bench/int8_gemm_micro.c -ldnnl -lm
//   OMP_NUM_THREADS=1 /tmp/int8_gemm_micro; OMP_NUM_THREADS=2 /tmp/int8_gemm_micro
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHECK(call)                                                              \
    do {                                                                         \
        dnnl_status_t status_ = (call);                                          \
        if (status_ != dnnl_success) {                                           \
            fprintf(stderr, "%s failed: %d (line %d)\n", #call, status_, __LINE__); \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static size_t type_size(dnnl_data_type_t t) { return t == dnnl_u8 || t == dnnl_s8 ? 1 : 4; }

// Median seconds of one matmul [M,K]·[K,N] with the given types; weights in the layout oneDNN prefers.
static double time_matmul(int M, int K, int N, dnnl_data_type_t src_t, dnnl_data_type_t wei_t, dnnl_data_type_t dst_t,
                          int with_scales, dnnl_engine_t engine, dnnl_stream_t stream, const char **impl) {
    dnnl_memory_desc_t src_md, wei_any, dst_md;
    dnnl_dims_t sd = {M, K}, wd = {K, N}, dd = {M, N};
    CHECK(dnnl_memory_desc_init_by_tag(&src_md, 2, sd, src_t, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 2, wd, wei_t, dnnl_format_tag_any));
    CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dst_t, dnnl_ab));
    dnnl_matmul_desc_t op;
    CHECK(dnnl_matmul_desc_init(&op, &src_md, &wei_any, NULL, &dst_md));
    dnnl_primitive_attr_t attr = NULL;
    float *scales = malloc(sizeof(float) * N);
    for (int n = 0; n < N; n++) scales[n] = 0.001f * (1 + n % 7);
    if (with_scales) {
        CHECK(dnnl_primitive_attr_create(&attr));
        CHECK(dnnl_primitive_attr_set_output_scales(attr, N, 1 << 1, scales));
    }
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &op, attr, engine, NULL));
    const dnnl_memory_desc_t *wei_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const char *name = NULL;
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name));
    *impl = name;
    dnnl_primitive_t prim;
    CHECK(dnnl_primitive_create(&prim, pd));

    void *src = aligned_alloc(64, ((size_t)M * K * type_size(src_t) + 63) / 64 * 64);
    size_t wbytes = dnnl_memory_desc_get_size(wei_md);
    void *wei = aligned_alloc(64, (wbytes + 63) / 64 * 64);
    void *dst = aligned_alloc(64, ((size_t)M * N * type_size(dst_t) + 63) / 64 * 64);
    memset(src, 3, (size_t)M * K * type_size(src_t));
    memset(wei, 1, wbytes);
    dnnl_memory_t sm, wm, dm;
    CHECK(dnnl_memory_create(&sm, &src_md, engine, src));
    CHECK(dnnl_memory_create(&wm, wei_md, engine, wei));
    CHECK(dnnl_memory_create(&dm, &dst_md, engine, dst));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, dm}};

    enum { RUNS = 41 };
    double times[RUNS];
    for (int i = 0; i < 5; i++) CHECK(dnnl_primitive_execute(prim, stream, 3, args));
    CHECK(dnnl_stream_wait(stream));
    for (int i = 0; i < RUNS; i++) {
        double start = now();
        for (int r = 0; r < 4; r++) CHECK(dnnl_primitive_execute(prim, stream, 3, args));
        CHECK(dnnl_stream_wait(stream));
        times[i] = (now() - start) / 4;
    }
    qsort(times, RUNS, sizeof(double), compare);
    dnnl_memory_destroy(sm);
    dnnl_memory_destroy(wm);
    dnnl_memory_destroy(dm);
    dnnl_primitive_destroy(prim);
    free(src);
    free(wei);
    free(dst);
    free(scales);
    if (attr) dnnl_primitive_attr_destroy(attr);
    // pd (and the implementation name it owns) is kept alive on purpose for *impl.
    return times[RUNS / 2];
}

int main(void) {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    const int M = 512;
    const int shapes[][2] = {{384, 1152}, {384, 384}, {384, 1536}, {1536, 384}};
    struct { const char *name; dnnl_data_type_t s, w, d; int scales; } variants[] = {
        {"fp32", dnnl_f32, dnnl_f32, dnnl_f32, 0},
        {"u8s8-s32", dnnl_u8, dnnl_s8, dnnl_s32, 0},
        {"u8s8-f32", dnnl_u8, dnnl_s8, dnnl_f32, 1},
        {"u8s8-u8", dnnl_u8, dnnl_s8, dnnl_u8, 1},
    };
    const char *threads = getenv("OMP_NUM_THREADS");
    printf("| M | K | N | variant | us | GOP/s | impl |  (OMP_NUM_THREADS=%s)\n|---|---|---|---|---|---|---|\n", threads ? threads : "default");
    double layer[4] = {0};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
            const char *impl = "?";
            int K = shapes[s][0], N = shapes[s][1];
            double t = time_matmul(M, K, N, variants[v].s, variants[v].w, variants[v].d, variants[v].scales, engine, stream, &impl);
            layer[v] += t;
            printf("| %d | %d | %d | %s | %.1f | %.1f | %s |\n", M, K, N, variants[v].name, t * 1e6, 2.0 * M * K * N / t / 1e9, impl);
        }
    }
    double ops = 2.0 * M * 384 * (1152 + 384 + 1536 + 1536);
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        printf("one encoder layer, %s: %.1f us, %.1f GOP/s\n", variants[v].name, layer[v] * 1e6, ops / layer[v] / 1e9);
    return 0;
}
