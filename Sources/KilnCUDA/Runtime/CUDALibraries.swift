// CUDALibraries: finds and opens libcuda, libcublasLt and libnvrtc at run time.
// Pattern: try an ordered list of candidate paths per library, keep every failure reason for the
// error message. Safe: nothing links against CUDA, so a machine without it only sees a clear
// `libraryUnavailable` error when a GPU engine is asked for.
import CKilnCUDA
import Foundation
import Synchronization

/// The NVIDIA libraries the backend opens with dlopen: the first three are required for a GPU
/// engine, NVML only for GPU metrics.
public enum CUDALibrary: String, Sendable, CaseIterable {
    case driver = "libcuda.so.1"
    case cublasLt = "libcublasLt.so.13"
    case nvrtc = "libnvrtc.so.13"
    case nvml = "libnvidia-ml.so.1"

    /// What a CUDA engine cannot run without.
    public static let required: [CUDALibrary] = [.driver, .cublasLt, .nvrtc]
}

/// Opens the NVIDIA libraries once per process.
public enum CUDALibraries {
    private static let state = Mutex<[CUDALibrary: Result<String, CUDAError>]>([:])

    /// Where to look for `library`, in order: `KILN_CUDA_LIB_DIR` (colon-separated folders), the
    /// loader's own search (LD_LIBRARY_PATH, ldconfig), then the usual CUDA and pip locations.
    public static func candidates(for library: CUDALibrary, environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var folders: [String] = (environment["KILN_CUDA_LIB_DIR"] ?? "").split(separator: ":").map(String.init)
        var paths = folders.map { "\($0)/\(library.rawValue)" } + [library.rawValue]
        folders = library == .driver || library == .nvml
            ? ["/usr/local/nvidia/lib64", "/usr/lib64", "/usr/lib/x86_64-linux-gnu"]
            : ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"] + pythonWheelFolders(for: library)
        paths += folders.map { "\($0)/\(library.rawValue)" }
        return paths
    }

    /// `nvidia/cu13/lib` and the older per-library wheel folders under every site-packages.
    static func pythonWheelFolders(for library: CUDALibrary) -> [String] {
        let roots = ["/usr/local/lib", "/usr/lib", "/opt/conda/lib"]
        let sub = library == .cublasLt ? "cublas" : "cuda_nvrtc"
        var folders: [String] = []
        for root in roots {
            let pythons = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("python3") }.sorted()
            for python in pythons {
                for packages in ["site-packages", "dist-packages"] {
                    folders.append("\(root)/\(python)/\(packages)/nvidia/cu13/lib")
                    folders.append("\(root)/\(python)/\(packages)/nvidia/\(sub)/lib")
                }
            }
        }
        return folders
    }

    /// Opens `library` (once; later calls return the first outcome) and returns the path used.
    @discardableResult
    public static func load(_ library: CUDALibrary) throws -> String {
        try state.withLock { loaded in
            if let outcome = loaded[library] { return try outcome.get() }
            let outcome = open(library)
            loaded[library] = outcome
            return try outcome.get()
        }
    }

    /// Opens the libraries a CUDA engine needs (not NVML).
    public static func loadAll() throws {
        for library in CUDALibrary.required { try load(library) }
    }

    private static func open(_ library: CUDALibrary) -> Result<String, CUDAError> {
        var attempts: [String] = []
        for path in candidates(for: library) {
            if path.hasPrefix("/") && !FileManager.default.fileExists(atPath: path) { continue }
            var message = [CChar](repeating: 0, count: 512)
            let status: Int32 = switch library {
            case .driver: kiln_cuda_open_driver(path, &message, message.count)
            case .cublasLt: kiln_cuda_open_cublaslt(path, &message, message.count)
            case .nvrtc: kiln_cuda_open_nvrtc(path, &message, message.count)
            case .nvml: kiln_cuda_open_nvml(path, &message, message.count)
            }
            if status == 0 {
                if library == .nvrtc { preloadNVRTCBuiltins(besides: path) }
                return .success(path)
            }
            attempts.append("\(path): \(decodeCString(message))")
        }
        if attempts.isEmpty { attempts = ["no candidate path exists"] }
        return .failure(.libraryUnavailable(library: library.rawValue, attempts: attempts))
    }

    /// NVRTC dlopens `libnvrtc-builtins.so.13.x` by name at compile time, which fails when its
    /// folder is not on the loader path (pip wheels). Loading it first from the folder NVRTC came
    /// from makes that later dlopen find the already-loaded library by its soname.
    private static func preloadNVRTCBuiltins(besides path: String) {
        guard path.hasPrefix("/") else { return }
        let folder = (path as NSString).deletingLastPathComponent
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasPrefix("libnvrtc-builtins.so") && !$0.contains("alt") }
        for name in names { _ = dlopen("\(folder)/\(name)", RTLD_NOW | RTLD_GLOBAL) }
    }
}
