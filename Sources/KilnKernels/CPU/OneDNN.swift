#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CDNNL
import Foundation
import KilnCore

/// A oneDNN CPU engine: the handle every GEMM primitive and packed weight buffer is created on.
/// Immutable and shareable across threads (oneDNN engines are thread-safe).
public final class CPUEngine: @unchecked Sendable {
    let handle: dnnl_engine_t

    /// Creates a CPU engine.
    /// - Throws: ``KilnError`` when oneDNN cannot create one.
    public init() throws {
        var engine: dnnl_engine_t?
        try OneDNN.check(dnnl_engine_create(&engine, dnnl_cpu, 0), "create a CPU engine")
        handle = engine!
    }

    /// The process-wide default engine.
    public static let shared: CPUEngine = try! CPUEngine()

    deinit { dnnl_engine_destroy(handle) }
}

/// A oneDNN stream plus the per-worker scratch the GEMM wrappers need (the bf16 copy of an
/// fp32 input). One per worker thread, like the runtime's `ExecutionContext`: use it from one
/// thread at a time.
public final class CPUStream: @unchecked Sendable {
    let handle: dnnl_stream_t
    /// The engine this stream runs on.
    public let engine: CPUEngine
    private var bfloat16Scratch: UnsafeMutablePointer<UInt16>?
    private var bfloat16ScratchCount = 0
    private var scratchpadStorage: UnsafeMutableRawPointer?
    private var scratchpadCapacity = 0

    /// Creates a stream on `engine`.
    public init(engine: CPUEngine = .shared) throws {
        var stream: dnnl_stream_t?
        try OneDNN.check(dnnl_stream_create(&stream, engine.handle, UInt32(dnnl_stream_default_flags.rawValue)), "create a stream")
        handle = stream!
        self.engine = engine
    }

    /// The calling thread's stream on `engine`, created on first use and kept for the thread's
    /// life (column slices of a GEMM run on the pool's threads, one stream each).
    static func threadLocal(engine: CPUEngine) throws -> CPUStream {
        if let raw = pthread_getspecific(threadLocalKey) {
            let stream = Unmanaged<CPUStream>.fromOpaque(raw).takeUnretainedValue()
            if stream.engine === engine { return stream }
            Unmanaged<CPUStream>.fromOpaque(raw).release()
        }
        let stream = try CPUStream(engine: engine)
        pthread_setspecific(threadLocalKey, Unmanaged.passRetained(stream).toOpaque())
        return stream
    }

    /// The key of ``threadLocal(engine:)``; its destructor releases a thread's stream when the thread ends.
    private static let threadLocalKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            if let raw { Unmanaged<CPUStream>.fromOpaque(raw).release() }
        }
        return key
    }()

    /// A bf16 buffer of at least `count` elements, grown (rarely) and reused.
    func bfloat16Buffer(count: Int) -> UnsafeMutablePointer<UInt16> {
        if count > bfloat16ScratchCount {
            bfloat16Scratch?.deallocate()
            let capacity = max(count, bfloat16ScratchCount * 2)
            bfloat16Scratch = .allocate(capacity: capacity)
            bfloat16ScratchCount = capacity
        }
        return bfloat16Scratch!
    }

    /// The oneDNN scratchpad of primitives run on this stream's thread, at least `byteCount`
    /// bytes (64-byte aligned), grown (rarely) and reused. One thread runs one primitive at a
    /// time, so one buffer per thread is never shared by two running primitives.
    func scratchpad(byteCount: Int) -> UnsafeMutableRawPointer {
        if byteCount > scratchpadCapacity {
            scratchpadStorage?.deallocate()
            let capacity = max(byteCount, scratchpadCapacity * 2)
            scratchpadStorage = .allocate(byteCount: capacity, alignment: 64)
            scratchpadCapacity = capacity
        }
        return scratchpadStorage!
    }

    deinit {
        dnnl_stream_destroy(handle)
        bfloat16Scratch?.deallocate()
        scratchpadStorage?.deallocate()
    }
}

/// Small helpers over oneDNN's C API.
enum OneDNN {
    static func check(_ status: dnnl_status_t, _ what: String) throws {
        guard status == dnnl_success else {
            throw KilnError.invalidInput("oneDNN could not \(what): \(describe(status))")
        }
    }

    static func describe(_ status: dnnl_status_t) -> String {
        switch status {
        case dnnl_out_of_memory: return "out of memory"
        case dnnl_invalid_arguments: return "invalid arguments"
        case dnnl_unimplemented: return "no implementation for these shapes/types on this CPU"
        case dnnl_runtime_error: return "runtime error"
        default: return "status \(status.rawValue)"
        }
    }

    /// A plain row-major memory descriptor (`tag` = `dnnl_ab` for 2-D), or `format_kind any`.
    static func memoryDescriptor(_ dims: [Int], _ dataType: dnnl_data_type_t, _ tag: dnnl_format_tag_t) throws -> dnnl_memory_desc_t {
        var descriptor = dnnl_memory_desc_t()
        let dims64 = dims.map { Int64($0) }
        try dims64.withUnsafeBufferPointer { buffer in
            try check(dnnl_memory_desc_init_by_tag(&descriptor, Int32(dims.count), buffer.baseAddress, dataType, tag), "describe a \(dims) tensor")
        }
        return descriptor
    }

