import CDNNL
import Foundation
import KilnCore

/// `Y = activation(dequant(quant(A)·Wq) + bias)` on oneDNN's u8×s8 → s32 matmul: the CPU engine's
/// ``KilnOperators/fusedMatMul`` with `precision = "int8"`.
///
/// - Weights: s8 (7-bit levels), per-output-channel scales
///   (``Int8Quantization/weightScales(_:inputSize:outputSize:)``), packed once into oneDNN's
///   preferred layout.
/// - Activations: quantized to s8 levels with one scale per call — fixed (static, from
///   calibration) or the input's max-abs / 127 (dynamic) — and stored shifted by +128 as u8
///   (``Int8RowKernels/quantizeU8(_:count:inverseScale:into:isa:)``). On CPUs without VNNI,
///   u8×s8 is the operand pair oneDNN's fast int8 GEMM multiplies (`vpmaddubsw`); an s8 source
///   made it copy and shift the activations itself on every call, and its fp32 epilogue
///   (run-time output scales + binary post-op) ran as a separate slow pass.
/// - The GEMM writes exact int32 sums into the output buffer; the epilogue converts them in
///   place: `(acc + compensation[n])·s_a·s_w[n] + bias[n]`, where
///   `compensation[n] = -128·Σ_k Wq[k, n]` undoes the +128 shift exactly, then the activation,
///   per block of rows while it is in cache.
///
/// Immutable after construction apart from the primitive cache; share it between threads, each
/// with its own ``CPUStream``.
public final class Int8MatMulKernel: @unchecked Sendable {
    /// `K`.
    public let inputSize: Int
    /// `N`.
    public let outputSize: Int
    /// The epilogue activation.
    public let activation: GemmActivation
    /// The fixed activation scale, or nil for dynamic (per-call) scaling.
    public let inputScale: Float?
    /// Per-output-channel weight scales.
    public let weightScales: [Float]
    /// Name for error messages.
    public let name: String
    public let engine: CPUEngine
    /// The element-wise kernels' instruction set (quantize, epilogue, activation).
    public let isa: KernelISA

    /// The u8 × s8 → s32 GEMM, in column slices (their epilogues run on the slice's thread).
    private let gemm: OneDNNColumnSlices
    /// `outputSize` floats, or nil.
    private let bias: UnsafeMutablePointer<Float>?
    /// `-128·Σ_k Wq[k, n]`: the u8 shift's contribution to each column, removed exactly in int32.
    private let compensation: UnsafeMutablePointer<Int32>
    /// `s_a·s_w[n]` for static kernels.
    private let staticScales: [Float]

    /// Builds the kernel from already-quantized weights (what a plan stores).
    /// - Parameters:
    ///   - quantizedWeights: `Wq`, `inputSize × outputSize` levels in ±63, row-major.
    ///   - weightScales: `outputSize` scales (`W ≈ Wq[k, n]·weightScales[n]`).
    ///   - bias: `outputSize` floats or nil.
    ///   - inputScale: the static activation scale, or nil for dynamic.
    ///   - isa: the element-wise kernels' instruction set (tests run both).
    ///   - columnSlices: how many column slices the GEMM is cut into at most (nil: the thread count).
    /// - Throws: ``KilnError`` on mismatched sizes, levels outside ±63 or a oneDNN failure.
    public init(
        quantizedWeights: [Int8], weightScales: [Float], bias: [Float]?, inputSize: Int, outputSize: Int,
        activation: GemmActivation = .none, inputScale: Float? = nil, engine: CPUEngine = .shared, name: String = "FusedMatMul",
        isa: KernelISA = .detected, columnSlices: Int? = nil
    ) throws {
        func failure(_ message: String) -> KilnError {
            .invalidNode(node: name, opType: KilnOperators.fusedMatMul, message: message)
        }
        guard inputSize > 0, outputSize > 0, quantizedWeights.count == inputSize * outputSize, weightScales.count == outputSize else {
            throw failure("int8 weights [\(inputSize), \(outputSize)] need \(inputSize * outputSize) levels and \(outputSize) scales, got \(quantizedWeights.count) and \(weightScales.count)")
        }
        if let bias, bias.count != outputSize { throw failure("bias holds \(bias.count) values, expected \(outputSize)") }
        if let inputScale, !(inputScale > 0 && inputScale.isFinite) { throw failure("activation scale must be positive and finite, got \(inputScale)") }
        // Wider levels would saturate vpmaddubsw's 16-bit pair sums on CPUs without VNNI.
        let limit = Int8(Int8Quantization.weightLevels)
        guard quantizedWeights.allSatisfy({ $0 >= -limit && $0 <= limit }) else { throw failure("int8 weight levels must lie in ±\(limit)") }
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.activation = activation
        self.inputScale = inputScale
        self.weightScales = weightScales
        self.name = name
        self.engine = engine
        self.isa = isa
        self.bias = bias.map { values in
            let storage = UnsafeMutablePointer<Float>.allocate(capacity: outputSize)
            storage.initialize(from: values, count: outputSize)
            return storage
        }
        compensation = .allocate(capacity: outputSize)
        compensation.initialize(repeating: 0, count: outputSize)
        for k in 0..<inputSize {
            for n in 0..<outputSize { compensation[n] -= 128 * Int32(quantizedWeights[k * outputSize + n]) }
        }
        staticScales = weightScales.map { (inputScale ?? 1) * $0 }

        gemm = try quantizedWeights.withUnsafeBufferPointer { plain in
            try OneDNNColumnSlices(
                weights: UnsafeRawPointer(plain.baseAddress!), plainType: dnnl_s8, weightType: dnnl_s8, sourceType: dnnl_u8,
                destinationType: dnnl_s32, inputSize: inputSize, outputSize: outputSize, bias: nil, attributes: nil,
                engine: engine, slices: columnSlices ?? CPUThreading.threadCount)
        }
    }

