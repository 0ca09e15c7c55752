// CUDAPlanTarget: what a CUDA plan records about the GPU and libraries it was built with, and
// the check that refuses to load it elsewhere. Pure data, so it is tested without a GPU.
import KilnCore

/// Plan metadata for the `cuda` target.
public enum CUDAPlanTarget {
    /// `PlanTarget.kind` of CUDA plans.
    public static let kind = "cuda"

    /// The plan target for `device` (architecture `sm_XY`).
    public static func target(for device: CUDADeviceInfo) -> PlanTarget {
        PlanTarget(kind: kind, architecture: device.architecture, requiredFeatures: [])
    }

    /// Build-option entries recording the GPU and library versions.
    public static func buildOptions(device: CUDADeviceInfo, versions: CUDAVersions) -> [String: String] {
        [
            "cuda_device": device.name, "cuda_driver": String(versions.driver), "cublaslt": String(versions.cublasLt),
            "nvrtc": versions.nvrtc,
        ]
    }

    /// Throws ``CUDAError/planMismatch(_:)`` unless a plan with `header` may run on `device`
    /// with `versions`: same target kind and architecture, same cuBLASLt, and a driver at least
    /// as new as the one it was built with.
    /// With `checkLibraries` false only the target and architecture are checked (before an engine,
    /// and so the library versions, exist).
    public static func checkCompatible(_ header: PlanHeader, device: CUDADeviceInfo, versions: CUDAVersions, checkLibraries: Bool = true) throws {
        guard header.target.kind == kind else {
            throw CUDAError.planMismatch("plan was built for target \(header.target.kind) (\(header.target.architecture)), not for a CUDA GPU")
        }
        guard header.target.architecture == device.architecture else {
            throw CUDAError.planMismatch(
                "plan was built for \(header.target.architecture) (\(header.buildOptions["cuda_device"] ?? "unknown GPU")); this GPU is \(device.name) (\(device.architecture))")
        }
        guard checkLibraries else { return }
        if let built = header.buildOptions["cublaslt"], built != String(versions.cublasLt) {
            throw CUDAError.planMismatch("plan was built with cuBLASLt \(built); this machine has \(versions.cublasLt)")
        }
        if let built = header.buildOptions["cuda_driver"].flatMap(Int.init), built > versions.driver {
            throw CUDAError.planMismatch("plan was built with CUDA driver \(built); this machine's driver is older (\(versions.driver))")
        }
    }
}
