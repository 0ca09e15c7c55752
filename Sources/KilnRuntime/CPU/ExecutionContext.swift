import KilnKernels
import Synchronization

/// Per-worker mutable state of an ``Engine`` run: the oneDNN stream and reusable scratch.
///
/// An engine is immutable and shared; every concurrent call runs with its own context, so
/// nothing mutable is shared between requests.
public final class ExecutionContext: @unchecked Sendable {
    /// The oneDNN stream GEMMs run on.
    let stream: CPUStream
    /// Attention score scratch, grown on demand and reused.
    private var attentionScratch: [Float] = []

    public init() throws {
        stream = try CPUStream()
    }

    /// A scratch buffer of at least `count` floats for the duration of `body`.
    func withAttentionScratch<T>(count: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> T) rethrows -> T {
        if attentionScratch.count < count { attentionScratch = [Float](repeating: 0, count: count) }
        return try attentionScratch.withUnsafeMutableBufferPointer { try body($0) }
    }
}

/// A small pool of contexts so that concurrent `Engine.run` calls never share one.
final class ExecutionContextPool: Sendable {
    private let free = Mutex<[ExecutionContext]>([])

    func withContext<T>(_ body: (ExecutionContext) throws -> T) throws -> T {
        let context = try free.withLock { $0.popLast() } ?? ExecutionContext()
        defer { free.withLock { $0.append(context) } }
        return try body(context)
    }
}