    /// Quantizes fp32 weights per output channel and builds the kernel (for tests and tools;
    /// plans store the levels and use the other initializer).
    public convenience init(
        weights: [Float], bias: [Float]?, inputSize: Int, outputSize: Int, activation: GemmActivation = .none,
        inputScale: Float? = nil, engine: CPUEngine = .shared, name: String = "FusedMatMul", isa: KernelISA = .detected,
        columnSlices: Int? = nil
    ) throws {
        guard weights.count == inputSize * outputSize else {
            throw KilnError.invalidNode(node: name, opType: KilnOperators.fusedMatMul, message: "weights hold \(weights.count) values, expected \(inputSize * outputSize)")
        }
        let (levels, scales) = weights.withUnsafeBufferPointer { buffer in
            let scales = Int8Quantization.weightScales(buffer, inputSize: inputSize, outputSize: outputSize)
            return (Int8Quantization.quantizeWeights(buffer, scales: scales, inputSize: inputSize, outputSize: outputSize), scales)
        }
        try self.init(
            quantizedWeights: levels, weightScales: scales, bias: bias, inputSize: inputSize, outputSize: outputSize,
            activation: activation, inputScale: inputScale, engine: engine, name: name, isa: isa, columnSlices: columnSlices)
    }

    deinit {
        bias?.deallocate()
        compensation.deallocate()
    }

    /// The oneDNN implementation picked for `rows` (e.g. `gemm:jit` on AVX2).
    public func implementationName(rows: Int) throws -> String { try gemm.implementationName(rows: rows) }

    /// Computes `Y` for `rows` rows of fp32 `input`; `output` gets `rows × outputSize` fp32 values
    /// (it must not overlap `input`).
    public func run(input: UnsafePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>, stream: CPUStream) throws {
        guard rows > 0 else { return }
        let count = rows * inputSize
        let scale = inputScale ?? Int8Quantization.activationScale(absMax: absMax(input, count: count))
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { levels in
            quantize(input, rows: rows, scale: scale, into: levels.baseAddress!)
            let accumulators = UnsafeMutableRawPointer(output).bindMemory(to: Int32.self, capacity: rows * outputSize)
            let scales = inputScale != nil ? staticScales : weightScales.map { scale * $0 }
            // Each slice's int32 sums sit in its columns of `output`; its thread converts them in
            // place right after its GEMM (Int32 and Float are both 4 bytes).
            try scales.withUnsafeBufferPointer { scales in
                try gemm.run(source: UnsafeRawPointer(levels.baseAddress!), rows: rows, destination: UnsafeMutableRawPointer(output)) { columns in
                    self.epilogue(accumulators, rows: rows, columns: columns, scales: scales.baseAddress!, output: output)
                }
            }
        }
    }

    /// The dynamic scale's max-abs, chunks of rows on the compute pool.
    private func absMax(_ input: UnsafePointer<Float>, count: Int) -> Float {
        let chunks = max(1, min(CPUThreading.threadCount, count / 16384))
        var partial = [Float](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { results in
            let results = results.baseAddress!
            CPUThreading.parallelChunks(chunks) { chunk, chunks in
                let start = count * chunk / chunks, end = count * (chunk + 1) / chunks
                results[chunk] = Int8RowKernels.absMax(input + start, count: end - start, isa: isa)
            }
        }
        return partial.max() ?? 0
    }

    private func quantize(_ input: UnsafePointer<Float>, rows: Int, scale: Float, into levels: UnsafeMutablePointer<UInt8>) {
        let inverse = 1 / scale
        let size = inputSize
        CPUThreading.parallelFor(rows, minimumChunk: max(1, 8192 / size)) { range in
            let start = range.lowerBound * size
            Int8RowKernels.quantizeU8(input + start, count: range.count * size, inverseScale: inverse, into: levels + start, isa: isa)
        }
    }

    /// Dequantization, bias and activation of one column slice, row by row, in place. GELU runs
    /// inside the dequantization while the row is in L1 (one pass over the output, not two).
    private func epilogue(_ accumulators: UnsafeMutablePointer<Int32>, rows: Int, columns: Range<Int>, scales: UnsafePointer<Float>,
                          output: UnsafeMutablePointer<Float>) {
        let gelu: GeluKernel.Approximation? = switch activation {
        case .gelu: GeluKernel.Approximation.none
        case .geluTanh: .tanh
        default: nil
        }
        let first = columns.lowerBound
        for row in 0..<rows {
            let start = row * outputSize + first
            Int8RowKernels.dequantize(
                accumulators + start, into: output + start, rows: 1, columns: columns.count,
                compensation: compensation + first, scales: scales + first, bias: bias.map { $0 + first }, gelu: gelu, isa: isa)
            if gelu == nil { activate(output + start, count: columns.count) }
        }
    }

    /// The epilogue activation over `count` floats in place (one worker's block).
    private func activate(_ values: UnsafeMutablePointer<Float>, count: Int) {
        switch activation {
        case .none, .gelu, .geluTanh: return  // GELU is fused into the dequantization
        case .relu: for index in 0..<count { values[index] = max(values[index], 0) }
        case .tanh: for index in 0..<count { values[index] = Foundation.tanh(values[index]) }
        }
    }
}
