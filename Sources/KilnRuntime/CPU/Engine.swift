import Foundation
import KilnCore
import KilnKernels

/// A compiled model ready to run on the CPU: the optimized graph of a plan, with its fused
/// operators bound to Kiln's fast kernels (oneDNN GEMMs with packed weights, SIMD layer norm,
/// GELU, softmax and attention) and everything else to the reference kernels.
///
/// Immutable after construction and safe to share between threads; each concurrent ``run(_:)``
/// takes its own ``ExecutionContext``.
public final class Engine: InferenceEngine, @unchecked Sendable {
    /// The optimized graph, without the fp32 weights that only packed GEMMs read (those live
    /// once, packed, in their ``FusedMatMulKernel``s: keeping both doubled the engine's memory).
    public let graph: Graph
    /// How many nodes run on a fast kernel vs the reference kernels, by op type.
    public let kernelSummary: [String: String]
    private let steps: [EngineStep]
    private let program: EngineProgram
    private let contexts = ExecutionContextPool()
    /// How to run right-padded batches padding-free, when the graph qualifies (``PackingPlan``).
    private let packing: PackingPlan?
    /// Whether ``run(_:)`` packs ragged batches (`KILN_PACKED=0` or `packedExecution: false` turn it off).
    public let usesPackedExecution: Bool
    /// One line for logs and `kiln inspect`: whether padded batches run padding-free, and why not.
    public let packingDescription: String

    /// Binds `graph` to kernels: packs every FusedMatMul's weights (in bf16 where the node's
    /// `precision` attribute says so), and prepares attention kernels.
    /// - Parameter packedExecution: run right-padded batches padding-free when the graph
    ///   qualifies; nil reads `KILN_PACKED` (on unless it is `0`).
    /// - Throws: ``KilnError`` when a node has no kernel at all, or asks for a precision this
    ///   CPU cannot run.
    public init(graph: Graph, packedExecution: Bool? = nil) throws {
        let order = try graph.topologicallySorted()
        steps = QKVSplitElision.apply(to: try order.map { try EngineStep.bind($0, graph: graph) }, graph: graph)
        let packedOnly = Self.weightsOnlyPackedGEMMsRead(steps, graph: graph)
        program = try EngineProgram(graph: graph, order: order, omitting: packedOnly)
        var kept = graph
        for name in packedOnly { kept.initializers[name] = nil }
        self.graph = kept
        var summary: [String: (fast: Int, reference: Int)] = [:]
        for step in steps {
            let key = step.node.domain.isEmpty ? step.node.opType : "\(step.node.domain):\(step.node.opType)"
            if step.isFast { summary[key, default: (0, 0)].fast += 1 } else { summary[key, default: (0, 0)].reference += 1 }
        }
        kernelSummary = summary.mapValues { "\($0.fast) fast, \($0.reference) reference" }
        var plan: PackingPlan?
        switch PackingPlan.analyse(steps, graph: graph) {
        case .success(var candidate):
            do {
                try candidate.verify(steps: steps, program: program, graph: kept, context: try ExecutionContext())
                plan = candidate
                packingDescription = "padding-free batches: yes (\(candidate.summary))"
            } catch {
                packingDescription = "padding-free batches: no, padded execution (\(error))"
            }
        case .failure(let refusal):
            packingDescription = "padding-free batches: no, padded execution (\(refusal.reason))"
        }
        packing = plan
        usesPackedExecution = plan != nil && (packedExecution ?? (ProcessInfo.processInfo.environment["KILN_PACKED"] != "0"))
    }

    /// Initializers whose every reader is a fast-bound FusedMatMul taking them as `W`.
    private static func weightsOnlyPackedGEMMsRead(_ steps: [EngineStep], graph: Graph) -> Set<String> {
        var packed: Set<String> = []
        var readElsewhere: Set<String> = Set(graph.outputs.map(\.name))
        for step in steps {
            for (index, name) in step.node.inputs.enumerated() where graph.initializers[name] != nil {
                if case .fusedMatMul = step.kernel, index == 1 { packed.insert(name) } else { readElsewhere.insert(name) }
            }
        }
        return packed.subtracting(readElsewhere)
    }

    /// Loads a plan's graph (the plan was already validated for this CPU when it was read).
    public convenience init(plan: Plan) throws {
        try self.init(graph: plan.graph)
    }

    public var inputSignature: [ValueInfo] { graph.inputs }
    public var outputSignature: [ValueInfo] { graph.outputs }

    /// Runs the model once.
    ///
    /// A right-padded ragged batch (attention mask rows `1…1 0…0`) runs padding-free when
    /// ``usesPackedExecution``: same values at every real token and every per-sequence output
    /// as the padded run (within float rounding); per-token outputs hold 0 at padding positions.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        try InputValidator.validate(inputs, against: graph.inputs)
        let opset = graph.opset
        return try contexts.withContext { context in
            if usesPackedExecution, let packing, let mask = inputs[packing.maskInput], let batch = PackedBatch(mask: mask),
               let outputs = try packing.run(inputs, batch: batch, steps: steps, program: program, opset: opset, context: context) {
                return outputs
            }
            return try program.run(inputs) { position, operands in
                try steps[position].run(operands, opset: opset, context: context)
            } release: { context.buffers.give($0) }
        }
    }
}
