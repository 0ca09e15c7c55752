import Foundation
import KilnCore
import Testing

@testable import KilnCUDA

/// CPU-side checks of the CUDA backend (run everywhere) and GPU checks that skip cleanly when
/// libcuda or a GPU is absent (CI, the CPU development machine).
@Suite struct CUDABackendCPUTests {
    @Test func libraryCandidatesHonourTheOverrideFolderFirst() {
        let paths = CUDALibraries.candidates(for: .cublasLt, environment: ["KILN_CUDA_LIB_DIR": "/opt/a:/opt/b"])
        #expect(paths.prefix(3) == ["/opt/a/libcublasLt.so.13", "/opt/b/libcublasLt.so.13", "libcublasLt.so.13"])
        #expect(paths.contains("/usr/local/cuda/lib64/libcublasLt.so.13"))
        #expect(CUDALibraries.candidates(for: .driver, environment: [:]).first == "libcuda.so.1")
    }

    @Test func missingLibraryErrorSaysWhatToDo() {
        let error = CUDAError.libraryUnavailable(library: "libcuda.so.1", attempts: ["libcuda.so.1: cannot open shared object file"])
        #expect(error.description.contains("KILN_CUDA_LIB_DIR"))
        #expect(error.description.contains("cannot open shared object file"))
    }

    @Test func driverIsAbsentOrWorksWithoutCrashing() throws {
        // On machines without the NVIDIA driver this must be a clean error, never a crash.
        if !CUDADriver.isAvailable {
            #expect(throws: CUDAError.self) { try CUDADriver.deviceCount() == 0 ? try CUDADriver.device(0) : CUDADriver.device(-1) }
        } else {
            #expect(try CUDADriver.deviceCount() > 0)
        }
    }

    @Test func nvmlIsOptionalAndLooksWhereTheDriverLives() throws {
        #expect(!CUDALibrary.required.contains(.nvml), "a CUDA engine must not need NVML")
        #expect(CUDALibraries.candidates(for: .nvml, environment: [:]).contains("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1"))
        // Without a GPU (CI) the monitor is a clean error, so `kiln serve` runs on without GPU metrics.
        if !CUDADriver.isAvailable {
            #expect(throws: CUDAError.self) { _ = try GPUMonitor(ordinals: [0]) }
        } else if let monitor = try? GPUMonitor(ordinals: [0]) {
            let reading = try #require(monitor.read().first)
            #expect(reading.memoryTotalBytes > 0 && reading.memoryUsedBytes <= reading.memoryTotalBytes)
            #expect((0...1).contains(reading.utilization))
        }
    }

    @Test func timingCacheRoundTripsAndReusesOnlyInItsScope() throws {
        let h100 = GemmTimingCache(device: "NVIDIA H100 80GB HBM3", architecture: "sm_90", cublasLt: 130100,
                                   choices: ["32x2304x768/lda768/none/f16": 3])
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-timing-\(UUID().uuidString)/cache.json")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try h100.write(to: url)
        #expect(try GemmTimingCache.load(from: url) == h100)
        #expect(h100.sameScope(as: GemmTimingCache(device: "NVIDIA H100 80GB HBM3", architecture: "sm_90", cublasLt: 130100)))
        #expect(!h100.sameScope(as: GemmTimingCache(device: "NVIDIA H100 80GB HBM3", architecture: "sm_90", cublasLt: 130200)))
        #expect(!h100.sameScope(as: GemmTimingCache(device: "NVIDIA H200", architecture: "sm_90", cublasLt: 130100)))
        #expect(!h100.sameScope(as: GemmTimingCache(device: "NVIDIA H100 80GB HBM3", architecture: "sm_90", cublasLt: 130100, candidates: 16)))

        // A loaded file fills gaps; what this process timed itself wins.
        let store = GemmTimingCache.Store()
        store.record(scope: h100.scope, key: "8x768x768/lda768/bias/f16", choice: 1)
        store.record(scope: h100.scope, key: "32x2304x768/lda768/none/f16", choice: 5)
        store.merge(h100)
        #expect(store.choice(scope: h100.scope, key: "32x2304x768/lda768/none/f16") == 5)
        #expect(store.snapshot(like: h100).choices.count == 2)
        #expect(store.choice(scope: "other", key: "8x768x768/lda768/bias/f16") == nil)
    }

