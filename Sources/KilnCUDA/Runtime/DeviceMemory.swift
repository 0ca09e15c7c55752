// Device and pinned host memory: owned allocations and the bump arenas engines run in.
// Pattern: one allocation made at engine build, carved by a bump pointer that is reset at the
// start of every run, so requests never call cuMemAlloc. Safe because an engine serialises its
// runs and the stream is synchronised before the arena is reset.
import CKilnCUDA

/// One cuMemAlloc allocation, freed on deinit.
public final class DeviceBuffer: @unchecked Sendable {
    public let address: kcu_deviceptr
    public let byteCount: Int

    public init(byteCount: Int) throws {
        var address: kcu_deviceptr = 0
        try checkDriver(kcu_mem_alloc(&address, max(byteCount, 256)), "cuMemAlloc(\(byteCount) bytes)")
        self.address = address
        self.byteCount = byteCount
    }

    deinit { _ = kcu_mem_free(address) }

    /// Synchronous upload of `bytes` (weights at engine build; never on the request path).
    public func upload(_ bytes: UnsafeRawBufferPointer, offset: Int = 0, stream: kcu_stream) throws {
        guard offset + bytes.count <= byteCount else { throw CUDAError.arenaExhausted(requested: offset + bytes.count, capacity: byteCount, what: "weight") }
        try checkDriver(kcu_memcpy_htod_async(address + UInt64(offset), bytes.baseAddress, bytes.count, stream), "cuMemcpyHtoDAsync")
        try checkDriver(kcu_stream_synchronize(stream), "cuStreamSynchronize")
    }
}

/// Page-locked host memory (cuMemHostAlloc): the staging area for async copies.
public final class PinnedBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int

    public init(byteCount: Int) throws {
        var pointer: UnsafeMutableRawPointer?
        try checkDriver(kcu_mem_host_alloc(&pointer, max(byteCount, 256), 0), "cuMemHostAlloc(\(byteCount) bytes)")
        self.pointer = pointer!
        self.byteCount = byteCount
    }

    deinit { _ = kcu_mem_free_host(pointer) }
}

/// Bump allocation over a fixed range; pure arithmetic so it is testable without a GPU.
public struct BumpAllocator: Sendable, Equatable {
    public let capacity: Int
    public let alignment: Int
    public private(set) var used = 0
    /// The largest `used` seen since creation: what an arena must be sized to.
    public private(set) var highWater = 0

    public init(capacity: Int, alignment: Int = 256) {
        self.capacity = capacity
        self.alignment = alignment
    }

    /// Offset of a new block of `bytes`, or nil when it does not fit.
    public mutating func allocate(_ bytes: Int) -> Int? {
        let offset = (used + alignment - 1) / alignment * alignment
        guard offset + bytes <= capacity else { return nil }
        used = offset + bytes
        highWater = max(highWater, used)
        return offset
    }

    /// Forgets all blocks (start of a run).
    public mutating func reset() { used = 0 }

    /// Forgets the blocks past `mark` (a `used` value seen earlier): a CUDA graph replay resumes
    /// where the captured run's allocations stood after the graph.
    public mutating func reset(to mark: Int) {
        precondition(mark >= 0 && mark <= capacity, "bump allocator mark out of range")
        used = mark
        highWater = max(highWater, used)
    }
}

/// The per-engine device arena: activations of one run.
final class DeviceArena: @unchecked Sendable {
    let buffer: DeviceBuffer
    var allocator: BumpAllocator

    init(byteCount: Int) throws {
        buffer = try DeviceBuffer(byteCount: byteCount)
        allocator = BumpAllocator(capacity: byteCount)
    }

    func allocate(_ bytes: Int) throws -> kcu_deviceptr {
        guard let offset = allocator.allocate(bytes) else {
            throw CUDAError.arenaExhausted(requested: allocator.used + bytes, capacity: allocator.capacity, what: "device")
        }
        return buffer.address + UInt64(offset)
    }
}

/// The per-engine pinned staging arena: inputs going up, outputs coming down.
final class PinnedArena: @unchecked Sendable {
    let buffer: PinnedBuffer
    var allocator: BumpAllocator

    init(byteCount: Int) throws {
        buffer = try PinnedBuffer(byteCount: byteCount)
        allocator = BumpAllocator(capacity: byteCount)
    }

    func allocate(_ bytes: Int) throws -> UnsafeMutableRawPointer {
        guard let offset = allocator.allocate(bytes) else {
            throw CUDAError.arenaExhausted(requested: allocator.used + bytes, capacity: allocator.capacity, what: "pinned host")
        }
        return buffer.pointer + offset
    }
}
