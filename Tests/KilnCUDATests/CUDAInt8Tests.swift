import Foundation
import KilnCore
import KilnKernels
import KilnONNX
import KilnPasses
import KilnRuntime
import Testing

@testable import KilnCUDA

/// The shipped snips model, imported and optimized as the CUDA engine takes it (shared by the GPU tests).
enum SnipsFixture {
    static func graphs() throws -> (source: Graph, optimized: Graph) {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../models/snips/1/model.onnx").standardized
        let source = try ONNXImporter().load(data: try Data(contentsOf: url), directory: url.deletingLastPathComponent(), source: "model.onnx")
        let opset = source.opset
        let optimized = try KilnOptimizer.optimize(
            source, evaluate: { try ReferenceKernels.run($0, inputs: $1, opset: opset) }, options: OptimizationOptions(memoryPlanShape: nil)).graph
        return (source, optimized)
    }

    /// Two rows of 32 tokens, the second with a longer real part; deterministic ids.
    static func inputs() throws -> [String: Tensor] {
        let ids: [Int64] = (0..<64).map { Int64(($0 * 37) % 900 + 5) }
        let mask: [Int64] = (0..<64).map { $0 % 32 < 20 + ($0 / 32) * 8 ? 1 : 0 }
        return [
            "input_ids": try Tensor(ints: ids, shape: [2, 32]), "attention_mask": try Tensor(ints: mask, shape: [2, 32]),
            "token_type_ids": try Tensor(ints: [Int64](repeating: 0, count: 64), shape: [2, 32]),
        ]
    }

    static func engine(_ graph: Graph, skinnyGemm: Bool? = nil) throws -> CUDAEngine {
        var options = CUDAEngineOptions(maxBatch: 4, maxSequence: 32)
        if let skinnyGemm { options.skinnyGemm = skinnyGemm }
        return try CUDAEngine(graph: graph, options: options) { try ReferenceKernels.run($0, inputs: $1, opset: $2) }
    }
}

/// INT8 on the GPU: weight layout, activation codes and element sizes (run everywhere).
@Suite struct CUDAInt8Tests {
    @Test func levelsAreStoredTransposedForTheTNGemm() {
        // [K=2, N=3] row-major -> [N=3, K=2] row-major.
        let levels: [Int64] = [1, 2, 3, -4, -5, 127]
        #expect(Int8GemmWeights.transposed(levels, k: 2, n: 3) == [1, -4, 2, -5, 3, 127])
    }

    @Test func activationCodesMatchTheDequantizationKernel() {
        #expect(Int8GemmWeights.activationCodes == ["none": 0, "gelu": 1, "gelu_tanh": 2, "relu": 3])
        #expect(KernelSource.source.contains("act == 1 ? gelu_erf(v) : act == 2 ? gelu_tanh(v) : act == 3 ? fmaxf(v, 0.0f) : v"))
        #expect(KernelSource.entryPoints.contains("kiln_quantize_s8") && KernelSource.entryPoints.contains("kiln_dequant_s32"))
    }

    @Test func int8ElementsTakeOneByte() {
        #expect(DeviceDType.i8.byteSize == 1 && DeviceDType.f16.byteSize == 2 && DeviceDType.i32.byteSize == 4)
    }

    // Not yet here: the int8 engine against a reference on a GPU. The reference executor has no
    // int8 FusedMatMul kernel (ReferenceKernels dispatches only the fp32 one; the CPU Engine uses
    // Int8MatMulReference), so the quantized graph cannot be its reference until it does.
}
