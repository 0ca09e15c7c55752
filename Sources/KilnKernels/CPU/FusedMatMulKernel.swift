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
    /// oneDNN's matmul primitive (`gemm:jit` for fp32 on AVX2 CPUs; the only choice for bf16).
    case oneDNN = "onednn"
    /// Kiln's AVX2+FMA GEMM (``AVX2GemmKernel``): fp32 only, CPUs with AVX2 and FMA.
    case avx2

    /// The backend for `precision` on this CPU: `.avx2` for fp32 when the CPU has AVX2+FMA,
    /// else `.oneDNN`. `KILN_GEMM=onednn` in the environment forces oneDNN (A/B benchmarks,
    /// escape hatch); `KILN_GEMM=avx2` is accepted and means the default.
    public static func preferred(for precision: GemmPrecision) -> GemmBackend {
        guard precision == .float32, AVX2GemmKernel.isSupported else { return .oneDNN }
        return environmentChoice ?? .avx2
    }

    /// `KILN_GEMM`, read once.
    static let environmentChoice: GemmBackend? = {
        guard let raw = getenv("KILN_GEMM") else { return nil }
        return GemmBackend(rawValue: String(cString: raw).lowercased())
    }()
}

/// `Y = activation(A·W + bias)` with `W` packed once (at construction): the CPU engine's
/// ``KilnOperators/fusedMatMul``. fp32 on AVX2+FMA CPUs runs on ``AVX2GemmKernel``
/// (``GemmBackend/preferred(for:)``); bf16, and fp32 elsewhere or with `KILN_GEMM=onednn`, on
/// oneDNN's matmul primitive with `W` in the blocked layout oneDNN prefers for this CPU.
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
    private let oneDNN: OneDNNWeights?
    private let avx2: AVX2GemmKernel?
    private let cache = MatMulPrimitiveCache()

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
    /// - Throws: ``KilnError`` for mismatched sizes, bf16 on a CPU without AVX512_BF16, or a
    ///   oneDNN failure.
    public init(
        weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?, inputSize: Int, outputSize: Int,
        activation: GemmActivation = .none, precision: GemmPrecision = .float32,
        engine: CPUEngine = .shared, name: String = "FusedMatMul", backend: GemmBackend? = nil
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
            oneDNN = try OneDNNWeights(weights: weights, bias: bias, inputSize: inputSize, outputSize: outputSize,
                                       activation: activation, precision: precision, engine: engine)
            avx2 = nil
        }
    }

    /// Convenience: weights and bias from arrays (see the pointer initializer).
    public convenience init(
        weights: [Float], bias: [Float]?, inputSize: Int, outputSize: Int, activation: GemmActivation = .none,
        precision: GemmPrecision = .float32, engine: CPUEngine = .shared, name: String = "FusedMatMul",
        backend: GemmBackend? = nil
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
                      backend: backend)
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

    /// The oneDNN objects an oneDNN-backed kernel owns: packed weights, bias and post-op attributes.
    private final class OneDNNWeights {
        let weightsDescriptor: dnnl_memory_desc_t
        let packedWeights: UnsafeMutableRawPointer
        let packedWeightsByteCount: Int
        let weightsMemory: dnnl_memory_t
        let biasMemory: dnnl_memory_t?
        let biasStorage: UnsafeMutablePointer<Float>?
        let attributes: dnnl_primitive_attr_t

        init(
            weights: UnsafeBufferPointer<Float>, bias: UnsafeBufferPointer<Float>?, inputSize: Int, outputSize: Int,
            activation: GemmActivation, precision: GemmPrecision, engine: CPUEngine
        ) throws {
            attributes = try FusedMatMulKernel.makeAttributes(activation)
            // Ask oneDNN for its preferred weight layout ("any") for a typical row count; the
            // layout depends on K, N, the types and the ISA, and every row count reuses it.
            let weightType = precision == .float32 ? dnnl_f32 : dnnl_bf16
            let anyWeights = try OneDNN.memoryDescriptor([inputSize, outputSize], weightType, dnnl_format_tag_any)
            let probe = try FusedMatMulKernel.makePrimitiveDescriptor(
                rows: 128, inputSize: inputSize, outputSize: outputSize, precision: precision, weights: anyWeights,
                hasBias: bias != nil, attributes: attributes, engine: engine)
            defer { dnnl_primitive_desc_destroy(probe) }
            var packed = dnnl_primitive_desc_query_md(probe, dnnl_query_weights_md, 0)!.pointee
            weightsDescriptor = packed
            packedWeightsByteCount = dnnl_memory_desc_get_size(&packed)
            packedWeights = UnsafeMutableRawPointer.allocate(byteCount: max(packedWeightsByteCount, 64), alignment: 64)
            var weightsHandle: dnnl_memory_t?
            try OneDNN.check(dnnl_memory_create(&weightsHandle, &packed, engine.handle, packedWeights), "wrap packed weights")
            weightsMemory = weightsHandle!
            try OneDNN.packWeights(UnsafeRawPointer(weights.baseAddress!), rows: inputSize, columns: outputSize, dataType: dnnl_f32, into: weightsMemory, descriptor: packed, engine: engine)

            if let bias {
                let storage = UnsafeMutablePointer<Float>.allocate(capacity: outputSize)
                storage.update(from: bias.baseAddress!, count: outputSize)
                var descriptor = try OneDNN.memoryDescriptor([1, outputSize], dnnl_f32, dnnl_ab)
                var handle: dnnl_memory_t?
                try OneDNN.check(dnnl_memory_create(&handle, &descriptor, engine.handle, storage), "wrap the bias")
                biasStorage = storage
                biasMemory = handle
            } else {
                biasStorage = nil
                biasMemory = nil
            }
        }

        deinit {
            dnnl_memory_destroy(weightsMemory)
            if let biasMemory { dnnl_memory_destroy(biasMemory) }
            biasStorage?.deallocate()
            packedWeights.deallocate()
            dnnl_primitive_attr_destroy(attributes)
        }
    }

    deinit {
        cache.destroyAll()
    }

    /// Bytes of the packed weights this kernel holds (what `W` costs in memory once loaded).
    public var packedWeightsSize: Int { avx2?.packedWeightsSize ?? oneDNN!.packedWeightsByteCount }

    /// The packed weights: oneDNN's blocked layout for this CPU, or ``AVX2GemmKernel``'s panels.
    public var packedWeightBytes: UnsafeRawBufferPointer {
        if let avx2 { return avx2.packedWeightBytes }
        return UnsafeRawBufferPointer(start: oneDNN!.packedWeights, count: oneDNN!.packedWeightsByteCount)
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
        return try primitive(rows: rows).implementation
    }

    private func execute(input: UnsafeRawPointer, rows: Int, output: UnsafeMutablePointer<Float>, stream: CPUStream) throws {
        guard rows > 0, let oneDNN else { return }
        let entry = try primitive(rows: rows)
        var sourceDescriptor = entry.sourceDescriptor
        var destinationDescriptor = entry.destinationDescriptor
        var source: dnnl_memory_t?
        var destination: dnnl_memory_t?
        try OneDNN.check(dnnl_memory_create(&source, &sourceDescriptor, engine.handle, UnsafeMutableRawPointer(mutating: input)), "wrap the input")
        defer { dnnl_memory_destroy(source) }
        try OneDNN.check(dnnl_memory_create(&destination, &destinationDescriptor, engine.handle, output), "wrap the output")
        defer { dnnl_memory_destroy(destination) }
        CPUThreading.applyOpenMPThreadCount()
        try OneDNN.execute(
            entry.primitive, stream: stream, (DNNL_ARG_SRC, source!), (DNNL_ARG_WEIGHTS, oneDNN.weightsMemory),
            (DNNL_ARG_DST, destination!), oneDNN.biasMemory.map { (DNNL_ARG_BIAS, $0) })
    }

    private func primitive(rows: Int) throws -> MatMulPrimitiveCache.Entry {
        guard rows > 0 else {
            throw KilnError.invalidNode(node: name, opType: KilnOperators.fusedMatMul, message: "rows must be positive, got \(rows)")
        }
        guard let oneDNN else {
            throw KilnError.invalidNode(node: name, opType: KilnOperators.fusedMatMul, message: "no oneDNN primitive: this GEMM runs on \(backend.rawValue)")
        }
        return try cache.entry(rows: rows) {
            let descriptor = try FusedMatMulKernel.makePrimitiveDescriptor(
                rows: rows, inputSize: inputSize, outputSize: outputSize, precision: precision, weights: oneDNN.weightsDescriptor,
                hasBias: oneDNN.biasMemory != nil, attributes: oneDNN.attributes, engine: engine)
            defer { dnnl_primitive_desc_destroy(descriptor) }
            var primitive: dnnl_primitive_t?
            try OneDNN.check(dnnl_primitive_create(&primitive, descriptor), "create a matmul primitive")
            return MatMulPrimitiveCache.Entry(
                primitive: primitive!,
                sourceDescriptor: dnnl_primitive_desc_query_md(descriptor, dnnl_query_src_md, 0)!.pointee,
                destinationDescriptor: dnnl_primitive_desc_query_md(descriptor, dnnl_query_dst_md, 0)!.pointee,
                implementation: OneDNN.implementationName(descriptor))
        }
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

    private static func makePrimitiveDescriptor(
        rows: Int, inputSize: Int, outputSize: Int, precision: GemmPrecision, weights: dnnl_memory_desc_t,
        hasBias: Bool, attributes: dnnl_primitive_attr_t, engine: CPUEngine
    ) throws -> dnnl_primitive_desc_t {
        let sourceType = precision == .float32 ? dnnl_f32 : dnnl_bf16
        var source = try OneDNN.memoryDescriptor([rows, inputSize], sourceType, dnnl_ab)
        var weights = weights
        var bias = try OneDNN.memoryDescriptor([1, outputSize], dnnl_f32, dnnl_ab)
        var destination = try OneDNN.memoryDescriptor([rows, outputSize], dnnl_f32, dnnl_ab)
        var operation = dnnl_matmul_desc_t()
        if hasBias {
            try OneDNN.check(dnnl_matmul_desc_init(&operation, &source, &weights, &bias, &destination), "describe a matmul")
        } else {
            try OneDNN.check(dnnl_matmul_desc_init(&operation, &source, &weights, nil, &destination), "describe a matmul")
        }
        var descriptor: dnnl_primitive_desc_t?
        try OneDNN.check(
            dnnl_primitive_desc_create(&descriptor, &operation, attributes, engine.handle, nil),
            "create a \(precision) matmul [\(rows), \(inputSize)]×[\(inputSize), \(outputSize)]")
        return descriptor!
    }
}
