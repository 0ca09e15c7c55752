// The INT8 checks of the probe, on the GPU machine:
//   int8-gemm   kernel level: one INT8 FusedMatMul (quantize -> cuBLASLt s8 GEMM -> dequantize,
//               bias, activation) on the GPU against Int8MatMulReference on the same fp16-exact
//               inputs. Integer accumulation is exact on both sides, so the only differences
//               allowed are fp32 rounding of the epilogue and the fp16 rounding of the output:
//               a layout, scale or rounding bug shows as errors of whole quantization steps.
//   check --int8 model level: the GPU int8 engine against the reference executor on the same
//               quantized graph, judged against the floor that fp16 activation storage alone
//               produces (the reference run again with every node's result rounded to fp16).
import Foundation
import KilnCUDA
import KilnCore
import KilnKernels
import KilnRuntime

/// One GEMM case of the kernel-level check.
struct Int8GemmCase {
    let rows: Int, inputSize: Int, outputSize: Int
    let activation: String
}

/// BERT-base and MiniLM GEMM shapes (QKV, attention out, FFN up/down), odd row counts, every activation.
let int8GemmCases: [Int8GemmCase] = [
    Int8GemmCase(rows: 1, inputSize: 384, outputSize: 1152, activation: "none"),
    Int8GemmCase(rows: 7, inputSize: 768, outputSize: 2304, activation: "none"),
    Int8GemmCase(rows: 40, inputSize: 768, outputSize: 3072, activation: "gelu"),
    Int8GemmCase(rows: 64, inputSize: 3072, outputSize: 768, activation: "none"),
    Int8GemmCase(rows: 33, inputSize: 384, outputSize: 1536, activation: "gelu_tanh"),
    Int8GemmCase(rows: 5, inputSize: 256, outputSize: 96, activation: "relu"),
]

/// Static activation scale of the kernel check: inputs span ±8, so levels beyond ±6.35 clamp.
private let gemmCheckInputScale: Float = 0.05

/// Runs every case; prints one line each and `RESULT INT8-GEMM PASS|FAIL`. Returns whether all passed.
func checkInt8Gemms(hostEvaluator: @escaping HostEvaluator) throws -> Bool {
    var generator = SplitMix(state: 0x1A78)
    var passed = true
    for gemmCase in int8GemmCases {
        let (worst, bound) = try runInt8GemmCase(gemmCase, generator: &generator, hostEvaluator: hostEvaluator)
        let ok = worst <= bound
        passed = passed && ok
        print(String(format: "  int8 GEMM M=%d K=%d N=%d %@: max |gpu - reference| / (1e-3 + |reference|) %.3g (allowed %.3g) %@", gemmCase.rows, gemmCase.inputSize,
                     gemmCase.outputSize, gemmCase.activation, worst, bound, ok ? "ok" : "FAIL"))
    }
    print("RESULT INT8-GEMM \(passed ? "PASS" : "FAIL"): \(int8GemmCases.count) GEMMs, GPU quantize + s8 GEMM + dequantize vs Int8MatMulReference")
    return passed
}

/// The GPU's and the reference's outputs for one case: worst difference and the bound it must stay under.
private func runInt8GemmCase(
    _ gemmCase: Int8GemmCase, generator: inout SplitMix, hostEvaluator: @escaping HostEvaluator
) throws -> (worst: Float, bound: Float) {
    let (m, k, n) = (gemmCase.rows, gemmCase.inputSize, gemmCase.outputSize)
    func uniform() -> Float { Float(generator.next() >> 40) / Float(1 << 24) }  // [0, 1)
    // The GEMM's input comes from an embedding table (a Gather is what puts a graph input on the
    // GPU); table rows are fp16-exact, so the GPU's fp16 activations equal the reference's fp32 ones.
    let table = (0..<(m * k)).map { _ in Float(Float16((uniform() * 2 - 1) * 8)) }
    let levels = (0..<(k * n)).map { _ in Int64(Int(generator.next() % 127) - 63) }
    let scales = (0..<n).map { _ in 0.001 + uniform() * 0.009 }
    let bias = (0..<n).map { _ in uniform() - 0.5 }
    let graph = Graph(
        name: "int8-gemm",
        inputs: [ValueInfo(name: "ids", dtype: .int64, shape: [.fixed(1), .fixed(m)])],
        outputs: [ValueInfo(name: "y", dtype: .float32, shape: [.fixed(1), .fixed(m), .fixed(n)])],
        initializers: [
            "table": try Tensor(floats: table, shape: [m, k]), "w": try Tensor(ints: levels, shape: [k, n], dtype: .int8),
            "b": try Tensor(floats: bias, shape: [n]), "s": try Tensor(floats: scales, shape: [n]),
        ],
        nodes: [
            Node(name: "embed", opType: "Gather", domain: "", inputs: ["table", "ids"], outputs: ["a"], attributes: ["axis": .int(0)]),
            Node(name: "gemm", opType: KilnOperators.fusedMatMul, domain: KilnOperators.domain, inputs: ["a", "w", "b", "s"], outputs: ["y"],
                 attributes: [KilnOperators.precisionAttribute: .string(KilnOperators.int8Precision),
                              KilnOperators.inputScaleAttribute: .float(gemmCheckInputScale), "activation": .string(gemmCase.activation)]),
        ],
        opsetImports: ["": 17, KilnOperators.domain: 1])
    let engine = try CUDAEngine(graph: graph, options: CUDAEngineOptions(maxBatch: 1, maxSequence: m, useGraphs: false), hostEvaluator: hostEvaluator)
    guard engine.placement["\(KilnOperators.domain):\(KilnOperators.fusedMatMul)"]?.gpu == 1 else {
        throw CUDAError.unsupported("the int8 GEMM of case M=\(m) K=\(k) N=\(n) did not run on the GPU: \(engine.placement)")
    }
    let ids = try Tensor(ints: (0..<m).map(Int64.init), shape: [1, m])
    let got = try engine.run(["ids": ids])["y"]!.floats
    let expected = Int8MatMulReference.run(
        input: table, rows: m, quantizedWeights: levels.map { Int8($0) }, weightScales: scales, bias: bias, inputSize: k, outputSize: n,
        activation: GemmActivation(rawValue: gemmCase.activation)!, inputScale: gemmCheckInputScale)
    // Relative to 1e-3 + |expected|: the output may pass through fp16 (2^-11 relative) and the
    // epilogue rounds in fp32, both well inside 1e-3. A transposed layout, a wrong scale or a
    // misread stride moves most elements by their own size (relative error of order 1); a
    // level off by one in a single product can hide below the bound (|y| is ~25 here).
    let worst = zip(got, expected).map { abs($0 - $1) / (1e-3 + abs($1)) }.max() ?? 0
    return (worst.isNaN ? .infinity : worst, 1e-3)
}
