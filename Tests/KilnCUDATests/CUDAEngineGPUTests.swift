import Foundation
import KilnCore
import KilnKernels
import KilnONNX
import KilnPasses
import KilnRuntime
import Testing

@testable import KilnCUDA

/// The CUDA engine against the CPU reference executor on a shipped model. Needs an NVIDIA GPU
/// and CUDA 13 libraries; skipped cleanly elsewhere (CI, CPU machines). On the GPU machines,
/// which have no Swift toolchain, `tools/gpu-check` runs the same comparison through
/// kiln-gpu-probe.
@Suite struct CUDAEngineGPUTests {
    static let gpu = CUDADriver.isAvailable && (try? CUDALibraries.loadAll()) != nil

    @Test(.enabled(if: gpu, "no NVIDIA GPU / CUDA 13 libraries"))
    func snipsMatchesTheReferenceInFP16() throws {
        try snipsMatchesTheReference(skinnyGemm: nil)
    }

    /// Both GEMM paths for few rows: Kiln's skinny GEMM and cuBLASLt.
    @Test(.enabled(if: gpu, "no NVIDIA GPU / CUDA 13 libraries"), arguments: [true, false])
    func snipsMatchesTheReferenceWithEitherSmallGemm(skinnyGemm: Bool) throws {
        try snipsMatchesTheReference(skinnyGemm: skinnyGemm)
    }

    private func snipsMatchesTheReference(skinnyGemm: Bool?) throws {
        let (source, optimized) = try SnipsFixture.graphs()
        let engine = try SnipsFixture.engine(optimized, skinnyGemm: skinnyGemm)
        let reference = try ReferenceExecutor(graph: source)
        let inputs = try SnipsFixture.inputs()
        let expected = try reference.run(inputs)
        for _ in 0..<3 {  // eager, graph capture, graph replay
            let got = try engine.run(inputs)
            for (name, tensor) in expected {
                let difference = zip(got[name]!.floats, tensor.floats).map { abs($0 - $1) }.max()!
                #expect(difference <= 2e-2, "\(name): max-abs \(difference)")
            }
        }
    }
}
