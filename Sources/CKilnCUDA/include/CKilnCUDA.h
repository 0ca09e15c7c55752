// CKilnCUDA: the few CUDA driver, cuBLASLt and NVRTC entry points Kiln uses, declared here
// (no CUDA headers are needed to build Kiln) and resolved at run time with dlopen/dlsym.
//
// Why a C shim: the libraries are optional. Kiln must build and run on machines without CUDA,
// so nothing links against them; each wrapper below calls through a pointer that
// kiln_cuda_open_* filled in, and returns KILN_CUDA_NOT_LOADED when it was not.
// Types are opaque handles or plain integers with the ABI of the real headers (CUDA 12/13).
#ifndef CKILNCUDA_H
#define CKILNCUDA_H

#include <stddef.h>
#include <stdint.h>

#define KILN_CUDA_NOT_LOADED 999999

typedef int kcu_result;
typedef int kcu_device;
typedef unsigned long long kcu_deviceptr;
typedef struct kcu_context_st *kcu_context;
typedef struct kcu_stream_st *kcu_stream;
typedef struct kcu_module_st *kcu_module;
typedef struct kcu_function_st *kcu_function;
typedef struct kcu_event_st *kcu_event;
typedef struct kcu_graph_st *kcu_graph;
typedef struct kcu_graph_exec_st *kcu_graph_exec;

typedef struct klt_handle_st *klt_handle;
typedef struct klt_desc_st *klt_matmul_desc;
typedef struct klt_layout_st *klt_layout;
typedef struct klt_pref_st *klt_preference;
/// cublasLtMatmulAlgo_t: 64 opaque bytes.
typedef struct { uint64_t data[8]; } klt_algo;
/// cublasLtMatmulHeuristicResult_t.
typedef struct {
    klt_algo algo;
    size_t workspaceSize;
    int state;
    float wavesCount;
    int reserved[4];
} klt_heuristic;

typedef struct knvrtc_program_st *knvrtc_program;

/// Opens the driver library at `path` and resolves its symbols; 0 on success, otherwise
/// writes why into `message` (dlerror or the missing symbol).
int kiln_cuda_open_driver(const char *path, char *message, size_t message_length);
int kiln_cuda_open_cublaslt(const char *path, char *message, size_t message_length);
int kiln_cuda_open_nvrtc(const char *path, char *message, size_t message_length);
/// NVML (libnvidia-ml.so.1, shipped with the driver): optional, for GPU memory and utilization
/// metrics. Opening it also runs nvmlInit_v2.
int kiln_cuda_open_nvml(const char *path, char *message, size_t message_length);
int kiln_cuda_driver_loaded(void);
int kiln_cuda_cublaslt_loaded(void);
int kiln_cuda_nvrtc_loaded(void);

// Driver API.
kcu_result kcu_init(unsigned int flags);
kcu_result kcu_driver_version(int *version);
kcu_result kcu_device_count(int *count);
kcu_result kcu_device_get(kcu_device *device, int ordinal);
kcu_result kcu_device_name(char *name, int length, kcu_device device);
kcu_result kcu_device_attribute(int *value, int attribute, kcu_device device);
/// cuDeviceGetPCIBusId: "0000:00:00.0" form, the key NVML knows the same GPU by.
kcu_result kcu_device_pci_bus_id(char *bus_id, int length, kcu_device device);
kcu_result kcu_device_total_mem(size_t *bytes, kcu_device device);
kcu_result kcu_primary_ctx_retain(kcu_context *context, kcu_device device);
kcu_result kcu_primary_ctx_release(kcu_device device);
kcu_result kcu_ctx_set_current(kcu_context context);
kcu_result kcu_ctx_synchronize(void);
kcu_result kcu_mem_get_info(size_t *free_bytes, size_t *total_bytes);
kcu_result kcu_stream_create(kcu_stream *stream, unsigned int flags);
kcu_result kcu_stream_destroy(kcu_stream stream);
kcu_result kcu_stream_synchronize(kcu_stream stream);
kcu_result kcu_mem_alloc(kcu_deviceptr *pointer, size_t bytes);
kcu_result kcu_mem_free(kcu_deviceptr pointer);
kcu_result kcu_mem_host_alloc(void **pointer, size_t bytes, unsigned int flags);
kcu_result kcu_mem_free_host(void *pointer);
kcu_result kcu_memcpy_htod_async(kcu_deviceptr dst, const void *src, size_t bytes, kcu_stream stream);
kcu_result kcu_memcpy_dtoh_async(void *dst, kcu_deviceptr src, size_t bytes, kcu_stream stream);
kcu_result kcu_memcpy_dtod_async(kcu_deviceptr dst, kcu_deviceptr src, size_t bytes, kcu_stream stream);
kcu_result kcu_memset_d8_async(kcu_deviceptr dst, unsigned char value, size_t bytes, kcu_stream stream);
kcu_result kcu_module_load_data(kcu_module *module, const void *image);
kcu_result kcu_module_unload(kcu_module module);
kcu_result kcu_module_get_function(kcu_function *function, kcu_module module, const char *name);
kcu_result kcu_launch_kernel(kcu_function function, unsigned int gx, unsigned int gy, unsigned int gz,
                             unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared_bytes,
                             kcu_stream stream, void **parameters);
