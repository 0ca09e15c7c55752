// CUDAContext: the primary context of one GPU plus one stream; the unit an engine runs on.
// Multi-GPU: one CUDAContext (and one engine) per device ordinal. Safe across threads because
// every entry point makes the context current on the calling thread first.
import CKilnCUDA

/// A GPU's primary context and a non-blocking stream on it.
public final class CUDAContext: @unchecked Sendable {
    public let device: CUDADeviceInfo
    let handle: kcu_device
    let context: kcu_context
    /// The stream all of an engine's work is queued on.
    public let stream: kcu_stream

    /// Retains the primary context of GPU `ordinal` and creates a stream.
    public init(ordinal: Int = 0) throws {
        device = try CUDADriver.device(ordinal)
        var handle: kcu_device = 0
        try checkDriver(kcu_device_get(&handle, Int32(ordinal)), "cuDeviceGet")
        self.handle = handle
        var context: kcu_context?
        try checkDriver(kcu_primary_ctx_retain(&context, handle), "cuDevicePrimaryCtxRetain")
        guard let context else { throw CUDAError.noDevice("cuDevicePrimaryCtxRetain returned no context") }
        self.context = context
        try checkDriver(kcu_ctx_set_current(context), "cuCtxSetCurrent")
        var stream: kcu_stream?
        try checkDriver(kcu_stream_create(&stream, 1), "cuStreamCreate")  // CU_STREAM_NON_BLOCKING
        self.stream = stream!
    }

    deinit {
        _ = kcu_ctx_set_current(context)
        _ = kcu_stream_destroy(stream)
        _ = kcu_primary_ctx_release(handle)
    }

    /// Makes this context current on the calling thread (cheap; call before any driver work).
    public func makeCurrent() throws {
        try checkDriver(kcu_ctx_set_current(context), "cuCtxSetCurrent")
    }

    /// Blocks until all work queued on ``stream`` has finished.
    public func synchronize() throws {
        try checkDriver(kcu_stream_synchronize(stream), "cuStreamSynchronize")
    }

    /// Free and total device memory in bytes.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        var free = 0, total = 0
        try checkDriver(kcu_mem_get_info(&free, &total), "cuMemGetInfo")
        return (free, total)
    }
}
