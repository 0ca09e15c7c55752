import KilnCore

/// Options for the standard optimization pipeline.
public struct OptimizationOptions: Sendable {
    /// `"fp32"` or `"bf16"` (see ``PrecisionAssignmentPass``).
    public var precision: String
    /// Keep the NLU heads in fp32 when ``precision`` is bf16.
    public var keepHeadsInFP32: Bool
    /// Pass names after which to dump the graph (`--dump-after`); `"all"` for every pass.
    public var dumpAfter: Set<String>
    /// The shape the memory plan is made for; nil skips memory planning.
    public var memoryPlanShape: (maxBatch: Int, maxSeq: Int)?

    public init(precision: String = "fp32", keepHeadsInFP32: Bool = true, dumpAfter: Set<String> = [], memoryPlanShape: (maxBatch: Int, maxSeq: Int)? = (16, 128)) {
        self.precision = precision
        self.keepHeadsInFP32 = keepHeadsInFP32
        self.dumpAfter = dumpAfter
        self.memoryPlanShape = memoryPlanShape
    }
}

/// What the standard pipeline produced.
public struct OptimizationResult: Sendable {
    /// The optimized graph.
    public var graph: Graph
    /// One report per pass, in order.
    public var reports: [PassReport]
    /// The arena plan, when requested.
    public var memoryPlan: MemoryPlan?

    /// How many nodes of each op type the optimized graph holds (`kiln::Attention`, `MatMul`, ...).
    public var opCounts: [String: Int] {
        graph.nodes.reduce(into: [:]) { $0[$1.domain.isEmpty ? $1.opType : "\($1.domain)::\($1.opType)", default: 0] += 1 }
    }

    /// `fused 2 attention blocks, 5 layer norms (4 with residual), 2 GELUs, 10 GEMMs (2 QKV),
    /// folded 310 constants, arena ...`: the line `kiln build` prints.
    public var summary: String {
        let counts = opCounts
        func count(_ op: String) -> Int { counts["kiln::\(op)"] ?? 0 }
        let folded = reports.reduce(0) { $0 + $1.count("constants") + $1.count("shape values") }
        let gelus = reports.reduce(0) { $0 + $1.count("erf GELUs") + $1.count("tanh GELUs") + $1.count("Gelu ops") }
        let layerNorms = count(KilnOperators.layerNorm) + count(KilnOperators.skipLayerNorm)
        var parts = [
            "fused \(count(KilnOperators.attention)) attention blocks",
            "\(layerNorms) layer norms (\(count(KilnOperators.skipLayerNorm)) with residual)",
            "\(gelus) GELUs", "\(count(KilnOperators.fusedMatMul)) GEMMs (\(reports.reduce(0) { $0 + $1.count("QKV projections") }) QKV)",
            "folded \(folded) constants", "removed \(reports.reduce(0) { $0 + $1.count("dead nodes") }) dead nodes",
        ]
        if let memoryPlan { parts.append(memoryPlan.summary) }
        return parts.joined(separator: ", ")
    }
}

/// Kiln's standard optimization pipeline: folding, cleanup, fusions, precision, memory plan.
public enum KilnOptimizer {
    /// The standard passes, in order.
    /// - Parameters:
    ///   - evaluate: runs one node on constant inputs (wire it to the reference kernels).
    ///   - precision: `"fp32"` or `"bf16"`.
    ///   - keepHeadsInFP32: keep the NLU heads fp32 under bf16.
    public static func standardPasses(evaluate: @escaping NodeEvaluator, precision: String = "fp32", keepHeadsInFP32: Bool = true) -> [any Pass] {
        [
            ConstantFoldingPass(evaluate: evaluate),
            IdentityEliminationPass(),
            ShapeFoldingPass(evaluate: evaluate),
            DeadCodeEliminationPass(),
            CommonSubexpressionEliminationPass(),
            LayerNormFusionPass(),
            GeluFusionPass(),
            FusedMatMulPass(),
            SkipLayerNormFusionPass(),
            AttentionFusionPass(),
            QKVFusionPass(),
            DeadCodeEliminationPass(name: "final-dead-code-elimination"),
            PrecisionAssignmentPass(precision: precision, keepHeadsInFP32: keepHeadsInFP32),
        ]
    }

    /// The names of the standard passes (what `--dump-after` accepts).
    public static var standardPassNames: [String] {
        standardPasses(evaluate: { _, _ in [] }).map(\.name)
    }

    /// Optimizes `graph` with the standard pipeline in one call.
    /// - Parameters:
    ///   - graph: the imported model.
    ///   - evaluate: runs one node on constant inputs, e.g.
    ///     `{ try ReferenceKernels.run($0, inputs: $1, opset: graph.opset) }`.
    ///   - options: precision, dumps and the memory-plan shape.
    ///   - log: receives one summary line per pass.
    ///   - dump: receives `(pass, graph text)` for passes named in `options.dumpAfter`.
    /// - Returns: the optimized graph, the reports and the memory plan.
    public static func optimize(
        _ graph: Graph, evaluate: @escaping NodeEvaluator, options: OptimizationOptions = OptimizationOptions(),
        log: @escaping @Sendable (String) -> Void = { _ in },
        dump: @escaping @Sendable (String, String) -> Void = { name, text in print("=== after \(name) ===\n\(text)") }
    ) throws -> OptimizationResult {
        let manager = PassManager(
            passes: standardPasses(evaluate: evaluate, precision: options.precision, keepHeadsInFP32: options.keepHeadsInFP32),
            dumpAfter: options.dumpAfter, log: log, dump: dump)
        var optimized = graph
        let reports = try manager.run(&optimized)
        var plan: MemoryPlan?
        if let shape = options.memoryPlanShape {
            plan = try MemoryPlanner.plan(optimized, maxBatch: shape.maxBatch, maxSeq: shape.maxSeq, evaluate: evaluate)
            log("memory-planning: \(plan!.summary)")
        }
        return OptimizationResult(graph: optimized, reports: reports, memoryPlan: plan)
    }
}
