import CDNNL
import Foundation
import KilnCore

/// The activation a ``FusedMatMulKernel`` applies after `A·W + bias`, as oneDNN eltwise post-ops.
/// Raw values are the `activation` attribute of ``KilnOperators/fusedMatMul``.
public enum GemmActivation: String, Sendable, CaseIterable {
    case none
    /// GELU, erf form: `0.5·x·(1 + erf(x/√2))`.
    case gelu
    /// GELU, tanh approximation.
    case geluTanh = "gelu_tanh"
    case relu
    case tanh
}

/// The number formats of a GEMM: weights and input (activations); accumulation and output are
/// always fp32.
public enum GemmPrecision: Sendable, Equatable, CustomStringConvertible {
    /// fp32 weights and activations.
    case float32
    /// bf16 weights; activations bf16 (fp32 inputs are rounded to bf16 before the GEMM).
    /// Needs AVX512_BF16 (``CPUFeatures/hasAVX512BF16``).
    case bfloat16

    public var description: String { self == .float32 ? "fp32" : "bf16" }
}

/// Which GEMM implementation an fp32 ``FusedMatMulKernel`` runs on.
public enum GemmBackend: String, Sendable, CaseIterable {
    /// oneDNN's matmul primitive, in column slices on Kiln's threads (brgemm on AVX-512 CPUs,
    /// `gemm:jit` for fp32 on AVX2 ones; the only choice for bf16).
    case oneDNN = "onednn"
    /// Kiln's AVX2+FMA GEMM (``AVX2GemmKernel``): fp32 only, CPUs with AVX2 and FMA.
    case avx2

    /// The backend for `precision` on this CPU: fp32 runs on `.avx2` on CPUs with AVX2+FMA but no
    /// AVX-512, where Debian's oneDNN 2.6 has only `gemm:jit` (it re-packs W on every call); on
    /// AVX-512 CPUs oneDNN's brgemm kernels are faster (MiniLM, 2 threads, on a Xeon with
    /// AVX-512: batch 1 3.1 vs 4.1 ms, batch 16 260 vs 142 seq/s), so everything else runs on
    /// `.oneDNN`. `KILN_GEMM=onednn|avx2` in the environment forces one (A/B benchmarks, escape
    /// hatch; `avx2` only where the CPU has it).
    public static func preferred(for precision: GemmPrecision) -> GemmBackend {
        guard precision == .float32, AVX2GemmKernel.isSupported else { return .oneDNN }
        if let environmentChoice { return environmentChoice }
        return CPUFeatures.detected.hasAVX512Core ? .oneDNN : .avx2
    }

    /// `KILN_GEMM`, read once.
    static let environmentChoice: GemmBackend? = {
        guard let raw = getenv("KILN_GEMM") else { return nil }
        return GemmBackend(rawValue: String(cString: raw).lowercased())
    }()
}

/// `Y = activation(A·W + bias)` with `W` packed once (at construction): the CPU engine's
/// ``KilnOperators/fusedMatMul``. fp32 on AVX2+FMA CPUs without AVX-512 runs on
/// ``AVX2GemmKernel`` (``GemmBackend/preferred(for:)``); bf16, and fp32 elsewhere, on oneDNN's
/// matmul primitive with `W` in the blocked layout oneDNN prefers for this CPU, cut into column
/// slices that Kiln's compute pool runs (``OneDNNColumnSlices``).
///
/// Shapes: `A: [rows, inputSize]`, `W: [inputSize, outputSize]`, `bias: [outputSize]`,
/// `Y: [rows, outputSize]`, all row-major fp32 (`A` may be bf16 for bf16 kernels).
/// oneDNN primitives are created per distinct `rows` on first use and cached (creating one costs
/// 0.1–1 ms; running a cached one costs nothing extra). The kernel is immutable after
/// construction apart from that cache and can be shared by threads; each thread passes its
/// own ``CPUStream``.
public final class FusedMatMulKernel: @unchecked Sendable {
    /// `K`: columns of `A`, rows of `W`.
    public let inputSize: Int
    /// `N`: columns of `W` and `Y`.
    public let outputSize: Int
    /// The epilogue.
    public let activation: GemmActivation
    /// Weight/activation format.
    public let precision: GemmPrecision
    /// The engine the primitives run on.
    public let engine: CPUEngine
    /// Name for error messages (usually the graph node's).
    public let name: String
    /// The implementation this kernel runs on.
    public let backend: GemmBackend

    /// Exactly one of these is set, per ``backend``.
    private let oneDNN: OneDNNColumnSlices?
    private let avx2: AVX2GemmKernel?

