import KilnCore
import KilnKernels

/// One node of an ``Engine``, bound to the kernel that runs it.
///
/// Fast kernels take contiguous fp32 tensors of the shapes the Kiln operator defines; when a
/// call's tensors don't fit (another dtype, an unusual mask shape), the step runs the
/// reference kernel instead, so a fast path can only ever be an optimization, never a change
/// in results.
struct EngineStep: @unchecked Sendable {
    enum Kernel {
        case fusedMatMul(FusedMatMulKernel)
        /// An INT8 FusedMatMul (``Int8Binding``).
        case int8MatMul(Int8MatMulKernel)
        /// `packedQKV`: inputs 0-2 are all the `[B, S, 3H]` output of the fused QKV GEMM (see
        /// ``QKVSplitElision``), read in place with a row stride of `3H`.
        case attention(numHeads: Int, scale: Float?, nanToZero: Bool, packedQKV: Bool)
        /// A Split whose three outputs only feed one attention step that reads them packed:
        /// passes its input through (no copies).
        case qkvPassThrough
        case layerNorm(epsilon: Float)
        case skipLayerNorm(epsilon: Float)
        case gelu(GeluKernel.Approximation)
        case softmaxLastAxis
        /// `Gather` of rows from a constant fp32 table (embeddings).
        case gatherRows
        /// `Add` of two fp32 tensors where one repeats along the other (same shape, or a trailing block).
        case broadcastAdd
        case reference

        /// `K` of the packed copy of input 1 (`W`) the kernel keeps, or nil when it keeps none. With
        /// a packed copy the graph's `W` need not stay once every reader is bound (``Engine``).
        var packedWeightsInputSize: Int? {
            switch self {
            case .fusedMatMul(let gemm): gemm.inputSize
            case .int8MatMul(let gemm): gemm.inputSize
            default: nil
            }
        }
    }

    let node: Node
    let kernel: Kernel
    let reference: ReferenceKernel

    var isFast: Bool {
        if case .reference = kernel { return false }
        return true
    }

    static func bind(_ node: Node, graph: Graph) throws -> EngineStep {
        guard let reference = ReferenceKernels.kernel(for: node) else {
            throw KilnError.unsupportedOperator(
                opType: node.opType, domain: node.domain, node: node.name, opset: graph.opset,
                supported: ReferenceKernels.table.keys.sorted())
        }
        return EngineStep(node: node, kernel: try fastKernel(for: node, graph: graph), reference: reference)
    }

    private static func fastKernel(for node: Node, graph: Graph) throws -> Kernel {
        if node.domain == KilnOperators.domain {
            switch node.opType {
            case KilnOperators.fusedMatMul where node.isInt8MatMul: return try Int8Binding.kernel(for: node, graph: graph).map(Kernel.int8MatMul) ?? .reference
            case KilnOperators.fusedMatMul: return try fusedMatMul(node, graph: graph)
            case KilnOperators.attention:
                return .attention(
                    numHeads: Int(try node.int("num_heads", default: 0)), scale: try node.optionalFloat("scale"),
                    nanToZero: try node.int("nan_to_zero", default: 0) == 1, packedQKV: false)
            case KilnOperators.layerNorm: return .layerNorm(epsilon: try node.float("epsilon", default: 1e-5))
            case KilnOperators.skipLayerNorm: return .skipLayerNorm(epsilon: try node.float("epsilon", default: 1e-5))
            case KilnOperators.gelu:
                return .gelu(try node.string("approximate", default: "none") == "tanh" ? .tanh : .none)
            default: return .reference
            }
        }
        if node.domain.isEmpty && node.opType == "Gather", node.inputs.count == 2,
           let table = graph.initializers[node.inputs[0]], table.rank == 2, table.dtype == .float32 {
            return try node.int("axis", default: 0) == 0 ? .gatherRows : .reference
        }
        if node.domain.isEmpty && node.opType == "Add" { return .broadcastAdd }
        if node.domain.isEmpty && node.opType == "Softmax" && graph.opset >= 13 {
            let axis = try node.int("axis", default: -1)
            if axis == -1 { return .softmaxLastAxis }
        }
        return .reference
    }

