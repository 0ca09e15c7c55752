import Foundation
import KilnCore

/// Where every intermediate tensor lives in one preallocated arena, for a given
/// `(maxBatch, maxSeq)`: the runtime allocates ``arenaBytes`` once per execution context and
/// places each tensor at its ``Allocation/offset``. Tensors whose lifetimes do not overlap
/// share bytes.
public struct MemoryPlan: Sendable, Equatable, Codable {
    /// One tensor's slot.
    public struct Allocation: Sendable, Equatable, Codable {
        /// The value's name.
        public var value: String
        /// Byte offset in the arena (a multiple of ``MemoryPlan/alignment``).
        public var offset: Int
        /// Size in bytes at the maximum shape.
        public var bytes: Int
        /// Position (in ``MemoryPlan/nodeOrder``) of the node producing the value.
        public var firstUse: Int
        /// Position of the last node reading it (`nodeOrder.count` for graph outputs).
        public var lastUse: Int
    }

    /// The batch size the plan was made for.
    public var maxBatch: Int
    /// The sequence length the plan was made for.
    public var maxSeq: Int
    /// Alignment of every offset, in bytes.
    public var alignment: Int
    /// The node names in execution order the lifetimes refer to.
    public var nodeOrder: [String]
    /// The slots, by first use.
    public var allocations: [Allocation]
    /// Size of the arena.
    public var arenaBytes: Int
    /// What allocating every intermediate tensor separately would take.
    public var naiveBytes: Int

    /// The slot of `value`, if it is planned.
    public func allocation(of value: String) -> Allocation? { allocations.first { $0.value == value } }

    /// `arena 38.2 MB instead of 412.0 MB (9.3% of naive)`
    public var summary: String {
        func megabytes(_ bytes: Int) -> String {
            bytes >= 1 << 20 ? String(format: "%.1f MB", Double(bytes) / 1_048_576) : String(format: "%.1f KB", Double(bytes) / 1024)
        }
        let ratio = naiveBytes == 0 ? 0 : 100 * Double(arenaBytes) / Double(naiveBytes)
        return "arena \(megabytes(arenaBytes)) instead of \(megabytes(naiveBytes)) (\(String(format: "%.1f", ratio))% of naive) for batch \(maxBatch), seq \(maxSeq)"
    }
}
