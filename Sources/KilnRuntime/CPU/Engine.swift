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
    /// The optimized graph, without the weights that only packed GEMMs read (those live once,
    /// packed, in their ``FusedMatMulKernel``s and ``Int8MatMulKernel``s: keeping both doubled an
    /// fp32 engine's memory, and int8 levels, held as `Int64` in a ``Tensor``, cost 8x their packed size).
    public let graph: Graph
    /// How many nodes run on a fast kernel vs the reference kernels, by op type.
    public let kernelSummary: [String: String]
    let steps: [EngineStep]
    let program: EngineProgram
    let contexts = ExecutionContextPool()
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
    ///
    /// Each GEMM weight leaves the graph as soon as its packed copy exists, so when the caller
    /// hands over the only reference (``init(plan:)`` from ``PlanFile/read(_:cpu:)``), binding
    /// peaks at about one copy of the weights instead of two.
    public init(graph: consuming Graph, packedExecution: Bool? = nil) throws {
        let order = try graph.topologicallySorted()
        var kept = consume graph
        let (bound, packedOnly) = try Self.bindReleasingPackedWeights(order, graph: &kept)
        steps = QKVSplitElision.apply(to: bound, graph: kept)
        program = try EngineProgram(graph: kept, order: order, omitting: packedOnly)
        self.graph = kept
        var summary: [String: (fast: Int, reference: Int)] = [:]
        for step in steps {
            let key = step.node.domain.isEmpty ? step.node.opType : "\(step.node.domain):\(step.node.opType)"
            if step.isFast { summary[key, default: (0, 0)].fast += 1 } else { summary[key, default: (0, 0)].reference += 1 }
        }
        kernelSummary = summary.mapValues { "\($0.fast) fast, \($0.reference) reference" }
        var plan: PackingPlan?
        switch PackingPlan.analyse(steps, graph: kept) {
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

    /// Binds every node in `order`, removing from `graph` each initializer whose every reader
    /// is a fast-bound FusedMatMul (fp32/bf16 or int8) taking it as `W` (its packed copy in the
    /// kernel is all that is read from then on) right after its last reader is bound. Returns the
    /// steps and the removed names.
    private static func bindReleasingPackedWeights(_ order: [Node], graph: inout Graph) throws -> ([EngineStep], Set<String>) {
        var unboundGEMMReaders: [String: Int] = [:]
        var readElsewhere: Set<String> = Set(graph.outputs.map(\.name))
        for node in order {
            for (index, name) in node.inputs.enumerated() where graph.initializers[name] != nil {
                if node.domain == KilnOperators.domain && node.opType == KilnOperators.fusedMatMul && index == 1 {
                    unboundGEMMReaders[name, default: 0] += 1
                } else {
                    readElsewhere.insert(name)
                }
            }
        }
        var removed: Set<String> = []
        var steps: [EngineStep] = []
        steps.reserveCapacity(order.count)
        for node in order {
            let step = try EngineStep.bind(node, graph: graph)
            steps.append(step)
            guard node.inputs.count > 1, let remaining = unboundGEMMReaders[node.inputs[1]] else { continue }
            let name = node.inputs[1]
            if step.kernel.packedWeightsInputSize == nil { readElsewhere.insert(name) }
            unboundGEMMReaders[name] = remaining - 1
            if remaining == 1 && !readElsewhere.contains(name) {
                graph.initializers[name] = nil
                removed.insert(name)
            }
        }
        return (steps, removed)
    }

    /// Loads a plan's graph (the plan was already validated for this CPU when it was read).
    /// Consumes `plan` so that its weights can be freed as they are packed (pass a plan you no
    /// longer need, e.g. `Engine(plan: PlanFile.read(url))`).
    public convenience init(plan: consuming Plan) throws {
        let graph = plan.graph
        // Drop the plan's own reference to the weights: `graph` now holds the only one.
        plan.graph.initializers = [:]
        try self.init(graph: consume graph)
    }

    public var inputSignature: [ValueInfo] { graph.inputs }
    public var outputSignature: [ValueInfo] { graph.outputs }

    /// Wakes the compute pool's sleeping workers: on a VM a sleeping vCPU takes 0.1-0.3 ms to
    /// run again, which a lone request would otherwise pay inside its first parallel region.
    public func prepareForRequest() {
        CPUThreading.prepareForParallelWork()
    }

    /// Runs the model once.
    ///
    /// A right-padded ragged batch (attention mask rows `1…1 0…0`) runs padding-free when
    /// ``usesPackedExecution``: same values at every real token and every per-sequence output
    /// as the padded run (within float rounding); per-token outputs hold 0 at padding positions.
    public func run(_ inputs: [String: Tensor]) throws -> [String: Tensor] {
        try InputValidator.validate(inputs, against: graph.inputs)
        // Input checks and packing take tens of microseconds: enough for sleeping pool workers
        // to be polling by the first GEMM.
        CPUThreading.prepareForParallelWork()
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
