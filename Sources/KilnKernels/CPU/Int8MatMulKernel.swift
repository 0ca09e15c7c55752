import CDNNL
import Foundation
import KilnCore

/// `Y = activation(dequant(quant(A)·Wq) + bias)` on oneDNN's int8 matmul: the CPU engine's
/// ``KilnOperators/fusedMatMul`` with `precision = "int8"`.
///
/// - Weights: s8, per-output-channel scales (``Int8Quantization/weightScales(_:inputSize:outputSize:)``),
///   packed once into oneDNN's preferred layout.
/// - Activations: s8 with one scale per call: fixed (static, from calibration) or the input's
///   max-abs / 127 computed on every call (dynamic).
/// - Epilogue fused into the GEMM: output scales `s_a·s_w[n]` (int32 → fp32 dequantization),
///   then bias and the activation as post-ops, so the fp32 result is written once.
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

    private let weightsMemory: dnnl_memory_t
    private let weightsDescriptor: dnnl_memory_desc_t
    private let packedWeights: UnsafeMutableRawPointer
    private let biasStorage: UnsafeMutablePointer<Float>?
    private let biasMemory: dnnl_memory_t?
    private let staticScales: UnsafeMutablePointer<Float>
    private let attributes: dnnl_primitive_attr_t
    private let cache = MatMulPrimitiveCache()

    /// Builds the kernel from already-quantized weights (what a plan stores).
    /// - Parameters:
    ///   - quantizedWeights: `Wq`, `inputSize × outputSize` levels, row-major.
    ///   - weightScales: `outputSize` scales (`W ≈ Wq[k, n]·weightScales[n]`).
    ///   - bias: `outputSize` floats or nil.
    ///   - inputScale: the static activation scale, or nil for dynamic.
    /// - Throws: ``KilnError`` on mismatched sizes or a oneDNN failure.
    public init(
        quantizedWeights: [Int8], weightScales: [Float], bias: [Float]?, inputSize: Int, outputSize: Int,
        activation: GemmActivation = .none, inputScale: Float? = nil, engine: CPUEngine = .shared, name: String = "FusedMatMul"
    ) throws {
        func failure(_ message: String) -> KilnError {
            .invalidNode(node: name, opType: KilnOperators.fusedMatMul, message: message)
        }
        guard inputSize > 0, outputSize > 0, quantizedWeights.count == inputSize * outputSize, weightScales.count == outputSize else {
            throw failure("int8 weights [\(inputSize), \(outputSize)] need \(inputSize * outputSize) levels and \(outputSize) scales, got \(quantizedWeights.count) and \(weightScales.count)")
        }
        if let bias, bias.count != outputSize { throw failure("bias holds \(bias.count) values, expected \(outputSize)") }
        if let inputScale, !(inputScale > 0 && inputScale.isFinite) { throw failure("activation scale must be positive and finite, got \(inputScale)") }
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.activation = activation
        self.inputScale = inputScale
        self.weightScales = weightScales
        self.name = name
        self.engine = engine

        attributes = try Int8MatMulKernel.makeAttributes(activation, hasBias: bias != nil, outputSize: outputSize)
        let anyWeights = try OneDNN.memoryDescriptor([inputSize, outputSize], dnnl_s8, dnnl_format_tag_any)
        let probe = try Int8MatMulKernel.makePrimitiveDescriptor(
            rows: 128, inputSize: inputSize, outputSize: outputSize, weights: anyWeights, attributes: attributes, engine: engine)
        defer { dnnl_primitive_desc_destroy(probe) }
        var packed = dnnl_primitive_desc_query_md(probe, dnnl_query_weights_md, 0)!.pointee
        weightsDescriptor = packed
        let byteCount = dnnl_memory_desc_get_size(&packed)
        packedWeights = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 64), alignment: 64)
        var weightsHandle: dnnl_memory_t?
        try OneDNN.check(dnnl_memory_create(&weightsHandle, &packed, engine.handle, packedWeights), "wrap packed int8 weights")
        let packedMemory = weightsHandle!
        weightsMemory = packedMemory
        try quantizedWeights.withUnsafeBufferPointer { plain in
            try OneDNN.packWeights(UnsafeRawPointer(plain.baseAddress!), rows: inputSize, columns: outputSize, dataType: dnnl_s8, into: packedMemory, descriptor: packed, engine: engine)
        }
        if let bias {
            let storage = UnsafeMutablePointer<Float>.allocate(capacity: outputSize)
            storage.update(from: bias, count: outputSize)
            var descriptor = try OneDNN.memoryDescriptor([1, outputSize], dnnl_f32, dnnl_ab)
            var handle: dnnl_memory_t?
            try OneDNN.check(dnnl_memory_create(&handle, &descriptor, engine.handle, storage), "wrap the bias")
            biasStorage = storage
            biasMemory = handle
        } else {
            biasStorage = nil
            biasMemory = nil
        }
        staticScales = .allocate(capacity: outputSize)
        for n in 0..<outputSize { staticScales[n] = (inputScale ?? 1) * weightScales[n] }
    }

    /// Quantizes fp32 weights per output channel and builds the kernel (for tests and tools;
    /// plans store the levels and use the other initializer).
    public convenience init(
        weights: [Float], bias: [Float]?, inputSize: Int, outputSize: Int, activation: GemmActivation = .none,
        inputScale: Float? = nil, engine: CPUEngine = .shared, name: String = "FusedMatMul"
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
            activation: activation, inputScale: inputScale, engine: engine, name: name)
    }

    deinit {
        cache.destroyAll()
        dnnl_memory_destroy(weightsMemory)
        if let biasMemory { dnnl_memory_destroy(biasMemory) }
        biasStorage?.deallocate()
        staticScales.deallocate()
        packedWeights.deallocate()
        dnnl_primitive_attr_destroy(attributes)
    }

    /// The oneDNN implementation picked for `rows` (e.g. `gemm:jit` on AVX2).
    public func implementationName(rows: Int) throws -> String { try primitive(rows: rows).implementation }

    /// Computes `Y` for `rows` rows of fp32 `input`; `output` gets `rows × outputSize` fp32 values.
    public func run(input: UnsafePointer<Float>, rows: Int, output: UnsafeMutablePointer<Float>, stream: CPUStream) throws {
        guard rows > 0 else { return }
        let count = rows * inputSize
        let scale = inputScale ?? Int8Quantization.activationScale(absMax: Int8Quantization.absMax(input, count: count))
        try withUnsafeTemporaryAllocation(of: Int8.self, capacity: count) { levels in
            Int8Quantization.quantize(input, count: count, scale: scale, into: levels.baseAddress!)
            if inputScale != nil {
                try execute(levels.baseAddress!, rows: rows, scales: staticScales, output: output, stream: stream)
            } else {
                try withUnsafeTemporaryAllocation(of: Float.self, capacity: outputSize) { scales in
                    for n in 0..<outputSize { scales[n] = scale * weightScales[n] }
                    try execute(levels.baseAddress!, rows: rows, scales: scales.baseAddress!, output: output, stream: stream)
                }
            }
        }
    }

    private func execute(_ input: UnsafeMutablePointer<Int8>, rows: Int, scales: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>, stream: CPUStream) throws {
        let entry = try primitive(rows: rows)
        var sourceDescriptor = entry.sourceDescriptor
        var destinationDescriptor = entry.destinationDescriptor
        var scalesDescriptor = try OneDNN.memoryDescriptor([outputSize], dnnl_f32, dnnl_a)
        var source: dnnl_memory_t?, destination: dnnl_memory_t?, scaleMemory: dnnl_memory_t?
        try OneDNN.check(dnnl_memory_create(&source, &sourceDescriptor, engine.handle, input), "wrap the int8 input")
        defer { dnnl_memory_destroy(source) }
        try OneDNN.check(dnnl_memory_create(&destination, &destinationDescriptor, engine.handle, output), "wrap the output")
        defer { dnnl_memory_destroy(destination) }
        try OneDNN.check(dnnl_memory_create(&scaleMemory, &scalesDescriptor, engine.handle, scales), "wrap the output scales")
        defer { dnnl_memory_destroy(scaleMemory) }
        CPUThreading.applyOpenMPThreadCount()
        var arguments = [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: source), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: weightsMemory),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: destination),
            dnnl_exec_arg_t(arg: DNNL_ARG_ATTR_OUTPUT_SCALES, memory: scaleMemory),
        ]
        // The bias is a binary-add post-op (applied after the output scales, in fp32).
        if let biasMemory { arguments.append(dnnl_exec_arg_t(arg: Int32(DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE) | DNNL_ARG_SRC_1, memory: biasMemory)) }
        try arguments.withUnsafeBufferPointer { buffer in
            try OneDNN.check(dnnl_primitive_execute(entry.primitive, stream.handle, Int32(buffer.count), buffer.baseAddress), "execute an int8 matmul")
        }
        try OneDNN.check(dnnl_stream_wait(stream.handle), "wait for a stream")
    }

    private func primitive(rows: Int) throws -> MatMulPrimitiveCache.Entry {
        try cache.entry(rows: rows) {
            let descriptor = try Int8MatMulKernel.makePrimitiveDescriptor(
                rows: rows, inputSize: inputSize, outputSize: outputSize, weights: weightsDescriptor, attributes: attributes, engine: engine)
            defer { dnnl_primitive_desc_destroy(descriptor) }
            var primitive: dnnl_primitive_t?
            try OneDNN.check(dnnl_primitive_create(&primitive, descriptor), "create an int8 matmul primitive")
            return MatMulPrimitiveCache.Entry(
                primitive: primitive!,
                sourceDescriptor: dnnl_primitive_desc_query_md(descriptor, dnnl_query_src_md, 0)!.pointee,
                destinationDescriptor: dnnl_primitive_desc_query_md(descriptor, dnnl_query_dst_md, 0)!.pointee,
                implementation: OneDNN.implementationName(descriptor))
        }
    }

    /// oneDNN's "value given at run time" marker (`DNNL_RUNTIME_F32_VAL`, a NaN payload C macros hide from Swift).
    static let runtimeFloat = Float(bitPattern: 0x7fc0_00d0)

    private static func makeAttributes(_ activation: GemmActivation, hasBias: Bool, outputSize: Int) throws -> dnnl_primitive_attr_t {
        var attributes: dnnl_primitive_attr_t?
        try OneDNN.check(dnnl_primitive_attr_create(&attributes), "create primitive attributes")
        var marker = runtimeFloat
        // Per-column (mask bit 1 = N) scales supplied at run time: s_a·s_w[n].
        try OneDNN.check(dnnl_primitive_attr_set_output_scales(attributes, 1, 1 << 1, &marker), "set run-time output scales")
        var postOps: dnnl_post_ops_t?
        try OneDNN.check(dnnl_post_ops_create(&postOps), "create post-ops")
        defer { dnnl_post_ops_destroy(postOps) }
        if hasBias {
            var biasDescriptor = try OneDNN.memoryDescriptor([1, outputSize], dnnl_f32, dnnl_ab)
            try OneDNN.check(dnnl_post_ops_append_binary(postOps, dnnl_binary_add, &biasDescriptor), "append the bias post-op")
        }
        let algorithm: dnnl_alg_kind_t?
        switch activation {
        case .none: algorithm = nil
        case .gelu: algorithm = dnnl_eltwise_gelu_erf
        case .geluTanh: algorithm = dnnl_eltwise_gelu_tanh
        case .relu: algorithm = dnnl_eltwise_relu
        case .tanh: algorithm = dnnl_eltwise_tanh
        }
        if let algorithm { try OneDNN.check(dnnl_post_ops_append_eltwise(postOps, 1, algorithm, 0, 0), "append the \(activation) post-op") }
        try OneDNN.check(dnnl_primitive_attr_set_post_ops(attributes, postOps), "set post-ops")
        return attributes!
    }

    private static func makePrimitiveDescriptor(
        rows: Int, inputSize: Int, outputSize: Int, weights: dnnl_memory_desc_t, attributes: dnnl_primitive_attr_t, engine: CPUEngine
    ) throws -> dnnl_primitive_desc_t {
        var source = try OneDNN.memoryDescriptor([rows, inputSize], dnnl_s8, dnnl_ab)
        var weights = weights
        var destination = try OneDNN.memoryDescriptor([rows, outputSize], dnnl_f32, dnnl_ab)
        var operation = dnnl_matmul_desc_t()
        try OneDNN.check(dnnl_matmul_desc_init(&operation, &source, &weights, nil, &destination), "describe an int8 matmul")
        var descriptor: dnnl_primitive_desc_t?
        try OneDNN.check(
            dnnl_primitive_desc_create(&descriptor, &operation, attributes, engine.handle, nil),
            "create an int8 matmul [\(rows), \(inputSize)]×[\(inputSize), \(outputSize)]")
        return descriptor!
    }
}