    /// Packs `weights` and prepares the epilogue.
    /// - Parameters:
    ///   - weights: `W`, `inputSize × outputSize` floats, row-major (copied; the caller may free it).
    ///   - bias: `outputSize` floats, or nil.
    ///   - inputSize: `K`.
    ///   - outputSize: `N`.
    ///   - activation: the epilogue.
    ///   - precision: `.float32`, or `.bfloat16` (weights rounded to bf16 while packing).
    ///   - engine: the oneDNN engine.
    ///   - name: for error messages.
    ///   - backend: nil for ``GemmBackend/preferred(for:)``; `.avx2` where it cannot run
    ///     (bf16, no AVX2+FMA) falls back to oneDNN.
    ///   - columnSlices: how many column slices a oneDNN GEMM is cut into at most (nil: the
    ///     thread count); fewer when `N` is small (see ``OneDNNColumnSlices``).
    /// - Throws: ``KilnError`` for mismatched sizes, bf16 on a CPU without AVX512_BF16, or a
    ///   oneDNN failure.
    public init(
        weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?, inputSize: Int, outputSize: Int,
        activation: GemmActivation = .none, precision: GemmPrecision = .float32,
        engine: CPUEngine = .shared, name: String = "FusedMatMul", backend: GemmBackend? = nil, columnSlices: Int? = nil
    ) throws {
        try Self.validate(weights: weights, bias: bias, inputSize: inputSize, outputSize: outputSize, precision: precision, name: name)
        let canUseAVX2 = precision == .float32 && AVX2GemmKernel.isSupported
        let chosen = canUseAVX2 ? (backend ?? GemmBackend.preferred(for: precision)) : .oneDNN
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.activation = activation
        self.precision = precision
        self.engine = engine
        self.name = name
        self.backend = chosen
        if chosen == .avx2 {
            avx2 = AVX2GemmKernel(weights: weights, bias: bias, inputSize: inputSize, outputSize: outputSize, activation: activation)
            oneDNN = nil
        } else {
            oneDNN = try OneDNNColumnSlices(
                weights: UnsafeRawPointer(weights.baseAddress!), plainType: dnnl_f32, weightType: precision == .float32 ? dnnl_f32 : dnnl_bf16,
                sourceType: precision == .float32 ? dnnl_f32 : dnnl_bf16, destinationType: dnnl_f32, inputSize: inputSize,
                outputSize: outputSize, bias: bias?.baseAddress, attributes: try Self.makeAttributes(activation), engine: engine,
                slices: columnSlices ?? CPUThreading.threadCount)
            avx2 = nil
        }
    }

    /// Convenience: weights and bias from arrays (see the pointer initializer).
    public convenience init(
        weights: [Float], bias: [Float]?, inputSize: Int, outputSize: Int, activation: GemmActivation = .none,
        precision: GemmPrecision = .float32, engine: CPUEngine = .shared, name: String = "FusedMatMul",
        backend: GemmBackend? = nil, columnSlices: Int? = nil
    ) throws {
        // The pointer initializer cannot be delegated to from inside withUnsafeBufferPointer:
        // copy into buffers that outlive the call (construction only, not the hot path).
        let weightCopy = UnsafeMutableBufferPointer<Float>.allocate(capacity: weights.count)
        _ = weightCopy.initialize(from: weights)
        defer { weightCopy.deallocate() }
        let biasCopy = bias.map { values -> UnsafeMutableBufferPointer<Float> in
            let copy = UnsafeMutableBufferPointer<Float>.allocate(capacity: values.count)
            _ = copy.initialize(from: values)
            return copy
        }
        defer { biasCopy?.deallocate() }
        try self.init(weights: UnsafeBufferPointer(weightCopy), bias: biasCopy.map { UnsafeBufferPointer($0) }, inputSize: inputSize,
                      outputSize: outputSize, activation: activation, precision: precision, engine: engine, name: name,
                      backend: backend, columnSlices: columnSlices)
    }

    private static func validate(
        weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?, inputSize: Int, outputSize: Int,
        precision: GemmPrecision, name: String
    ) throws {
        func failure(_ message: String) -> KilnError {
            .invalidNode(node: name, opType: KilnOperators.fusedMatMul, message: message)
        }
        guard inputSize > 0, outputSize > 0 else { throw failure("inputSize and outputSize must be positive, got \(inputSize) and \(outputSize)") }
        guard weights.count == inputSize * outputSize else {
            throw failure("weights hold \(weights.count) values, [\(inputSize), \(outputSize)] needs \(inputSize * outputSize)")
        }
        if let bias, bias.count != outputSize { throw failure("bias holds \(bias.count) values, expected \(outputSize)") }
        if precision == .bfloat16 { try CPUFeatures.detected.requireBFloat16(for: "\(KilnOperators.fusedMatMul) '\(name)' in bf16") }
    }

