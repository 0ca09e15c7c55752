import KilnCore
import KilnKernels
import Synchronization

/// Per-worker mutable state of an ``Engine`` run: the oneDNN stream, attention scratch, and the
/// pool of float buffers the engine's outputs are written into.
///
/// An engine is immutable and shared; every concurrent call runs with its own context, so
/// nothing mutable is shared between requests.
public final class ExecutionContext: @unchecked Sendable {
    /// The oneDNN stream GEMMs run on.
    let stream: CPUStream
    /// Attention score scratch, grown on demand and reused.
    private var attentionScratch: [Float] = []
    /// Buffers of intermediate values that died, reused for the next outputs.
    let buffers = BufferPool()

    public init() throws {
        stream = try CPUStream()
    }

    /// A scratch buffer of at least `count` floats for the duration of `body`.
    func withAttentionScratch<T>(count: Int, _ body: (UnsafeMutableBufferPointer<Float>) throws -> T) rethrows -> T {
        if attentionScratch.count < count { attentionScratch = [Float](repeating: 0, count: count) }
        return try attentionScratch.withUnsafeMutableBufferPointer { try body($0) }
    }
}

/// Float buffers of dead intermediate values: the engine's arena. A call's steps produce the
/// same sizes as the previous call's (fixed shapes) or similar ones (ragged batches run packed:
/// the token count changes from call to call), so after the first call outputs are written into
/// memory that is already mapped, instead of fresh allocations that page-fault on first touch
/// and are unmapped again when freed.
///
/// A request for `count` floats takes the smallest free buffer whose capacity holds `count` and
/// is at most twice it, and resizes it within its capacity (no reallocation). Fresh buffers are
/// made by ``make(count:_:)`` with their capacity rounded up to a size class (four per power of
/// two), so that buffers made for different token counts come in a few interchangeable sizes: a
/// later call finds one that fits instead of allocating again, and the pool does not fill up with
/// near-duplicates until it must be emptied (which lets the heap fragment and RSS creep up).
///
/// Safety does not depend on bookkeeping: a buffer is a Swift array, so if something else still
/// references it (an output that aliases its input, a value returned to the caller), writing
/// into it copies first (copy-on-write) and the other holder never sees a change.
final class BufferPool: @unchecked Sendable {
    private var free: [[Float]] = []
    private var pooledElements = 0
    /// The most floats the pool keeps (32 MiB). When a release would pass it, the pool is
    /// emptied first: sizes from older shapes (varying batch lengths) don't pile up.
    static let capacityElements = 8 << 20

    /// The capacity a fresh buffer of `count` floats gets: `count` rounded up to the next of four
    /// steps per power of two (at most 25% more); small buffers keep their size.
    static func sizeClass(_ count: Int) -> Int {
        guard count > 256 else { return count }
        let step = 1 << (Int.bitWidth - 1 - count.leadingZeroBitCount - 2)  // a quarter of the power of two below
        return (count + step - 1) / step * step
    }

    /// A fresh buffer of `count` floats whose capacity is ``sizeClass(_:)``; `initialize` must
    /// write all `count` of them.
    static func make(count: Int, _ initialize: (UnsafeMutablePointer<Float>) throws -> Void) rethrows -> [Float] {
        try [Float](unsafeUninitializedCapacity: sizeClass(count)) { buffer, initialized in
            try initialize(buffer.baseAddress!)
            initialized = count
        }
    }

    /// A buffer of exactly `count` floats (contents unspecified), reused when one was released.
    func take(count: Int) -> [Float]? {
        var best: Int?
        for (index, buffer) in free.enumerated() where buffer.capacity >= count && buffer.capacity <= 2 * count {
            if best == nil || buffer.capacity < free[best!].capacity { best = index }
        }
        guard let best else { return nil }
        var buffer = free.remove(at: best)
        pooledElements -= buffer.capacity
        if buffer.count > count {
            buffer.removeLast(buffer.count - count)
        } else if buffer.count < count {
            buffer.append(contentsOf: repeatElement(0, count: count - buffer.count))
        }
        return buffer
    }

    /// Keeps `tensor`'s float buffer for reuse (other storage kinds are dropped).
    func give(_ tensor: Tensor) {
        guard case .float(let values) = tensor.storage, !values.isEmpty, values.capacity <= BufferPool.capacityElements else { return }
        if pooledElements + values.capacity > BufferPool.capacityElements {
            free.removeAll()
            pooledElements = 0
        }
        let address = values.withUnsafeBufferPointer { $0.baseAddress }
        // The same buffer can die in several slots at once (a pass-through): keep it once.
        if free.contains(where: { $0.withUnsafeBufferPointer { $0.baseAddress } == address }) { return }
        free.append(values)
        pooledElements += values.capacity
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
