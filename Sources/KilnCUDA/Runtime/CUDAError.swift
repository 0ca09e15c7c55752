// CUDAError: every way the NVIDIA backend can fail, each with a message that says what to do.
// Why one type: callers (kiln build/run/serve, tests) only need to print it or skip.
import KilnCore

/// An error from the CUDA backend.
public enum CUDAError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A library could not be opened from any candidate location.
    case libraryUnavailable(library: String, attempts: [String])
    /// The driver loaded but reports no usable GPU (or not the requested ordinal).
    case noDevice(String)
    /// A driver API call failed.
    case driver(call: String, code: Int32, name: String?)
    /// A cuBLASLt call failed (cublasStatus_t).
    case cublas(call: String, status: Int32)
    /// NVRTC rejected Kiln's kernel source (log attached).
    case compilation(String)
    /// A plan built for another GPU, driver or library version.
    case planMismatch(String)
    /// The graph or the call needs something this backend does not do.
    case unsupported(String)
    /// A request larger than the arena planned at engine build.
    case arenaExhausted(requested: Int, capacity: Int, what: String)

    public var description: String {
        switch self {
        case let .libraryUnavailable(library, attempts):
            return "CUDA library \(library) could not be loaded (tried: \(attempts.joined(separator: "; "))). "
                + "Install the NVIDIA driver / CUDA 13 libraries, or point KILN_CUDA_LIB_DIR at the folder holding them."
        case .noDevice(let message): return "no usable NVIDIA GPU: \(message)"
        case let .driver(call, code, name):
            return "CUDA driver call \(call) failed with \(name ?? "error") (\(code))"
        case let .cublas(call, status): return "cuBLASLt call \(call) failed with status \(status)"
        case .compilation(let log): return "NVRTC could not compile Kiln's CUDA kernels:\n\(log)"
        case .planMismatch(let message): return "\(message); rebuild the plan on this machine with `kiln build --target cuda`"
        case .unsupported(let message): return "CUDA backend: \(message)"
        case let .arenaExhausted(requested, capacity, what):
            return "CUDA \(what) arena too small: needs \(requested) bytes, planned \(capacity) at engine build; "
                + "build the engine for a larger max batch / sequence length"
        }
    }
}

/// Throws ``CUDAError/driver(call:code:name:)`` unless `result` is CUDA_SUCCESS.
@inline(__always)
func checkDriver(_ result: Int32, _ call: @autoclosure () -> String) throws {
    guard result != 0 else { return }
    throw CUDAError.driver(call: call(), code: result, name: CUDADriver.errorName(result))
}

/// Throws ``CUDAError/cublas(call:status:)`` unless `status` is CUBLAS_STATUS_SUCCESS.
@inline(__always)
func checkBLAS(_ status: Int32, _ call: @autoclosure () -> String) throws {
    guard status != 0 else { return }
    throw CUDAError.cublas(call: call(), status: status)
}