    /// A 2-D (or n-D) plain descriptor with explicit strides in elements, e.g. a column slice of
    /// a wider row-major matrix (`strides: [fullWidth, 1]`).
    static func stridedDescriptor(_ dims: [Int], _ dataType: dnnl_data_type_t, strides: [Int]) throws -> dnnl_memory_desc_t {
        var descriptor = dnnl_memory_desc_t()
        let dims64 = dims.map { Int64($0) }
        let strides64 = strides.map { Int64($0) }
        try dims64.withUnsafeBufferPointer { dimsBuffer in
            try strides64.withUnsafeBufferPointer { stridesBuffer in
                try check(dnnl_memory_desc_init_by_strides(&descriptor, Int32(dims.count), dimsBuffer.baseAddress, dataType, stridesBuffer.baseAddress),
                          "describe a \(dims) tensor with strides \(strides)")
            }
        }
        return descriptor
    }

    /// The implementation a primitive descriptor picked, e.g. `brg:avx512_core_bf16`.
    static func implementationName(_ primitiveDescriptor: dnnl_primitive_desc_t) -> String {
        var name: UnsafePointer<CChar>?
        guard dnnl_primitive_desc_query(primitiveDescriptor, dnnl_query_impl_info_str, 0, &name) == dnnl_success, let name else {
            return "unknown"
        }
        return String(cString: name)
    }

    /// Runs `primitive` with up to five `(argument, memory)` pairs and waits for it. No heap
    /// allocation: the argument list lives on the stack.
    static func execute(
        _ primitive: dnnl_primitive_t, stream: CPUStream, _ first: (Int32, dnnl_memory_t), _ second: (Int32, dnnl_memory_t),
        _ third: (Int32, dnnl_memory_t)? = nil, _ fourth: (Int32, dnnl_memory_t)? = nil, _ fifth: (Int32, dnnl_memory_t)? = nil
    ) throws {
        try withUnsafeTemporaryAllocation(of: dnnl_exec_arg_t.self, capacity: 5) { buffer in
            var count = 0
            func append(_ argument: (Int32, dnnl_memory_t)?) {
                guard let argument else { return }
                buffer[count] = dnnl_exec_arg_t(arg: argument.0, memory: argument.1)
                count += 1
            }
            append(first)
            append(second)
            append(third)
            append(fourth)
            append(fifth)
            try check(dnnl_primitive_execute(primitive, stream.handle, Int32(count), buffer.baseAddress), "execute a primitive")
        }
        try check(dnnl_stream_wait(stream.handle), "wait for a stream")
    }
}

extension OneDNN {
    /// Packs a row-major `[rows, columns]` weight matrix of `dataType` into `packed`, the layout the
    /// matmul primitive chose (`descriptor`). Shared by the fp32/bf16 and int8 GEMM kernels.
    static func packWeights(
        _ weights: UnsafeRawPointer, rows: Int, columns: Int, dataType: dnnl_data_type_t,
        into packed: dnnl_memory_t, descriptor: dnnl_memory_desc_t, engine: CPUEngine
    ) throws {
        var plain = try memoryDescriptor([rows, columns], dataType, dnnl_ab)
        var packedDescriptor = descriptor
        var plainMemory: dnnl_memory_t?
        try check(dnnl_memory_create(&plainMemory, &plain, engine.handle, UnsafeMutableRawPointer(mutating: weights)), "wrap weights")
        defer { dnnl_memory_destroy(plainMemory) }
        var reorderDescriptor: dnnl_primitive_desc_t?
        try check(
            dnnl_reorder_primitive_desc_create(&reorderDescriptor, &plain, engine.handle, &packedDescriptor, engine.handle, nil),
            "plan the weight packing")
        defer { dnnl_primitive_desc_destroy(reorderDescriptor) }
        var reorder: dnnl_primitive_t?
        try check(dnnl_primitive_create(&reorder, reorderDescriptor), "create the weight packing")
        defer { dnnl_primitive_destroy(reorder) }
        let stream = try CPUStream(engine: engine)
        // One thread, like every oneDNN call in Kiln: no OpenMP team is ever started.
        CPUThreading.runOneDNNSequentially()
        try execute(reorder!, stream: stream, (DNNL_ARG_FROM, plainMemory!), (DNNL_ARG_TO, packed))
    }
}

/// Matmul primitives by shape key (the row count, and for column slices the slice width),
/// created on first use: oneDNN primitives are shape-specific.
final class MatMulPrimitiveCache: @unchecked Sendable {
    struct Entry {
        let primitive: dnnl_primitive_t
        let sourceDescriptor: dnnl_memory_desc_t
        let destinationDescriptor: dnnl_memory_desc_t
        /// What the caller passes as `DNNL_ARG_SCRATCHPAD` (user scratchpad mode); 0 bytes: none.
        let scratchpadDescriptor: dnnl_memory_desc_t
        let scratchpadByteCount: Int
        let implementation: String
    }

    private var entries: [Int: Entry] = [:]
    private let lock = NSLock()

    func entry(key: Int, create: () throws -> Entry) throws -> Entry {
        lock.lock()
        defer { lock.unlock() }
        if let entry = entries[key] { return entry }
        let entry = try create()
        entries[key] = entry
        return entry
    }

    func destroyAll() {
        lock.lock()
        defer { lock.unlock() }
        for entry in entries.values { dnnl_primitive_destroy(entry.primitive) }
        entries.removeAll()
    }
}
