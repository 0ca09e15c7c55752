import KilnCore

// INT8 quantization
//
// Pattern: every kiln::FusedMatMul whose W is a constant fp32 [K, N] matrix, except the NLU
// output heads (unless `quantizeHeads`), nodes named in `keepInFP32`, and — for static
// quantization — nodes whose input has no calibrated scale.
// Replacement: FusedMatMul(A, Wq, bias?, weightScales) with precision = "int8" (the form
// documented in KilnOperators+Int8.swift): W quantized per output channel to 7-bit levels,
// `input_scale` set from the calibration table (static) or left out (dynamic).
//
// Why it is safe: it is not exact — it trades accuracy for speed on purpose, only when the
// user asks for int8. The loss is bounded per GEMM by the level spacing (scale/2 per element),
// measured on the task by `kiln verify`, and the sensitive layers can be kept fp32
// (`keepInFP32`, chosen by the mixed-precision search). Attention, LayerNorm, softmax and
// everything else stay fp32.

/// Quantizes the encoder's GEMMs to INT8.
public struct QuantizationPass: Pass {
    public let name = "int8-quantization"
    /// Static activation scales by the name of the GEMM input value; nil = dynamic quantization.
    public let activationScales: [String: Float]?
    /// Node names that stay fp32.
    public let keepInFP32: Set<String>
    /// Whether the output heads (intent/slot projections) are quantized too.
    public let quantizeHeads: Bool

    public init(activationScales: [String: Float]?, keepInFP32: Set<String> = [], quantizeHeads: Bool = false) {
        self.activationScales = activationScales
        self.keepInFP32 = keepInFP32
        self.quantizeHeads = quantizeHeads
    }

    public func run(_ graph: inout Graph) throws -> PassReport {
        let heads = QuantizationPass.outputHeads(of: graph)
        var quantized = 0, kept = 0, uncalibrated = 0
        var notes: [String] = []
        for position in graph.nodes.indices where graph.nodes[position].isKiln(KilnOperators.fusedMatMul) {
            let node = graph.nodes[position]
            guard QuantizationPass.quantizableWeights(node, graph: graph) != nil else { continue }
            if keepInFP32.contains(node.name) || (!quantizeHeads && heads.contains(node.name)) {
                kept += 1
                continue
            }
            var inputScale: Float?
            if let activationScales {
                guard let scale = activationScales[node.inputs[0]], scale > 0, scale.isFinite else {
                    uncalibrated += 1
                    notes.append("\(node.name): no calibrated scale for '\(node.inputs[0])', kept fp32")
                    continue
                }
                inputScale = scale
            }
            try quantize(position, inputScale: inputScale, graph: &graph)
            quantized += 1
        }
        return PassReport(pass: name, changes: [
            .init("quantized", quantized, "GEMMs to int8"), .init("kept", kept, "GEMMs fp32"),
            .init("skipped", uncalibrated, "uncalibrated GEMMs"),
        ], notes: notes)
    }

    private func quantize(_ position: Int, inputScale: Float?, graph: inout Graph) throws {
        var node = graph.nodes[position]
        let weights = QuantizationPass.quantizableWeights(node, graph: graph)!
        let (inputSize, outputSize) = (weights.shape[0], weights.shape[1])
        let values = weights.floats
        let (levels, scales) = values.withUnsafeBufferPointer { buffer in
            let scales = Int8Quantization.weightScales(buffer, inputSize: inputSize, outputSize: outputSize)
            return (Int8Quantization.quantizeWeights(buffer, scales: scales, inputSize: inputSize, outputSize: outputSize), scales)
        }
        let levelsName = "\(node.inputs[1])::int8", scalesName = "\(node.inputs[1])::scale"
        graph.initializers[levelsName] = try Tensor(ints: levels.map { Int64($0) }, shape: [inputSize, outputSize], dtype: .int8)
        graph.initializers[scalesName] = try Tensor(floats: scales, shape: [outputSize])
        let original = node.inputs[1]
        let bias = node.inputs.count > 2 ? node.inputs[2] : ""
        node.inputs = [node.inputs[0], levelsName, bias, scalesName]
        node.attributes[KilnOperators.precisionAttribute] = .string(KilnOperators.int8Precision)
        if let inputScale { node.attributes[KilnOperators.inputScaleAttribute] = .float(inputScale) }
        graph.nodes[position] = node
        if !graph.nodes.contains(where: { $0.inputs.contains(original) }) && !graph.outputs.contains(where: { $0.name == original }) {
            graph.initializers[original] = nil
        }
    }

    /// The fp32 `[K, N]` constant W of a FusedMatMul that can be quantized, or nil.
    public static func quantizableWeights(_ node: Node, graph: Graph) -> Tensor? {
        guard node.isKiln(KilnOperators.fusedMatMul), !node.isInt8MatMul, node.inputs.count >= 2,
            let weights = graph.initializers[node.inputs[1]], weights.rank == 2, weights.dtype == .float32
        else { return nil }
        return weights
    }

    /// The GEMMs an int8 build could quantize, in graph order (what calibration observes and
    /// what the sensitivity search ranks).
    public static func candidates(in graph: Graph) -> [Node] {
        graph.nodes.filter { quantizableWeights($0, graph: graph) != nil }
    }

    private static let barriers: Set<String> = [
        KilnOperators.fusedMatMul, KilnOperators.attention, KilnOperators.layerNorm, KilnOperators.skipLayerNorm, "MatMul", "Gemm",
        "LayerNormalization",
    ]

    /// Names of the FusedMatMuls from which a graph output is reachable through cheap nodes
    /// only: the intent and slot projections (and a pooler feeding only the intent head is not one).
    public static func outputHeads(of graph: Graph) -> Set<String> {
        let index = GraphIndex(graph)
        var heads = Set<String>()
        for node in graph.nodes where node.isKiln(KilnOperators.fusedMatMul) {
            var frontier = node.outputs
            var seen = Set(frontier)
            search: while let value = frontier.popLast() {
                if index.graphOutputs.contains(value) {
                    heads.insert(node.name)
                    break search
                }
                for reader in index.readers(of: value) where !barriers.contains(reader.opType) {
                    for output in reader.outputs where !output.isEmpty && seen.insert(output).inserted { frontier.append(output) }
                }
            }
        }
        return heads
    }
}
