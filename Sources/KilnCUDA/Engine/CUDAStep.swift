// CUDAStep: one node of the optimized graph bound, at engine build, to what runs it on the GPU.
// Pattern: Kiln's fused operators (FusedMatMul with constant W, Attention, SkipLayerNorm,
// LayerNorm, Gelu) plus the embedding Gather, Split, the CLS-row Gather and Add/Sub/Mul get GPU
// kinds with their constants uploaded once (GEMM weights fp16, norm parameters fp32); everything
// else (shape arithmetic, the mask's Cast/Sub/Mul) stays on the host reference kernels. A GPU
// step whose run-time tensors don't fit falls back to the host, so results never change, only
// speed.
import CKilnCUDA
import KilnCore

/// Weights of a FusedMatMul, resident on the device.
final class GemmWeights {
    let weights: DeviceBuffer  // fp16 [K, N]
    let bias16: DeviceBuffer?
    let bias32: DeviceBuffer?
    let k: Int, n: Int
    let activation: String
    /// fp32 copy of the weights for GEMMs that produce fp32 head outputs (set at engine build).
    var weights32: DeviceBuffer?
    /// Wᵀ, fp16 [N, K], for the skinny GEMM (few rows); nil when it is off or the shape does not fit.
    var weightsT: DeviceBuffer?
    /// The fp32 weights, kept until the engine decides which GEMMs are heads.
    var hostWeights: [Float]?

    init(weights: DeviceBuffer, bias16: DeviceBuffer?, bias32: DeviceBuffer?, k: Int, n: Int, activation: String, hostWeights: [Float]) {
        (self.weights, self.bias16, self.bias32, self.k, self.n, self.activation) = (weights, bias16, bias32, k, n, activation)
        self.hostWeights = hostWeights
    }
}

/// Weights of an INT8 FusedMatMul (static activation scale), resident on the device.
/// cuBLASLt's int8 tensor-core GEMMs want the "TN" form (A transposed, see CuBLASLtGemm), so the
/// levels are stored transposed, `[N, K]` row-major; the per-channel dequantization factor
/// `input_scale · weight_scale[n]` is folded into one fp32 vector at build.
final class Int8GemmWeights {
    let levels: DeviceBuffer  // int8 [N, K]
    let multipliers: DeviceBuffer  // fp32 [N]
    let bias: DeviceBuffer?  // fp32 [N]
    let k: Int, n: Int
    let inputScale: Float
    /// 0 none, 1 erf GELU, 2 tanh GELU, 3 ReLU (kiln_dequant_s32's `act`).
    let activationCode: Int

    init(levels: DeviceBuffer, multipliers: DeviceBuffer, bias: DeviceBuffer?, k: Int, n: Int, inputScale: Float, activationCode: Int) {
        (self.levels, self.multipliers, self.bias, self.k, self.n) = (levels, multipliers, bias, k, n)
        (self.inputScale, self.activationCode) = (inputScale, activationCode)
    }

    static let activationCodes = ["none": 0, "gelu": 1, "gelu_tanh": 2, "relu": 3]

    /// `[K, N]` row-major levels as `[N, K]` row-major bytes.
    static func transposed(_ levels: [Int64], k: Int, n: Int) -> [Int8] {
        var out = [Int8](repeating: 0, count: k * n)
        for row in 0..<k {
            for column in 0..<n { out[column * k + row] = Int8(truncatingIfNeeded: levels[row * n + column]) }
        }
        return out
    }
}

/// Elementwise operators with a device kernel.
enum BinaryOperator: Int {
    case add = 0, sub = 1, mul = 2
}

/// What runs a node.
enum CUDAStepKind {
    case gemm(GemmWeights)
    case int8Gemm(Int8GemmWeights)
    case attention(heads: Int, scale: Float?, nanToZero: Bool)
    case layerNorm(epsilon: Float, gamma: DeviceBuffer, beta: DeviceBuffer?, bias: DeviceBuffer?, withSkip: Bool)
    case gelu(tanh: Bool)
    case embedding(table: DeviceBuffer, rows: Int, width: Int)
    case selectRow(axis: Int, index: Int)
    case split(sizes: [Int])
    case binary(BinaryOperator)
    case host
}

struct CUDAStep {
    let node: Node
    let kind: CUDAStepKind

    var isDevice: Bool {
        if case .host = kind { return false }
        return true
    }

    /// Binds `node`, uploading its constants on `stream` (and, with `transposedWeights`, Wᵀ of
    /// fp16 GEMMs the skinny kernel can take).
    static func bind(_ node: Node, graph: Graph, stream: kcu_stream, transposedWeights: Bool = false) throws -> CUDAStep {
        CUDAStep(node: node, kind: try kind(for: node, graph: graph, stream: stream, transposedWeights: transposedWeights) ?? .host)
    }

