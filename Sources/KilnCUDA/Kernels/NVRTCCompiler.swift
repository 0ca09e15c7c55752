// NVRTCCompiler: compiles KernelSource for the present GPU and loads the module.
// Why at engine build: the SASS matches the exact arch (cuDeviceGetAttribute compute
// capability -> --gpu-architecture=sm_XY); compile time (~1 s) is paid once per engine.
import CKilnCUDA
import Foundation
import Glibc

/// A loaded CUDA module with Kiln's kernels.
final class KernelModule: @unchecked Sendable {
    let module: kcu_module
    let functions: [String: kcu_function]
    /// NVRTC's version, recorded in plans.
    let nvrtcVersion: String

    /// Compiles `source` for `architecture` and resolves `entryPoints`.
    init(source: String = KernelSource.developmentSource ?? KernelSource.source, architecture: String, entryPoints: [String] = KernelSource.entryPoints) throws {
        try CUDALibraries.load(.nvrtc)
        var major: Int32 = 0, minor: Int32 = 0
        _ = knvrtc_version(&major, &minor)
        nvrtcVersion = "\(major).\(minor)"
        let cubin = try Self.compile(source, architecture: architecture)
        var module: kcu_module?
        try cubin.withUnsafeBytes { try checkDriver(kcu_module_load_data(&module, $0.baseAddress), "cuModuleLoadData") }
        self.module = module!
        var functions: [String: kcu_function] = [:]
        for name in entryPoints {
            var function: kcu_function?
            try checkDriver(kcu_module_get_function(&function, module, name), "cuModuleGetFunction(\(name))")
            functions[name] = function!
        }
        self.functions = functions
    }

    deinit { _ = kcu_module_unload(module) }

    static func compile(_ source: String, architecture: String) throws -> [UInt8] {
        var program: knvrtc_program?
        let created = knvrtc_create(&program, source, "kiln_kernels.cu")
        guard created == 0, let program else { throw CUDAError.compilation("nvrtcCreateProgram failed (\(created))") }
        defer { var doomed: knvrtc_program? = program; _ = knvrtc_destroy(&doomed) }
        let options = KernelSource.options(architecture: architecture)
        let status = withCStrings(options) { knvrtc_compile(program, Int32(options.count), $0) }
        if status != 0 { throw CUDAError.compilation(log(program) + "\n(options: \(options.joined(separator: " ")))") }
        var size = 0
        guard knvrtc_cubin_size(program, &size) == 0, size > 0 else { throw CUDAError.compilation("no CUBIN for \(architecture)") }
        var cubin = [UInt8](repeating: 0, count: size)
        let copied = cubin.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: size) { knvrtc_cubin(program, $0) }
        }
        guard copied == 0 else { throw CUDAError.compilation("nvrtcGetCUBIN failed (\(copied))") }
        return cubin
    }

    private static func log(_ program: knvrtc_program) -> String {
        var size = 0
        guard knvrtc_log_size(program, &size) == 0, size > 1 else { return "(no log)" }
        var text = [CChar](repeating: 0, count: size + 1)
        _ = knvrtc_log(program, &text)
        return decodeCString(text)
    }

    func function(_ name: String) -> kcu_function { functions[name]! }
}

extension KernelSource {
    /// Kernel development on a GPU machine without rebuilding Kiln: KILN_CUDA_KERNEL_SOURCE names
    /// a CUDA C file, or a copy of KernelSource.swift (its source string is taken out of it),
    /// compiled instead of the built-in source. The entry points and their parameters must match
    /// the ones this build launches. Unset (the default): nil.
    static let developmentSource: String? = {
        guard let path = ProcessInfo.processInfo.environment["KILN_CUDA_KERNEL_SOURCE"], !path.isEmpty else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            FileHandle.standardError.write(Data("kiln: KILN_CUDA_KERNEL_SOURCE=\(path) could not be read; using the built-in kernels\n".utf8))
            return nil
        }
        guard let source = path.hasSuffix(".swift") ? embeddedSource(inSwiftFile: text) : text else {
            FileHandle.standardError.write(Data("kiln: KILN_CUDA_KERNEL_SOURCE=\(path) holds no `source` literal; using the built-in kernels\n".utf8))
            return nil
        }
        FileHandle.standardError.write(Data("kiln: compiling CUDA kernels from \(path) (KILN_CUDA_KERNEL_SOURCE)\n".utf8))
        return source
    }()

    /// The CUDA C inside KernelSource.swift's `source` literal, indentation removed.
    static func embeddedSource(inSwiftFile text: String) -> String? {
        guard let open = text.range(of: "public static let source = #\"\"\"\n"),
              let close = text.range(of: "\n    \"\"\"#", range: open.upperBound..<text.endIndex) else { return nil }
        return text[open.upperBound..<close.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("    ") ? String($0.dropFirst(4)) : String($0) }.joined(separator: "\n")
    }
}

/// Calls `body` with a C array of C strings that live for the call.
func withCStrings<T>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> T) -> T {
    let duplicated: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { duplicated.forEach { free($0) } }
    let constant = duplicated.map { UnsafePointer($0) }
    return constant.withUnsafeBufferPointer { body($0.baseAddress!) }
}

/// The text of a NUL-terminated C buffer.
func decodeCString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