    @Test func timingCacheKeysSeparateWhatChangesTheCandidates() {
        let plain = GemmShape(m: 32, n: 768, k: 768, lda: 768, outputF32: false, epilogue: .bias)
        var strided = plain
        strided.lda = 2304
        var f32 = plain
        f32.outputF32 = true
        var int8 = plain
        int8.int8 = true
        let keys = Set([plain, strided, f32, int8].map(CuBLASLtGemm.key))
        #expect(keys.count == 4)
        #expect(CuBLASLtGemm.key(plain) == "32x768x768/lda768/bias/f16")
    }

    @Test func bumpAllocatorAlignsAndTracksHighWater() {
        var allocator = BumpAllocator(capacity: 1024, alignment: 256)
        #expect(allocator.allocate(10) == 0)
        #expect(allocator.allocate(300) == 256)
        #expect(allocator.allocate(500) == nil)  // 768 + 500 > 1024
        #expect(allocator.highWater == 556)
        allocator.reset()
        #expect(allocator.allocate(1024) == 0)
        #expect(allocator.highWater == 1024)
    }

    @Test func bumpAllocatorResumesAtAMark() {
        var allocator = BumpAllocator(capacity: 4096, alignment: 256)
        _ = allocator.allocate(700)
        let mark = allocator.used
        allocator.reset()
        allocator.reset(to: mark)  // a graph replay resumes after the captured allocations
        #expect(allocator.allocate(10) == 768)
    }

    @Test func fastKernelsOnlyTakeTheShapesTheyHandle() {
        #expect(KernelSource.tensorCoreAttentionFits(headSize: 64, sequence: 32))
        #expect(KernelSource.tensorCoreAttentionFits(headSize: 32, sequence: 128))
        #expect(!KernelSource.tensorCoreAttentionFits(headSize: 64, sequence: 17))  // not a bucket: SIMT kernel
        #expect(!KernelSource.tensorCoreAttentionFits(headSize: 80, sequence: 32))
        #expect(!KernelSource.tensorCoreAttentionFits(headSize: 64, sequence: 144))
        #expect(KernelSource.tensorCoreAttentionSharedBytes(sequence: 128, headSize: 64) <= 48 * 1024)  // no opt-in needed
        #expect(KernelSource.warpLayerNormFits(width: 768) && KernelSource.warpLayerNormFits(width: 384))
        #expect(!KernelSource.warpLayerNormFits(width: 1000) && !KernelSource.warpLayerNormFits(width: 2048))
    }

    @Test func tensorCoreAttentionUsesOneWarpABlockUntilTheBlocksCoverTheSMs() {
        // BERT-base seq 32: 12 (batch x heads) blocks at batch 1 leave an H100's 132 SMs idle.
        #expect(KernelSource.tensorCoreAttentionWarps(batch: 1, heads: 12, sequence: 32, multiprocessors: 132) == 1)
        #expect(KernelSource.tensorCoreAttentionWarps(batch: 11, heads: 12, sequence: 32, multiprocessors: 132) == 2)
        #expect(KernelSource.tensorCoreAttentionWarps(batch: 256, heads: 12, sequence: 128, multiprocessors: 132) == 4)
        // A smaller GPU is covered sooner.
        #expect(KernelSource.tensorCoreAttentionWarps(batch: 1, heads: 12, sequence: 32, multiprocessors: 10) == 2)
    }

