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

    /// Binds `graph` to kernels: packs every FusedMatMul's weights (in bf16 where the node's
    /// `precision` attribute says so), and prepares attention kernels.
    /// - Throws: ``KilnError`` when a node has no kernel at all, or asks for a precision this
    ///   CPU cannot run.
    public init(graph: Graph) throws {
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
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        try InputValidator.validate(inputs, against: graph.inputs)
        let opset = graph.opset
        return try contexts.withContext { context in
            try program.run(inputs) { position, operands in
                try steps[position].run(operands, opset: opset, context: context)
            } release: { context.buffers.give($0) }
        }
    }
}
