// Resolves the CUDA entry points declared in CKilnCUDA.h with dlopen/dlsym and forwards calls.
//
// Pattern: one table of (pointer, symbol) per library, filled all-or-nothing by
// kiln_cuda_open_*; each wrapper checks its pointer, so calling into a library that was never
// opened returns KILN_CUDA_NOT_LOADED instead of crashing. Safe because opening happens once,
// under the Swift side's lock, before any wrapper is used.
#include "CKilnCUDA.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef struct { void **slot; const char *symbol; int optional; } kiln_symbol;

static int kiln_resolve(const char *path, const kiln_symbol *symbols, size_t count, char *message, size_t length) {
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *reason = dlerror();
        snprintf(message, length, "%s", reason ? reason : "dlopen failed");
        return 1;
    }
    for (size_t index = 0; index < count; index++) {
        void *address = dlsym(library, symbols[index].symbol);
        if (!address && !symbols[index].optional) {
            snprintf(message, length, "%s has no symbol %s", path, symbols[index].symbol);
            for (size_t undo = 0; undo < index; undo++) *symbols[undo].slot = NULL;
            dlclose(library);
            return 2;
        }
        *symbols[index].slot = address;
    }
    return 0;
}

// ---- driver ----
static kcu_result (*p_cuInit)(unsigned int);
static kcu_result (*p_cuDriverGetVersion)(int *);
static kcu_result (*p_cuDeviceGetCount)(int *);
static kcu_result (*p_cuDeviceGet)(kcu_device *, int);
static kcu_result (*p_cuDeviceGetName)(char *, int, kcu_device);
static kcu_result (*p_cuDeviceGetAttribute)(int *, int, kcu_device);
static kcu_result (*p_cuDeviceGetPCIBusId)(char *, int, kcu_device);
static kcu_result (*p_cuDeviceTotalMem)(size_t *, kcu_device);
static kcu_result (*p_cuDevicePrimaryCtxRetain)(kcu_context *, kcu_device);
static kcu_result (*p_cuDevicePrimaryCtxRelease)(kcu_device);
static kcu_result (*p_cuCtxSetCurrent)(kcu_context);
static kcu_result (*p_cuCtxSynchronize)(void);
static kcu_result (*p_cuMemGetInfo)(size_t *, size_t *);
static kcu_result (*p_cuStreamCreate)(kcu_stream *, unsigned int);
static kcu_result (*p_cuStreamDestroy)(kcu_stream);
static kcu_result (*p_cuStreamSynchronize)(kcu_stream);
static kcu_result (*p_cuMemAlloc)(kcu_deviceptr *, size_t);
static kcu_result (*p_cuMemFree)(kcu_deviceptr);
static kcu_result (*p_cuMemHostAlloc)(void **, size_t, unsigned int);
static kcu_result (*p_cuMemFreeHost)(void *);
static kcu_result (*p_cuMemcpyHtoDAsync)(kcu_deviceptr, const void *, size_t, kcu_stream);
static kcu_result (*p_cuMemcpyDtoHAsync)(void *, kcu_deviceptr, size_t, kcu_stream);
static kcu_result (*p_cuMemcpyDtoDAsync)(kcu_deviceptr, kcu_deviceptr, size_t, kcu_stream);
static kcu_result (*p_cuMemsetD8Async)(kcu_deviceptr, unsigned char, size_t, kcu_stream);
static kcu_result (*p_cuModuleLoadData)(kcu_module *, const void *);
static kcu_result (*p_cuModuleUnload)(kcu_module);
static kcu_result (*p_cuModuleGetFunction)(kcu_function *, kcu_module, const char *);
static kcu_result (*p_cuLaunchKernel)(kcu_function, unsigned int, unsigned int, unsigned int, unsigned int,
                                      unsigned int, unsigned int, unsigned int, kcu_stream, void **, void **);