/// Whether the driver has cuLaunchKernelEx (CUDA 12+), which programmatic dependent launch needs.
int kcu_has_dependent_launch(void);
/// cuLaunchKernelEx with programmatic stream serialization allowed (Hopper's programmatic
/// dependent launch): the kernel may be scheduled while the previous kernel on the stream
/// finishes, and must begin with `griddepcontrol.wait` (KernelSource's KILN_GRID_ENTER) before
/// it touches memory. KILN_CUDA_NOT_LOADED when the driver lacks cuLaunchKernelEx.
kcu_result kcu_launch_kernel_dependent(kcu_function function, unsigned int gx, unsigned int gy, unsigned int gz,
                                       unsigned int bx, unsigned int by, unsigned int bz, unsigned int shared_bytes,
                                       kcu_stream stream, void **parameters);
kcu_result kcu_func_set_attribute(kcu_function function, int attribute, int value);
kcu_result kcu_event_create(kcu_event *event, unsigned int flags);
kcu_result kcu_event_destroy(kcu_event event);
kcu_result kcu_event_record(kcu_event event, kcu_stream stream);
kcu_result kcu_event_synchronize(kcu_event event);
kcu_result kcu_event_elapsed_ms(float *milliseconds, kcu_event start, kcu_event end);
kcu_result kcu_stream_begin_capture(kcu_stream stream, int mode);
kcu_result kcu_stream_end_capture(kcu_stream stream, kcu_graph *graph);
kcu_result kcu_graph_instantiate(kcu_graph_exec *exec, kcu_graph graph);
kcu_result kcu_graph_launch(kcu_graph_exec exec, kcu_stream stream);
kcu_result kcu_graph_exec_destroy(kcu_graph_exec exec);
kcu_result kcu_graph_destroy(kcu_graph graph);
/// The driver's name for `result` ("CUDA_ERROR_OUT_OF_MEMORY"...), or NULL.
const char *kcu_error_name(kcu_result result);

// cuBLASLt.
size_t klt_version(void);
int klt_create(klt_handle *handle);
int klt_destroy(klt_handle handle);
int klt_matmul_desc_create(klt_matmul_desc *desc, int compute_type, int scale_type);
int klt_matmul_desc_destroy(klt_matmul_desc desc);
int klt_matmul_desc_set(klt_matmul_desc desc, int attribute, const void *value, size_t size);
int klt_layout_create(klt_layout *layout, int type, uint64_t rows, uint64_t cols, int64_t ld);
int klt_layout_destroy(klt_layout layout);
int klt_preference_create(klt_preference *preference);
int klt_preference_destroy(klt_preference preference);
int klt_preference_set(klt_preference preference, int attribute, const void *value, size_t size);
int klt_heuristic_query(klt_handle handle, klt_matmul_desc desc, klt_layout a, klt_layout b, klt_layout c,
                        klt_layout d, klt_preference preference, int requested, klt_heuristic *results,
                        int *returned);
int klt_matmul(klt_handle handle, klt_matmul_desc desc, const void *alpha, const void *a, klt_layout a_layout,
               const void *b, klt_layout b_layout, const void *beta, const void *c, klt_layout c_layout, void *d,
               klt_layout d_layout, const klt_algo *algo, void *workspace, size_t workspace_bytes,
               kcu_stream stream);

// NVRTC.
int knvrtc_version(int *major, int *minor);
int knvrtc_create(knvrtc_program *program, const char *source, const char *name);
int knvrtc_compile(knvrtc_program program, int option_count, const char *const *options);
int knvrtc_log_size(knvrtc_program program, size_t *size);
int knvrtc_log(knvrtc_program program, char *log);
int knvrtc_cubin_size(knvrtc_program program, size_t *size);
int knvrtc_cubin(knvrtc_program program, char *cubin);
int knvrtc_destroy(knvrtc_program *program);

// ---- NVML (optional) ----
typedef struct knvml_device_st *knvml_device;
/// nvmlMemory_t: bytes.
typedef struct { unsigned long long total, free, used; } knvml_memory;
/// nvmlUtilization_t: percent of the last sample period the GPU / its memory was busy.
typedef struct { unsigned int gpu, memory; } knvml_utilization;
/// NVML return codes (0 = success); KILN_CUDA_NOT_LOADED when NVML was not opened.
int knvml_device_by_pci_bus_id(const char *bus_id, knvml_device *device);
int knvml_device_memory(knvml_device device, knvml_memory *memory);
int knvml_device_utilization(knvml_device device, knvml_utilization *utilization);

#endif