    /// Bytes of the packed weights this kernel holds (what `W` costs in memory once loaded).
    public var packedWeightsSize: Int { avx2?.packedWeightsSize ?? oneDNN!.packedByteCount }

    /// The packed weights: ``AVX2GemmKernel``'s panels, or oneDNN's blocked layout for this CPU,
    /// one buffer per column slice.
    public var packedWeightBuffers: [UnsafeRawBufferPointer] {
        if let avx2 { return [avx2.packedWeightBytes] }
        return oneDNN!.slices.map { UnsafeRawBufferPointer(start: $0.packedWeights, count: $0.packedByteCount) }
    }

    /// Computes `Y = activation(A·W + bias)`.
    /// - Parameters:
    ///   - input: `A`, `rows × inputSize` fp32 values. For bf16 kernels they are rounded to bf16
    ///     into the stream's scratch first.
    ///   - rows: `M` (tokens), at least 1.
    ///   - output: `Y`, `rows × outputSize` fp32 values; must not overlap `input`.
    ///   - stream: the calling worker's stream.
    public func run(input: UnsafePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>, stream: CPUStream) throws {
        if let avx2 {
            avx2.run(input: input, rows: rows, output: output)
        } else if precision == .bfloat16 {
            let converted = stream.bfloat16Buffer(count: rows * inputSize)
            BFloat16Conversion.convert(input, to: converted, count: rows * inputSize)
            try execute(input: UnsafeRawPointer(converted), rows: rows, output: output, stream: stream)
        } else {
            try execute(input: UnsafeRawPointer(input), rows: rows, output: output, stream: stream)
        }
    }

    /// Computes `Y = activation(A·W + bias)` from bf16 activations (bf16 kernels only).
    /// - Parameters:
    ///   - input: `A`, `rows × inputSize` bf16 values (see ``BFloat16Conversion``).
    ///   - rows: `M`, at least 1.
    ///   - output: `Y`, `rows × outputSize` fp32 values.
    ///   - stream: the calling worker's stream.
    public func run(bfloat16Input input: UnsafePointer<UInt16>, rows: Int, output: UnsafeMutablePointer<Float>, stream: CPUStream) throws {
        guard precision == .bfloat16 else {
            throw KilnError.invalidNode(node: name, opType: KilnOperators.fusedMatMul, message: "bf16 input given to an fp32 GEMM")
        }
        try execute(input: UnsafeRawPointer(input), rows: rows, output: output, stream: stream)
    }

    /// The oneDNN implementation used for `rows` (creating the primitive if needed), e.g.
    /// `brg:avx512_core_bf16` or `gemm:jit`.
    public func implementationName(rows: Int) throws -> String {
        if avx2 != nil { return "kiln:avx2_sgemm" }
        guard rows > 0, let oneDNN else {
            throw KilnError.invalidNode(node: name, opType: KilnOperators.fusedMatMul, message: "rows must be positive, got \(rows)")
        }
        return try oneDNN.implementationName(rows: rows)
    }

    private func execute(input: UnsafeRawPointer, rows: Int, output: UnsafeMutablePointer<Float>, stream: CPUStream) throws {
        guard rows > 0, let oneDNN else { return }
        try oneDNN.run(source: input, rows: rows, destination: UnsafeMutableRawPointer(output))
    }

    private static func makeAttributes(_ activation: GemmActivation) throws -> dnnl_primitive_attr_t {
        var attributes: dnnl_primitive_attr_t?
        try OneDNN.check(dnnl_primitive_attr_create(&attributes), "create primitive attributes")
        let algorithm: dnnl_alg_kind_t?
        switch activation {
        case .none: algorithm = nil
        case .gelu: algorithm = dnnl_eltwise_gelu_erf
        case .geluTanh: algorithm = dnnl_eltwise_gelu_tanh
        case .relu: algorithm = dnnl_eltwise_relu
        case .tanh: algorithm = dnnl_eltwise_tanh
        }
        if let algorithm {
            var postOps: dnnl_post_ops_t?
            try OneDNN.check(dnnl_post_ops_create(&postOps), "create post-ops")
            defer { dnnl_post_ops_destroy(postOps) }
            try OneDNN.check(dnnl_post_ops_append_eltwise(postOps, 1, algorithm, 0, 0), "append the \(activation) post-op")
            try OneDNN.check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "set post-ops")
        }
        return attributes!
    }
}
