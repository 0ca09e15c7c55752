import KilnCore

/// One graph-to-graph optimization. A pass is a small named rewrite: it reads and rewrites
/// the graph it is given and reports what it changed; it never reaches into another pass's
/// state. Passes must leave the graph valid (every input produced, outputs preserved) and
/// numerically equivalent within the tolerance its header comment argues for.
public protocol Pass: Sendable {
    /// A stable, kebab-case name (`constant-folding`), used by `--dump-after` and in logs.
    var name: String { get }
    /// Rewrites `graph` in place.
    /// - Returns: what changed, with counts.
    func run(_ graph: inout Graph) throws -> PassReport
}

/// What one pass changed.
public struct PassReport: Sendable, Equatable, Codable {
    /// One kind of change: "fused 2 attention blocks".
    public struct Change: Sendable, Equatable, Codable {
        /// What was done: `fused`, `folded`, `removed`, ...
        public var action: String
        /// How many times.
        public var count: Int
        /// To what: `attention blocks`, `constants`, ...
        public var object: String

        public init(_ action: String, _ count: Int, _ object: String) {
            self.action = action
            self.count = count
            self.object = object
        }
    }

    /// The pass's name.
    public var pass: String
    /// The changes, in the order the pass reports them (zero counts included).
    public var changes: [Change]
    /// Free-form notes, e.g. why a candidate pattern was left alone.
    public var notes: [String]
    /// Node count before and after the pass (filled in by the pass manager).
    public var nodesBefore = 0, nodesAfter = 0

    public init(pass: String, changes: [Change] = [], notes: [String] = []) {
        self.pass = pass
        self.changes = changes
        self.notes = notes
    }

    /// The count of changes whose object is `object` (0 when absent).
    public func count(_ object: String) -> Int {
        changes.filter { $0.object == object }.reduce(0) { $0 + $1.count }
    }

    /// Whether the pass changed anything.
    public var changedGraph: Bool { changes.contains { $0.count > 0 } || nodesBefore != nodesAfter }

    /// `attention-fusion: fused 2 attention blocks (142 -> 118 nodes)`
    public var summary: String {
        let body = changes.isEmpty ? "no changes" : changes.map { "\($0.action) \($0.count) \($0.object)" }.joined(separator: ", ")
        return "\(pass): \(body) (\(nodesBefore) -> \(nodesAfter) nodes)"
    }
}