    @Test func skinnyGemmTakesOnlyShapesItHandles() {
        #expect(SkinnyGemmWorkspace.fits(rows: 32, n: 768, k: 768, lda: 768))
        #expect(SkinnyGemmWorkspace.fits(rows: 64, n: 3072, k: 768, lda: 2304))  // a strided view
        #expect(!SkinnyGemmWorkspace.fits(rows: 65, n: 768, k: 768, lda: 768))  // > 4 m-tiles
        #expect(!SkinnyGemmWorkspace.fits(rows: 32, n: 770, k: 768, lda: 768))  // N not a multiple of 32
        #expect(!SkinnyGemmWorkspace.fits(rows: 32, n: 768, k: 800, lda: 800))  // K not a multiple of 64
        #expect(!SkinnyGemmWorkspace.fits(rows: 32, n: 768, k: 768, lda: 772))  // rows not 16-byte aligned
        #expect(SkinnyGemmWorkspace.entryPoint(rows: 1) == "kiln_gemm_skinny_m1")
        #expect(SkinnyGemmWorkspace.entryPoint(rows: 32) == "kiln_gemm_skinny_m2")
        #expect(SkinnyGemmWorkspace.entryPoint(rows: 33) == "kiln_gemm_skinny_m3")
        #expect(SkinnyGemmWorkspace.entryPoint(rows: 64) == "kiln_gemm_skinny_m4")
        for rows in [1, 16, 17, 32, 48, 64] {
            #expect(KernelSource.entryPoints.contains(SkinnyGemmWorkspace.entryPoint(rows: rows)))
        }
    }

    @Test func skinnyGemmSplitsKUntilTheGPUIsFull() {
        // BERT-base on 132 SMs: 6, 18 and 24 column tiles of 128.
        for (n, k) in [(768, 768), (2304, 768), (3072, 768), (768, 3072)] {
            let span = SkinnyGemmWorkspace.kSpan(n: n, k: k, multiprocessors: 132)
            #expect(span % 64 == 0 && k % span == 0)
            let blocks = (n / 128) * (k / span)
            #expect(blocks >= 132 || span == 64, "N \(n) K \(k): span \(span) gives \(blocks) blocks")
            #expect(span == k || (n / 128) * (k / (2 * span)) < 132 || k % (2 * span) != 0, "a longer span would still fill the GPU")
        }
        #expect(SkinnyGemmWorkspace.kSpan(n: 768, k: 768, multiprocessors: 132) == 64)  // 72 blocks: as many as there can be
        #expect(SkinnyGemmWorkspace.kSpan(n: 3072, k: 768, multiprocessors: 8) == 768)  // a small GPU: no split
    }