// cuLaunchKernelEx's CUlaunchConfig / CUlaunchAttribute (CUDA 12+ ABI), declared here so no
// CUDA header is needed: the attribute is an id padded to 8 bytes and a 64-byte value union.
typedef struct { unsigned int id; char pad[4]; union { char bytes[64]; int allowed; } value; } kiln_launch_attribute;
typedef struct {
    unsigned int grid_x, grid_y, grid_z, block_x, block_y, block_z, shared_bytes;
    kcu_stream stream;
    kiln_launch_attribute *attributes;
    unsigned int attribute_count;
} kiln_launch_config;
static kcu_result (*p_cuLaunchKernelEx)(const kiln_launch_config *, kcu_function, void **, void **);
static kcu_result (*p_cuFuncSetAttribute)(kcu_function, int, int);
static kcu_result (*p_cuEventCreate)(kcu_event *, unsigned int);
static kcu_result (*p_cuEventDestroy)(kcu_event);
static kcu_result (*p_cuEventRecord)(kcu_event, kcu_stream);
static kcu_result (*p_cuEventSynchronize)(kcu_event);
static kcu_result (*p_cuEventElapsedTime)(float *, kcu_event, kcu_event);
static kcu_result (*p_cuEventElapsedTime_v2)(float *, kcu_event, kcu_event);
static kcu_result (*p_cuStreamBeginCapture)(kcu_stream, int);
static kcu_result (*p_cuStreamEndCapture)(kcu_stream, kcu_graph *);
static kcu_result (*p_cuGraphInstantiateWithFlags)(kcu_graph_exec *, kcu_graph, unsigned long long);
static kcu_result (*p_cuGraphLaunch)(kcu_graph_exec, kcu_stream);
static kcu_result (*p_cuGraphExecDestroy)(kcu_graph_exec);
static kcu_result (*p_cuGraphDestroy)(kcu_graph);
static kcu_result (*p_cuGetErrorName)(kcu_result, const char **);

#define SYM(pointer, name) {(void **)&pointer, name, 0}
#define OPT(pointer, name) {(void **)&pointer, name, 1}