    /// Packs the weights of a FusedMatMul whose `W` (and bias) are constants.
    private static func fusedMatMul(_ node: Node, graph: Graph) throws -> Kernel {
        guard node.inputs.count >= 2, let weights = graph.initializers[node.inputs[1]], weights.rank == 2,
            weights.dtype == .float32
        else { return .reference }
        let bias = node.inputs.count > 2 && !node.inputs[2].isEmpty ? graph.initializers[node.inputs[2]] : nil
        if node.inputs.count > 2 && !node.inputs[2].isEmpty && bias == nil { return .reference }
        guard let activation = GemmActivation(rawValue: try node.string("activation", default: "none")) else { return .reference }
        let precision: GemmPrecision = try node.string("precision", default: "fp32") == "bf16" ? .bfloat16 : .float32
        let weightValues = weights.floats
        let biasValues = bias?.floats
        let kernel = try weightValues.withUnsafeBufferPointer { weightBuffer in
            try withOptionalBuffer(biasValues) { biasBuffer in
                try FusedMatMulKernel(
                    weights: weightBuffer, bias: biasBuffer, inputSize: weights.shape[0], outputSize: weights.shape[1],
                    activation: activation, precision: precision, name: node.name)
            }
        }
        return .fusedMatMul(kernel)
    }

    /// A copy of this step with another kernel (bind-time rewrites such as ``QKVSplitElision``).
    func with(kernel: Kernel) -> EngineStep {
        EngineStep(node: node, kernel: kernel, reference: reference)
    }

    func run(_ inputs: [Tensor?], opset: Int, context: ExecutionContext) throws -> [Tensor] {
        let fast: [Tensor]?
        switch kernel {
        case .fusedMatMul(let gemm): fast = try FastKernels.fusedMatMul(gemm, inputs, context: context)
        case .int8MatMul(let gemm): fast = try Int8Binding.run(gemm, inputs, context: context)
        case .attention(let numHeads, let scale, let nanToZero, let packedQKV):
            fast = try FastKernels.attention(numHeads: numHeads, scale: scale, nanToZero: nanToZero, packedQKV: packedQKV, inputs, context: context)
            if fast == nil && packedQKV {
                return try reference(OpContext(node: node, inputs: try QKVSplitElision.unpack(inputs, opset: opset), opset: opset))
            }
        case .layerNorm(let epsilon): fast = try FastKernels.layerNorm(epsilon: epsilon, inputs, context: context)
        case .skipLayerNorm(let epsilon):
            fast = try FastKernels.skipLayerNorm(epsilon: epsilon, inputs, wantsSum: node.outputs.count > 1 && !node.outputs[1].isEmpty, context: context)
        case .gelu(let approximation): fast = try FastKernels.gelu(approximation, inputs, context: context)
        case .softmaxLastAxis: fast = try FastKernels.softmax(inputs, context: context)
        case .gatherRows: fast = try FastKernels.gatherRows(inputs, context: context)
        case .broadcastAdd: fast = try FastKernels.broadcastAdd(inputs, context: context)
        case .qkvPassThrough:
            guard let qkv = inputs[0] else { throw KilnError.invalidModel("node '\(node.name)' has no input") }
            return [qkv, qkv, qkv]
        case .reference: fast = nil
        }
        if let fast { return fast }
        if let inputSize = kernel.packedWeightsInputSize, inputs[1] == nil {
            // The weights were dropped after packing (Engine), so there is no reference fallback.
            let input = inputs[0].map { "\($0.dtype)\($0.shape)" } ?? "nothing"
            throw KilnError.invalidInput("FusedMatMul '\(node.name)' got \(input); its packed kernel takes float32 [..., \(inputSize)]")
        }
        return try reference(OpContext(node: node, inputs: inputs, opset: opset))
    }
}

extension Node {
    /// A float attribute that may be absent.
    func optionalFloat(_ name: String) throws -> Float? {
        attributes[name] == nil ? nil : try float(name, default: 0)
    }
}

func withOptionalBuffer<T>(_ values: [Float]?, _ body: (UnsafeBufferPointer<Float>?) throws -> T) rethrows -> T {
    guard let values else { return try body(nil) }
    return try values.withUnsafeBufferPointer { try body($0) }
}