    private static func kind(for node: Node, graph: Graph, stream: kcu_stream, transposedWeights: Bool) throws -> CUDAStepKind? {
        let constants = graph.initializers
        func constant(_ index: Int) -> Tensor? {
            index < node.inputs.count && !node.inputs[index].isEmpty ? constants[node.inputs[index]] : nil
        }
        func present(_ index: Int) -> Bool { index < node.inputs.count && !node.inputs[index].isEmpty }
        if node.domain == KilnOperators.domain {
            switch node.opType {
            case KilnOperators.fusedMatMul where node.isInt8MatMul:
                return try int8Gemm(node, constant: constant, present: present, stream: stream)
            case KilnOperators.fusedMatMul:
                guard let w = constant(1), w.rank == 2, w.dtype == .float32 else { return nil }
                let bias = constant(2)
                if present(2) && (bias == nil || bias!.count != w.shape[1]) { return nil }
                let activation = try node.string("activation", default: "none")
                guard ["none", "gelu", "gelu_tanh", "relu"].contains(activation) else { return nil }
                if activation == "relu" && bias == nil { return nil }
                let weights = GemmWeights(
                    weights: try upload16(w.floats, stream: stream), bias16: try bias.map { try upload16($0.floats, stream: stream) },
                    bias32: try bias.map { try upload32($0.floats, stream: stream) }, k: w.shape[0], n: w.shape[1], activation: activation,
                    hostWeights: w.floats)
                let (k, n) = (w.shape[0], w.shape[1])
                if transposedWeights && SkinnyGemmWorkspace.fits(rows: 1, n: n, k: k, lda: k) {
                    weights.weightsT = try upload16(transposed(w.floats, rows: k, columns: n), stream: stream)
                }
                return .gemm(weights)
            case KilnOperators.attention:
                let heads = Int(try node.int("num_heads", default: 0))
                guard heads > 0 else { return nil }
                let scale: Float? = node.attributes["scale"] == nil ? nil : try node.float("scale", default: 0)
                return .attention(heads: heads, scale: scale, nanToZero: try node.int("nan_to_zero", default: 0) == 1)
            case KilnOperators.layerNorm, KilnOperators.skipLayerNorm:
                let skip = node.opType == KilnOperators.skipLayerNorm
                let first = skip ? 2 : 1
                guard let gamma = constant(first), gamma.dtype == .float32 else { return nil }
                if present(first + 1) && constant(first + 1) == nil { return nil }
                if skip && present(4) && constant(4) == nil { return nil }
                return .layerNorm(
                    epsilon: try node.float("epsilon", default: 1e-5), gamma: try upload32(gamma.floats, stream: stream),
                    beta: try constant(first + 1).map { try upload32($0.floats, stream: stream) },
                    bias: skip ? try constant(4).map { try upload32($0.floats, stream: stream) } : nil, withSkip: skip)
            case KilnOperators.gelu:
                return .gelu(tanh: try node.string("approximate", default: "none") == "tanh")
            default: return nil
            }
        }
        guard node.domain.isEmpty else { return nil }
        switch node.opType {
        case "Gather":
            let axis = Int(try node.int("axis", default: 0))
            if let table = constant(0), table.rank == 2, table.dtype == .float32, axis == 0, !present(1) || constants[node.inputs[1]] == nil {
                return .embedding(table: try upload16(table.floats, stream: stream), rows: table.shape[0], width: table.shape[1])
            }
            if constant(0) == nil, let index = constant(1), index.rank == 0, index.dtype.isInteger {
                return .selectRow(axis: axis, index: Int(index.ints[0]))
            }
            return nil
        case "Split":
            let axis = try node.int("axis", default: 0)
            guard axis == -1, let sizes = constant(1) else { return nil }
            return .split(sizes: sizes.ints.map(Int.init))
        case "Add": return .binary(.add)
        case "Sub": return .binary(.sub)
        case "Mul": return .binary(.mul)
        default: return nil
        }
    }

    /// An INT8 FusedMatMul with a static activation scale and int8 [K, N] levels whose K is a
    /// multiple of 4 (cuBLASLt's int8 alignment); dynamic-scale nodes stay on the host.
    private static func int8Gemm(_ node: Node, constant: (Int) -> Tensor?, present: (Int) -> Bool, stream: kcu_stream) throws -> CUDAStepKind? {
        guard let w = constant(1), w.rank == 2, w.dtype == .int8, let scales = constant(KilnOperators.weightScalesInput),
              scales.count == w.shape[1], node.attributes[KilnOperators.inputScaleAttribute] != nil else { return nil }
        let (k, n) = (w.shape[0], w.shape[1])
        guard k % 4 == 0, n % 4 == 0 else { return nil }
        let inputScale = try node.float(KilnOperators.inputScaleAttribute, default: 1)
        guard inputScale > 0, inputScale.isFinite else { return nil }
        let bias = constant(2)
        if present(2) && (bias == nil || bias!.count != n) { return nil }
        guard let code = Int8GemmWeights.activationCodes[try node.string("activation", default: "none")] else { return nil }
        let levels = try DeviceBuffer(byteCount: k * n)
        try Int8GemmWeights.transposed(w.ints, k: k, n: n).withUnsafeBytes { try levels.upload($0, stream: stream) }
        return .int8Gemm(Int8GemmWeights(
            levels: levels, multipliers: try upload32(scales.floats.map { $0 * inputScale }, stream: stream),
            bias: try bias.map { try upload32($0.floats, stream: stream) }, k: k, n: n, inputScale: inputScale, activationCode: code))
    }

    /// A row-major `[rows, columns]` matrix as row-major `[columns, rows]`.
    static func transposed(_ values: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        for row in 0..<rows {
            for column in 0..<columns { out[column * rows + row] = values[row * columns + column] }
        }
        return out
    }

    static func upload16(_ values: [Float], stream: kcu_stream) throws -> DeviceBuffer {
        let buffer = try DeviceBuffer(byteCount: values.count * 2)
        try HalfPrecision.encode(values).withUnsafeBytes { try buffer.upload($0, stream: stream) }
        return buffer
    }

    static func upload32(_ values: [Float], stream: kcu_stream) throws -> DeviceBuffer {
        let buffer = try DeviceBuffer(byteCount: values.count * 4)
        try values.withUnsafeBytes { try buffer.upload($0, stream: stream) }
        return buffer
    }
}