int kiln_cuda_open_driver(const char *path, char *message, size_t length) {
    const kiln_symbol symbols[] = {
        SYM(p_cuInit, "cuInit"), SYM(p_cuDriverGetVersion, "cuDriverGetVersion"),
        SYM(p_cuDeviceGetCount, "cuDeviceGetCount"), SYM(p_cuDeviceGet, "cuDeviceGet"),
        SYM(p_cuDeviceGetName, "cuDeviceGetName"), SYM(p_cuDeviceGetAttribute, "cuDeviceGetAttribute"),
        OPT(p_cuDeviceGetPCIBusId, "cuDeviceGetPCIBusId"),
        SYM(p_cuDeviceTotalMem, "cuDeviceTotalMem_v2"), SYM(p_cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"),
        SYM(p_cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"), SYM(p_cuCtxSetCurrent, "cuCtxSetCurrent"),
        SYM(p_cuCtxSynchronize, "cuCtxSynchronize"), SYM(p_cuMemGetInfo, "cuMemGetInfo_v2"),
        SYM(p_cuStreamCreate, "cuStreamCreate"), SYM(p_cuStreamDestroy, "cuStreamDestroy_v2"),
        SYM(p_cuStreamSynchronize, "cuStreamSynchronize"), SYM(p_cuMemAlloc, "cuMemAlloc_v2"),
        SYM(p_cuMemFree, "cuMemFree_v2"), SYM(p_cuMemHostAlloc, "cuMemHostAlloc"),
        SYM(p_cuMemFreeHost, "cuMemFreeHost"), SYM(p_cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"),
        SYM(p_cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"), SYM(p_cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2"),
        SYM(p_cuMemsetD8Async, "cuMemsetD8Async"), SYM(p_cuModuleLoadData, "cuModuleLoadData"),
        SYM(p_cuModuleUnload, "cuModuleUnload"), SYM(p_cuModuleGetFunction, "cuModuleGetFunction"),
        SYM(p_cuLaunchKernel, "cuLaunchKernel"), OPT(p_cuLaunchKernelEx, "cuLaunchKernelEx"),
        SYM(p_cuFuncSetAttribute, "cuFuncSetAttribute"),
        SYM(p_cuEventCreate, "cuEventCreate"), SYM(p_cuEventDestroy, "cuEventDestroy_v2"),
        SYM(p_cuEventRecord, "cuEventRecord"), SYM(p_cuEventSynchronize, "cuEventSynchronize"),
        OPT(p_cuEventElapsedTime, "cuEventElapsedTime"), OPT(p_cuEventElapsedTime_v2, "cuEventElapsedTime_v2"),
        OPT(p_cuStreamBeginCapture, "cuStreamBeginCapture_v2"), OPT(p_cuStreamEndCapture, "cuStreamEndCapture"),
        OPT(p_cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags"), OPT(p_cuGraphLaunch, "cuGraphLaunch"),
        OPT(p_cuGraphExecDestroy, "cuGraphExecDestroy"), OPT(p_cuGraphDestroy, "cuGraphDestroy"),
        OPT(p_cuGetErrorName, "cuGetErrorName"),
    };
    return kiln_resolve(path, symbols, sizeof symbols / sizeof symbols[0], message, length);
}

int kiln_cuda_driver_loaded(void) { return p_cuInit != NULL; }

#define CALL(pointer, ...) return pointer ? pointer(__VA_ARGS__) : KILN_CUDA_NOT_LOADED

kcu_result kcu_init(unsigned int flags) { CALL(p_cuInit, flags); }
kcu_result kcu_driver_version(int *version) { CALL(p_cuDriverGetVersion, version); }
kcu_result kcu_device_count(int *count) { CALL(p_cuDeviceGetCount, count); }
kcu_result kcu_device_get(kcu_device *device, int ordinal) { CALL(p_cuDeviceGet, device, ordinal); }
kcu_result kcu_device_name(char *name, int length, kcu_device device) { CALL(p_cuDeviceGetName, name, length, device); }
kcu_result kcu_device_attribute(int *value, int attribute, kcu_device device) { CALL(p_cuDeviceGetAttribute, value, attribute, device); }
kcu_result kcu_device_pci_bus_id(char *bus_id, int length, kcu_device device) { CALL(p_cuDeviceGetPCIBusId, bus_id, length, device); }
kcu_result kcu_device_total_mem(size_t *bytes, kcu_device device) { CALL(p_cuDeviceTotalMem, bytes, device); }
kcu_result kcu_primary_ctx_retain(kcu_context *context, kcu_device device) { CALL(p_cuDevicePrimaryCtxRetain, context, device); }
kcu_result kcu_primary_ctx_release(kcu_device device) { CALL(p_cuDevicePrimaryCtxRelease, device); }
kcu_result kcu_ctx_set_current(kcu_context context) { CALL(p_cuCtxSetCurrent, context); }
kcu_result kcu_ctx_synchronize(void) { return p_cuCtxSynchronize ? p_cuCtxSynchronize() : KILN_CUDA_NOT_LOADED; }
kcu_result kcu_mem_get_info(size_t *free_bytes, size_t *total_bytes) { CALL(p_cuMemGetInfo, free_bytes, total_bytes); }
kcu_result kcu_stream_create(kcu_stream *stream, unsigned int flags) { CALL(p_cuStreamCreate, stream, flags); }
kcu_result kcu_stream_destroy(kcu_stream stream) { CALL(p_cuStreamDestroy, stream); }
kcu_result kcu_stream_synchronize(kcu_stream stream) { CALL(p_cuStreamSynchronize, stream); }
kcu_result kcu_mem_alloc(kcu_deviceptr *pointer, size_t bytes) { CALL(p_cuMemAlloc, pointer, bytes); }
kcu_result kcu_mem_free(kcu_deviceptr pointer) { CALL(p_cuMemFree, pointer); }
kcu_result kcu_mem_host_alloc(void **pointer, size_t bytes, unsigned int flags) { CALL(p_cuMemHostAlloc, pointer, bytes, flags); }
kcu_result kcu_mem_free_host(void *pointer) { CALL(p_cuMemFreeHost, pointer); }
kcu_result kcu_memcpy_htod_async(kcu_deviceptr dst, const void *src, size_t bytes, kcu_stream stream) { CALL(p_cuMemcpyHtoDAsync, dst, src, bytes, stream); }
kcu_result kcu_memcpy_dtoh_async(void *dst, kcu_deviceptr src, size_t bytes, kcu_stream stream) { CALL(p_cuMemcpyDtoHAsync, dst, src, bytes, stream); }
kcu_result kcu_memcpy_dtod_async(kcu_deviceptr dst, kcu_deviceptr src, size_t bytes, kcu_stream stream) { CALL(p_cuMemcpyDtoDAsync, dst, src, bytes, stream); }
kcu_result kcu_memset_d8_async(kcu_deviceptr dst, unsigned char value, size_t bytes, kcu_stream stream) { CALL(p_cuMemsetD8Async, dst, value, bytes, stream); }
kcu_result kcu_module_load_data(kcu_module *module, const void *image) { CALL(p_cuModuleLoadData, module, image); }
kcu_result kcu_module_unload(kcu_module module) { CALL(p_cuModuleUnload, module); }
kcu_result kcu_module_get_function(kcu_function *function, kcu_module module, const char *name) { CALL(p_cuModuleGetFunction, function, module, name); }
kcu_result kcu_launch_kernel(kcu_function function, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                             unsigned int by, unsigned int bz, unsigned int shared_bytes, kcu_stream stream, void **parameters) {
    CALL(p_cuLaunchKernel, function, gx, gy, gz, bx, by, bz, shared_bytes, stream, parameters, NULL);
}
int kcu_has_dependent_launch(void) { return p_cuLaunchKernelEx != NULL; }
kcu_result kcu_launch_kernel_dependent(kcu_function function, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                                       unsigned int by, unsigned int bz, unsigned int shared_bytes, kcu_stream stream, void **parameters) {
    if (!p_cuLaunchKernelEx) return KILN_CUDA_NOT_LOADED;
    kiln_launch_attribute attribute;
    memset(&attribute, 0, sizeof attribute);
    attribute.id = 6;  // CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION
    attribute.value.allowed = 1;
    kiln_launch_config config = {gx, gy, gz, bx, by, bz, shared_bytes, stream, &attribute, 1};
    return p_cuLaunchKernelEx(&config, function, parameters, NULL);
}
kcu_result kcu_func_set_attribute(kcu_function function, int attribute, int value) { CALL(p_cuFuncSetAttribute, function, attribute, value); }
kcu_result kcu_event_create(kcu_event *event, unsigned int flags) { CALL(p_cuEventCreate, event, flags); }
kcu_result kcu_event_destroy(kcu_event event) { CALL(p_cuEventDestroy, event); }
kcu_result kcu_event_record(kcu_event event, kcu_stream stream) { CALL(p_cuEventRecord, event, stream); }
kcu_result kcu_event_synchronize(kcu_event event) { CALL(p_cuEventSynchronize, event); }
kcu_result kcu_event_elapsed_ms(float *milliseconds, kcu_event start, kcu_event end) {
    // CUDA 12.8+ exports the _v2 name (the plain one may be absent from CUDA 13 drivers).
    if (p_cuEventElapsedTime_v2) return p_cuEventElapsedTime_v2(milliseconds, start, end);
    CALL(p_cuEventElapsedTime, milliseconds, start, end);
}
kcu_result kcu_stream_begin_capture(kcu_stream stream, int mode) { CALL(p_cuStreamBeginCapture, stream, mode); }
kcu_result kcu_stream_end_capture(kcu_stream stream, kcu_graph *graph) { CALL(p_cuStreamEndCapture, stream, graph); }
kcu_result kcu_graph_instantiate(kcu_graph_exec *exec, kcu_graph graph) { CALL(p_cuGraphInstantiateWithFlags, exec, graph, 0ULL); }
kcu_result kcu_graph_launch(kcu_graph_exec exec, kcu_stream stream) { CALL(p_cuGraphLaunch, exec, stream); }
kcu_result kcu_graph_exec_destroy(kcu_graph_exec exec) { CALL(p_cuGraphExecDestroy, exec); }
kcu_result kcu_graph_destroy(kcu_graph graph) { CALL(p_cuGraphDestroy, graph); }
const char *kcu_error_name(kcu_result result) {
    const char *name = NULL;
    if (p_cuGetErrorName && p_cuGetErrorName(result, &name) == 0) return name;
    return NULL;
}

// ---- cuBLASLt ----
static size_t (*p_cublasLtGetVersion)(void);
static int (*p_cublasLtCreate)(klt_handle *);
static int (*p_cublasLtDestroy)(klt_handle);
static int (*p_cublasLtMatmulDescCreate)(klt_matmul_desc *, int, int);
static int (*p_cublasLtMatmulDescDestroy)(klt_matmul_desc);
static int (*p_cublasLtMatmulDescSetAttribute)(klt_matmul_desc, int, const void *, size_t);
static int (*p_cublasLtMatrixLayoutCreate)(klt_layout *, int, uint64_t, uint64_t, int64_t);
static int (*p_cublasLtMatrixLayoutDestroy)(klt_layout);
static int (*p_cublasLtMatmulPreferenceCreate)(klt_preference *);
static int (*p_cublasLtMatmulPreferenceDestroy)(klt_preference);
static int (*p_cublasLtMatmulPreferenceSetAttribute)(klt_preference, int, const void *, size_t);
static int (*p_cublasLtMatmulAlgoGetHeuristic)(klt_handle, klt_matmul_desc, klt_layout, klt_layout, klt_layout,
                                               klt_layout, klt_preference, int, klt_heuristic *, int *);
static int (*p_cublasLtMatmul)(klt_handle, klt_matmul_desc, const void *, const void *, klt_layout, const void *,
                               klt_layout, const void *, const void *, klt_layout, void *, klt_layout,
                               const klt_algo *, void *, size_t, kcu_stream);

int kiln_cuda_open_cublaslt(const char *path, char *message, size_t length) {
    const kiln_symbol symbols[] = {
        SYM(p_cublasLtGetVersion, "cublasLtGetVersion"), SYM(p_cublasLtCreate, "cublasLtCreate"),
        SYM(p_cublasLtDestroy, "cublasLtDestroy"), SYM(p_cublasLtMatmulDescCreate, "cublasLtMatmulDescCreate"),
        SYM(p_cublasLtMatmulDescDestroy, "cublasLtMatmulDescDestroy"),
        SYM(p_cublasLtMatmulDescSetAttribute, "cublasLtMatmulDescSetAttribute"),
        SYM(p_cublasLtMatrixLayoutCreate, "cublasLtMatrixLayoutCreate"),
        SYM(p_cublasLtMatrixLayoutDestroy, "cublasLtMatrixLayoutDestroy"),
        SYM(p_cublasLtMatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate"),
        SYM(p_cublasLtMatmulPreferenceDestroy, "cublasLtMatmulPreferenceDestroy"),
        SYM(p_cublasLtMatmulPreferenceSetAttribute, "cublasLtMatmulPreferenceSetAttribute"),
        SYM(p_cublasLtMatmulAlgoGetHeuristic, "cublasLtMatmulAlgoGetHeuristic"),
        SYM(p_cublasLtMatmul, "cublasLtMatmul"),
    };
    return kiln_resolve(path, symbols, sizeof symbols / sizeof symbols[0], message, length);
}

int kiln_cuda_cublaslt_loaded(void) { return p_cublasLtCreate != NULL; }

size_t klt_version(void) { return p_cublasLtGetVersion ? p_cublasLtGetVersion() : 0; }
int klt_create(klt_handle *handle) { CALL(p_cublasLtCreate, handle); }
int klt_destroy(klt_handle handle) { CALL(p_cublasLtDestroy, handle); }
int klt_matmul_desc_create(klt_matmul_desc *desc, int compute_type, int scale_type) { CALL(p_cublasLtMatmulDescCreate, desc, compute_type, scale_type); }
int klt_matmul_desc_destroy(klt_matmul_desc desc) { CALL(p_cublasLtMatmulDescDestroy, desc); }
int klt_matmul_desc_set(klt_matmul_desc desc, int attribute, const void *value, size_t size) { CALL(p_cublasLtMatmulDescSetAttribute, desc, attribute, value, size); }
int klt_layout_create(klt_layout *layout, int type, uint64_t rows, uint64_t cols, int64_t ld) { CALL(p_cublasLtMatrixLayoutCreate, layout, type, rows, cols, ld); }
int klt_layout_destroy(klt_layout layout) { CALL(p_cublasLtMatrixLayoutDestroy, layout); }
int klt_preference_create(klt_preference *preference) { CALL(p_cublasLtMatmulPreferenceCreate, preference); }
int klt_preference_destroy(klt_preference preference) { CALL(p_cublasLtMatmulPreferenceDestroy, preference); }
int klt_preference_set(klt_preference preference, int attribute, const void *value, size_t size) { CALL(p_cublasLtMatmulPreferenceSetAttribute, preference, attribute, value, size); }
int klt_heuristic_query(klt_handle handle, klt_matmul_desc desc, klt_layout a, klt_layout b, klt_layout c, klt_layout d,
                        klt_preference preference, int requested, klt_heuristic *results, int *returned) {
    CALL(p_cublasLtMatmulAlgoGetHeuristic, handle, desc, a, b, c, d, preference, requested, results, returned);
}
int klt_matmul(klt_handle handle, klt_matmul_desc desc, const void *alpha, const void *a, klt_layout a_layout,
               const void *b, klt_layout b_layout, const void *beta, const void *c, klt_layout c_layout, void *d,
               klt_layout d_layout, const klt_algo *algo, void *workspace, size_t workspace_bytes, kcu_stream stream) {
    CALL(p_cublasLtMatmul, handle, desc, alpha, a, a_layout, b, b_layout, beta, c, c_layout, d, d_layout, algo,
         workspace, workspace_bytes, stream);
}

// ---- NVRTC ----
static int (*p_nvrtcVersion)(int *, int *);
static int (*p_nvrtcCreateProgram)(knvrtc_program *, const char *, const char *, int, const char *const *, const char *const *);
static int (*p_nvrtcCompileProgram)(knvrtc_program, int, const char *const *);
static int (*p_nvrtcGetProgramLogSize)(knvrtc_program, size_t *);
static int (*p_nvrtcGetProgramLog)(knvrtc_program, char *);
static int (*p_nvrtcGetCUBINSize)(knvrtc_program, size_t *);
static int (*p_nvrtcGetCUBIN)(knvrtc_program, char *);
static int (*p_nvrtcDestroyProgram)(knvrtc_program *);

int kiln_cuda_open_nvrtc(const char *path, char *message, size_t length) {
    const kiln_symbol symbols[] = {
        SYM(p_nvrtcVersion, "nvrtcVersion"), SYM(p_nvrtcCreateProgram, "nvrtcCreateProgram"),
        SYM(p_nvrtcCompileProgram, "nvrtcCompileProgram"), SYM(p_nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize"),
        SYM(p_nvrtcGetProgramLog, "nvrtcGetProgramLog"), SYM(p_nvrtcGetCUBINSize, "nvrtcGetCUBINSize"),
        SYM(p_nvrtcGetCUBIN, "nvrtcGetCUBIN"), SYM(p_nvrtcDestroyProgram, "nvrtcDestroyProgram"),
    };
    return kiln_resolve(path, symbols, sizeof symbols / sizeof symbols[0], message, length);
}

int kiln_cuda_nvrtc_loaded(void) { return p_nvrtcCreateProgram != NULL; }

int knvrtc_version(int *major, int *minor) { CALL(p_nvrtcVersion, major, minor); }
int knvrtc_create(knvrtc_program *program, const char *source, const char *name) { CALL(p_nvrtcCreateProgram, program, source, name, 0, NULL, NULL); }
int knvrtc_compile(knvrtc_program program, int option_count, const char *const *options) { CALL(p_nvrtcCompileProgram, program, option_count, options); }
int knvrtc_log_size(knvrtc_program program, size_t *size) { CALL(p_nvrtcGetProgramLogSize, program, size); }
int knvrtc_log(knvrtc_program program, char *log) { CALL(p_nvrtcGetProgramLog, program, log); }
int knvrtc_cubin_size(knvrtc_program program, size_t *size) { CALL(p_nvrtcGetCUBINSize, program, size); }
int knvrtc_cubin(knvrtc_program program, char *cubin) { CALL(p_nvrtcGetCUBIN, program, cubin); }
int knvrtc_destroy(knvrtc_program *program) { CALL(p_nvrtcDestroyProgram, program); }

// ---- NVML ----
static int (*p_nvmlInit)(void);
static int (*p_nvmlDeviceGetHandleByPciBusId)(const char *, knvml_device *);
static int (*p_nvmlDeviceGetMemoryInfo)(knvml_device, knvml_memory *);
static int (*p_nvmlDeviceGetUtilizationRates)(knvml_device, knvml_utilization *);

int kiln_cuda_open_nvml(const char *path, char *message, size_t length) {
    const kiln_symbol symbols[] = {
        SYM(p_nvmlInit, "nvmlInit_v2"), SYM(p_nvmlDeviceGetHandleByPciBusId, "nvmlDeviceGetHandleByPciBusId_v2"),
        SYM(p_nvmlDeviceGetMemoryInfo, "nvmlDeviceGetMemoryInfo"),
        SYM(p_nvmlDeviceGetUtilizationRates, "nvmlDeviceGetUtilizationRates"),
    };
    int status = kiln_resolve(path, symbols, sizeof symbols / sizeof symbols[0], message, length);
    if (status != 0) return status;
    int initialized = p_nvmlInit();
    if (initialized != 0) {
        snprintf(message, length, "nvmlInit_v2 returned %d", initialized);
        p_nvmlDeviceGetHandleByPciBusId = NULL;
        p_nvmlDeviceGetMemoryInfo = NULL;
        p_nvmlDeviceGetUtilizationRates = NULL;
        return 3;
    }
    return 0;
}

int knvml_device_by_pci_bus_id(const char *bus_id, knvml_device *device) { CALL(p_nvmlDeviceGetHandleByPciBusId, bus_id, device); }
int knvml_device_memory(knvml_device device, knvml_memory *memory) { CALL(p_nvmlDeviceGetMemoryInfo, device, memory); }
int knvml_device_utilization(knvml_device device, knvml_utilization *utilization) { CALL(p_nvmlDeviceGetUtilizationRates, device, utilization); }
