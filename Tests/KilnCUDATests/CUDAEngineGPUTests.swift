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
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../models/snips/1/model.onnx").standardized
        let data = try Data(contentsOf: url)
        let source = try ONNXImporter().load(data: data, directory: url.deletingLastPathComponent(), source: "model.onnx")
        let opset = source.opset
        let optimized = try KilnOptimizer.optimize(
            source, evaluate: { try ReferenceKernels.run($0, inputs: $1, opset: opset) }, options: OptimizationOptions(memoryPlanShape: nil)).graph
        let engine = try CUDAEngine(graph: optimized, options: CUDAEngineOptions(maxBatch: 4, maxSequence: 32)) {
            try ReferenceKernels.run($0, inputs: $1, opset: $2)
        }
        let reference = try ReferenceExecutor(graph: source)
        let ids: [Int64] = (0..<64).map { Int64(($0 * 37) % 900 + 5) }
        let mask: [Int64] = (0..<64).map { $0 % 32 < 20 + ($0 / 32) * 8 ? 1 : 0 }
        let inputs: [String: Tensor] = [
            "input_ids": try Tensor(ints: ids, shape: [2, 32]), "attention_mask": try Tensor(ints: mask, shape: [2, 32]),
            "token_type_ids": try Tensor(ints: [Int64](repeating: 0, count: 64), shape: [2, 32]),
        ]
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
