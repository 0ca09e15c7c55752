// CUDADriver: process-wide driver initialisation and device discovery.
// Why separate from the engine: tests and `kiln` ask "is there a GPU?" without building anything.
import CKilnCUDA
import Synchronization

/// What Kiln needs to know about one GPU: identity for plan pinning, limits for kernels.
public struct CUDADeviceInfo: Sendable, Codable, Equatable {
    public var ordinal: Int
    public var name: String
    public var computeCapability: (major: Int, minor: Int) { (major, minor) }
    public var major: Int
    public var minor: Int
    public var multiprocessors: Int
    public var totalMemory: Int
    /// Largest dynamic shared memory a block may opt in to.
    public var sharedMemoryPerBlockOptin: Int
    /// `cuDriverGetVersion`, e.g. 13000 for CUDA 13.0.
    public var driverVersion: Int

    /// The NVRTC/SASS architecture name, e.g. `sm_90`.
    public var architecture: String { "sm_\(major)\(minor)" }

    public static func == (lhs: CUDADeviceInfo, rhs: CUDADeviceInfo) -> Bool {
        lhs.ordinal == rhs.ordinal && lhs.name == rhs.name && lhs.major == rhs.major && lhs.minor == rhs.minor
    }
}

/// Driver-level entry points.
public enum CUDADriver {
    private static let initialized = Mutex<Result<Void, CUDAError>?>(nil)

    /// Loads libcuda and calls cuInit once.
    public static func initialize() throws {
        try initialized.withLock { state in
            if let state { return try state.get() }
            let outcome: Result<Void, CUDAError>
            do {
                try CUDALibraries.load(.driver)
                try checkDriver(kcu_init(0), "cuInit")
                outcome = .success(())
            } catch let error as CUDAError {
                outcome = .failure(error)
            }
            state = outcome
            try outcome.get()
        }
    }

    /// Number of GPUs the driver sees (throws when the driver is missing).
    public static func deviceCount() throws -> Int {
        try initialize()
        var count: Int32 = 0
        try checkDriver(kcu_device_count(&count), "cuDeviceGetCount")
        return Int(count)
    }

    /// True when libcuda loads and sees at least one GPU; never throws (for test skips).
    public static var isAvailable: Bool { ((try? deviceCount()) ?? 0) > 0 }

    /// Properties of GPU `ordinal`.
    public static func device(_ ordinal: Int) throws -> CUDADeviceInfo {
        let count = try deviceCount()
        guard ordinal >= 0 && ordinal < count else {
            throw CUDAError.noDevice("device \(ordinal) requested, the driver sees \(count) GPU(s)")
        }
        var device: kcu_device = 0
        try checkDriver(kcu_device_get(&device, Int32(ordinal)), "cuDeviceGet")
        var name = [CChar](repeating: 0, count: 256)
        try checkDriver(kcu_device_name(&name, 255, device), "cuDeviceGetName")
        func attribute(_ id: Int32) throws -> Int {
            var value: Int32 = 0
            try checkDriver(kcu_device_attribute(&value, id, device), "cuDeviceGetAttribute(\(id))")
            return Int(value)
        }
        var memory = 0
        try checkDriver(kcu_device_total_mem(&memory, device), "cuDeviceTotalMem")
        var version: Int32 = 0
        try checkDriver(kcu_driver_version(&version), "cuDriverGetVersion")
        // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR/MINOR = 75/76, MULTIPROCESSOR_COUNT = 16,
        // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97.
        return CUDADeviceInfo(
            ordinal: ordinal, name: decodeCString(name), major: try attribute(75), minor: try attribute(76),
            multiprocessors: try attribute(16), totalMemory: memory, sharedMemoryPerBlockOptin: try attribute(97),
            driverVersion: Int(version))
    }

    /// The driver's symbolic name for an error code.
    static func errorName(_ result: Int32) -> String? {
        if result == KILN_CUDA_NOT_LOADED { return "library not loaded" }
        return kcu_error_name(result).map { String(cString: $0) }
    }
}
