import KilnCore

/// Runs passes in order, validates the graph after each, logs one summary line per pass and
/// can hand out the graph's text form after any named pass (what `kiln build --dump-after`
/// prints).
public struct PassManager: Sendable {
    /// The passes, in the order they run.
    public var passes: [any Pass]
    /// Names of the passes after which to dump the graph (`"all"` dumps after every pass).
    public var dumpAfter: Set<String>
    /// Receives one line per pass: `attention-fusion: fused 2 attention blocks (142 -> 118 nodes)`.
    public var log: @Sendable (String) -> Void
    /// Receives `(pass name, graph text)` for every pass named in ``dumpAfter``.
    public var dump: @Sendable (String, String) -> Void
    /// Whether to check the graph's invariants after every pass (cheap; on by default).
    public var validatesEachPass: Bool

    /// - Parameters:
    ///   - passes: the passes to run, in order.
    ///   - dumpAfter: pass names to dump the graph after.
    ///   - log: where summary lines go (default: nowhere).
    ///   - dump: where dumps go (default: standard output).
    public init(
        passes: [any Pass], dumpAfter: Set<String> = [], validatesEachPass: Bool = true,
        log: @escaping @Sendable (String) -> Void = { _ in },
        dump: @escaping @Sendable (String, String) -> Void = { name, text in print("=== after \(name) ===\n\(text)") }
    ) {
        self.passes = passes
        self.dumpAfter = dumpAfter
        self.validatesEachPass = validatesEachPass
        self.log = log
        self.dump = dump
    }

    /// The names of the passes, in order (what `--dump-after` accepts).
    public var passNames: [String] { passes.map(\.name) }

    /// Runs every pass on `graph`.
    /// - Returns: one report per pass, in order.
    /// - Throws: a pass's error, or ``KilnError/invalidModel(_:)`` when a pass broke the graph
    ///   (naming the pass), or when ``dumpAfter`` names a pass that is not in the pipeline.
    public func run(_ graph: inout Graph) throws -> [PassReport] {
        let unknown = dumpAfter.subtracting(passNames).subtracting(["all"])
        guard unknown.isEmpty else {
            throw KilnError.invalidInput("--dump-after names unknown pass(es) \(unknown.sorted().joined(separator: ", ")); passes are: \(passNames.joined(separator: ", "))")
        }
        let outputs = graph.outputs.map(\.name)
        if validatesEachPass { try GraphValidator.validate(graph, expectedOutputs: outputs, after: "import") }
        var reports: [PassReport] = []
        for pass in passes {
            let before = graph.nodes.count
            var report = try pass.run(&graph)
            report.nodesBefore = before
            report.nodesAfter = graph.nodes.count
            if validatesEachPass { try GraphValidator.validate(graph, expectedOutputs: outputs, after: pass.name) }
            log(report.summary)
            if dumpAfter.contains(pass.name) || dumpAfter.contains("all") { dump(pass.name, GraphPrinter.text(graph)) }
            reports.append(report)
        }
        return reports
    }
}
