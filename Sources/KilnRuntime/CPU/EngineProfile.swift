import Foundation
import KilnCore

/// Where an ``Engine`` call's time goes, step by step (`kiln bench-engine --profile`, or
/// `KILN_PROFILE=1`): the padded path only (the one dense fixed-shape latency is measured on).
public struct StepTiming: Sendable {
    /// The node's name and operator (`domain:op` for Kiln operators).
    public let node: String
    public let op: String
    /// The kernel the step is bound to (`fusedMatMul`, `layerNorm`, ... or `reference`).
    public let kernel: String
    /// Mean wall time per call, milliseconds.
    public var milliseconds: Double
}

extension Engine {
    /// Mean per-step wall time over `runs` calls of `inputs` on the padded path, after one
    /// warm-up call, in execution order.
    public func profile(_ inputs: [String: Tensor], runs: Int) throws -> [StepTiming] {
        try InputValidator.validate(inputs, against: graph.inputs)
        var timings = steps.map { step in
            StepTiming(
                node: step.node.name, op: step.node.domain.isEmpty ? step.node.opType : "\(step.node.domain):\(step.node.opType)",
                kernel: Self.kernelName(step.kernel), milliseconds: 0)
        }
        let opset = graph.opset
        try contexts.withContext { context in
            for run in 0...max(runs, 1) {
                _ = try program.run(inputs) { position, operands in
                    let start = ContinuousClock.now
                    defer {
                        if run > 0 {
                            let elapsed = ContinuousClock.now - start
                            timings[position].milliseconds += Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000
                        }
                    }
                    return try steps[position].run(operands, opset: opset, context: context)
                } release: { context.buffers.give($0) }
            }
        }
        let count = Double(max(runs, 1))
        for index in timings.indices { timings[index].milliseconds /= count }
        return timings
    }

    static func kernelName(_ kernel: EngineStep.Kernel) -> String {
        switch kernel {
        case .fusedMatMul: "fusedMatMul"
        case .int8MatMul: "int8MatMul"
        case .attention(_, _, _, let packedQKV): packedQKV ? "attention(packed QKV)" : "attention"
        case .qkvPassThrough: "qkvPassThrough"
        case .layerNorm: "layerNorm"
        case .skipLayerNorm: "skipLayerNorm"
        case .gelu: "gelu"
        case .softmaxLastAxis: "softmax"
        case .gatherRows: "gatherRows"
        case .broadcastAdd: "broadcastAdd"
        case .reference: "reference"
        }
    }
}