    @Test func developmentSourceReadsTheKernelsOutOfKernelSourceSwift() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/KilnCUDA/Kernels/KernelSource.swift").standardized
        let text = try String(contentsOf: file, encoding: .utf8)
        #expect(KernelSource.embeddedSource(inSwiftFile: text) == KernelSource.source)
        #expect(KernelSource.embeddedSource(inSwiftFile: "no kernels here") == nil)
    }

    @Test func attentionRowsSpreadSmallBatchesOverMoreBlocks() {
        #expect(KernelSource.attentionRows(batch: 1, heads: 12, sequence: 32) == KernelSource.attentionWarps)
        #expect(KernelSource.attentionRows(batch: 8, heads: 12, sequence: 32) == 8)
        #expect(KernelSource.attentionRows(batch: 256, heads: 12, sequence: 32) == KernelSource.attentionRowsPerBlock)
    }

    @Test func kernelSourceDeclaresEveryEntryPointAndTargetsTheGivenArch() {
        for name in KernelSource.entryPoints {
            #expect(KernelSource.source.contains("extern \"C\" __global__ void \(name)("), "missing \(name)")
        }
        #expect(KernelSource.options(architecture: "sm_90").contains("--gpu-architecture=sm_90"))
        #expect(!KernelSource.source.contains("#include"))  // NVRTC builtin headers vary by version
    }

    @Test func attentionSharedMemoryFitsTheLimit() {
        let limit = 227 * 1024  // H100 opt-in
        let longest = KernelSource.maxAttentionSequence(headSize: 64, sharedMemoryLimit: limit)
        #expect(longest >= 512)
        #expect(KernelSource.attentionSharedBytes(sequence: longest, headSize: 64) <= limit)
        #expect(KernelSource.attentionSharedBytes(sequence: longest + 1, headSize: 64) > limit)
    }

    @Test func maskStridesBroadcastLikeTheCPUEngine() {
        let strides = maskStrides([2, 1, 1, 8], batch: 2, heads: 12, sequence: 8)
        #expect(strides?.batch == 8 && strides?.head == 0 && strides?.row == 0)
        #expect(maskStrides([2, 8, 9], batch: 2, heads: 12, sequence: 8) == nil)
    }

    @Test func halfPrecisionRoundTrips() {
        let values: [Float] = [0, 1, -2.5, 65504, 1e-3]
        let encoded = HalfPrecision.encode(values)
        let decoded = encoded.withUnsafeBytes { HalfPrecision.decode($0.baseAddress!, count: values.count) }
        for (a, b) in zip(values, decoded) { #expect(abs(a - b) <= abs(a) * 1e-3 + 1e-6) }
    }

    @Test func planTargetRefusesOtherGPUs() throws {
        let h100 = CUDADeviceInfo(ordinal: 0, name: "NVIDIA H100", major: 9, minor: 0, multiprocessors: 132, totalMemory: 80 << 30,
                                  sharedMemoryPerBlockOptin: 232_448, driverVersion: 13000)
        let versions = CUDAVersions(driver: 13000, cublasLt: 130_000, nvrtc: "13.0")
        let header = PlanHeader(
            kilnVersion: "0.1.0", target: CUDAPlanTarget.target(for: h100), precision: "fp16", sourceModelSHA256: "x",
            sourceModelName: "m.onnx", inputs: [], outputs: [], buildOptions: CUDAPlanTarget.buildOptions(device: h100, versions: versions),
            createdAt: "now")
        #expect(header.target.architecture == "sm_90")
        try CUDAPlanTarget.checkCompatible(header, device: h100, versions: versions)
        var a100 = h100
        (a100.name, a100.major) = ("NVIDIA A100", 8)
        #expect(throws: CUDAError.self) { try CUDAPlanTarget.checkCompatible(header, device: a100, versions: versions) }
        #expect(throws: CUDAError.self) {
            try CUDAPlanTarget.checkCompatible(header, device: h100, versions: CUDAVersions(driver: 12080, cublasLt: 130_000, nvrtc: "13.0"))
        }
        var cpu = header
        cpu.target = PlanTarget(kind: "cpu", architecture: "avx2", requiredFeatures: [])
        do {
            try CUDAPlanTarget.checkCompatible(cpu, device: h100, versions: versions)
            Issue.record("a CPU plan was accepted")
        } catch let error as CUDAError {
            #expect(error.description.contains("rebuild"))
        }
    }
}

/// NVRTC runs without a GPU: where libnvrtc is installed (pip `nvidia-cuda-nvrtc`, a CUDA
/// toolkit), Kiln's kernel source must compile to a CUBIN for each supported architecture. Skipped where it is absent.
@Suite struct NVRTCCompileTests {
    static let available = (try? CUDALibraries.load(.nvrtc)) != nil

    /// Hopper is what the GPU runs measure; Ampere and Ada are what else a team may deploy on, and
    /// Hopper-only PTX (vector `red`, `griddepcontrol`) must stay behind `__CUDA_ARCH__` guards.
    @Test(.enabled(if: available, "libnvrtc.so.13 not found (set KILN_CUDA_LIB_DIR)"),
          arguments: ["sm_90", "sm_80", "sm_86", "sm_89"])
    func kernelSourceCompiles(architecture: String) throws {
        let cubin = try KernelModule.compile(KernelSource.source, architecture: architecture)
        #expect(cubin.count > 1000)
        #expect(Array(cubin.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46])  // an ELF image
    }

    @Test(.enabled(if: available, "libnvrtc.so.13 not found (set KILN_CUDA_LIB_DIR)"))
    func compileErrorsCarryTheLog() {
        do {
            _ = try KernelModule.compile("extern \"C\" __global__ void broken( { }", architecture: "sm_90")
            Issue.record("broken source compiled")
        } catch let error as CUDAError {
            #expect(error.description.contains("NVRTC"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
