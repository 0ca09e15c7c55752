#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CDNNL
import Foundation
import KilnCore

/// A oneDNN matmul `Y[rows, N] = A[rows, K] · W[K, N] (+ bias)` cut into column slices, each with
/// its own packed share of `W`, run concurrently on ``ComputePool`` as one-thread oneDNN calls.
///
/// Why: Kiln's kernels run on ``ComputePool``; oneDNN's own threading is OpenMP, whose idle team
/// members sleep between calls inside a server (see ``ComputePool``). Cutting the GEMM by
/// columns and running each slice single-threaded keeps one thread runtime in the engine: the
/// pool's workers, still polling from the previous step, pick the slices up at once. Each slice
/// reads all of `A` and only its columns of `W` (what small-batch GEMMs are bound by) and writes
/// its own columns of `Y` (a strided destination, so no copy), so slices never share output.
///
/// Scratchpads are Kiln's, not oneDNN's: every primitive is created with
/// `dnnl_scratchpad_mode_user` and each run passes the calling thread's scratchpad
/// (``CPUStream/scratchpad(byteCount:)``). With oneDNN's default (library) mode, a primitive
/// created on one thread and run on another uses the other thread's global scratchpad, sized for
/// the primitives *that* thread created: brgemm kernels then read and write past it (wrong
/// results, and a segfault in `kiln serve` under load), because Kiln caches primitives and runs
/// them on whichever batcher or pool thread needs them.
///
/// Used by ``FusedMatMulKernel`` (fp32 and bf16 on oneDNN) and ``Int8MatMulKernel`` (u8 × s8 →
/// s32). Immutable after construction apart from the primitive cache; shareable between threads.
final class OneDNNColumnSlices: @unchecked Sendable {
    /// One slice's columns and packed weights.
    struct Slice {
        let columns: Range<Int>
        let weightsDescriptor: dnnl_memory_desc_t
        let weightsMemory: dnnl_memory_t
        let packedWeights: UnsafeMutableRawPointer
        let packedByteCount: Int
        let biasMemory: dnnl_memory_t?
    }

    /// `K`.
    let inputSize: Int
    /// `N`.
    let outputSize: Int
    let slices: [Slice]
    private let sourceType: dnnl_data_type_t
    private let destinationType: dnnl_data_type_t
    /// Post-ops (if any) and the user scratchpad mode; owned.
    private let attributes: dnnl_primitive_attr_t
    private let biasStorage: UnsafeMutablePointer<Float>?
    private let engine: CPUEngine
    private let cache = MatMulPrimitiveCache()

    /// The column ranges of at most `slices` slices of `outputSize` columns.
    static func sliceBounds(outputSize: Int, slices: Int) -> [Range<Int>] {
        // Slice edges on multiples of 64 columns (oneDNN's blocked weight layouts and its
        // AVX-512 kernels work in 16- to 64-column blocks), and no slice under 64 columns.
        let units = max(1, outputSize / 64)
        let count = max(1, min(slices, units))
        guard count > 1 else { return [0..<outputSize] }
        return (0..<count).map { index in
            let lower = units * index / count * 64
            let upper = index == count - 1 ? outputSize : units * (index + 1) / count * 64
            return lower..<upper
        }
    }

    /// Packs `weights` slice by slice.
    /// - Parameters:
    ///   - weights: `W`, row-major `[inputSize, outputSize]` of `plainType` (copied).
    ///   - plainType: the element type of `weights` (f32 or s8).
    ///   - weightType: the type the slices are packed as (f32, bf16 or s8; a reorder converts).
    ///   - sourceType, destinationType: the types of `A` and `Y`.
    ///   - bias: `outputSize` floats (copied), or nil.
    ///   - attributes: post-ops applied per slice, or nil; this object takes ownership (destroys them)
    ///     and sets the user scratchpad mode on them.
    ///   - slices: how many slices at most (the thread count); fewer when `N` is small.
    init(
        weights: UnsafeRawPointer, plainType: dnnl_data_type_t, weightType: dnnl_data_type_t, sourceType: dnnl_data_type_t,
        destinationType: dnnl_data_type_t, inputSize: Int, outputSize: Int, bias: UnsafePointer<Float>?,
        attributes: dnnl_primitive_attr_t?, engine: CPUEngine, slices sliceCount: Int
    ) throws {
        let attributes = try Self.userScratchpadAttributes(attributes)
        self.inputSize = inputSize
        self.outputSize = outputSize
        self.sourceType = sourceType
        self.destinationType = destinationType
        self.attributes = attributes
        self.engine = engine
        let biasStorage = bias.map { values -> UnsafeMutablePointer<Float> in
            let storage = UnsafeMutablePointer<Float>.allocate(capacity: outputSize)
            storage.update(from: values, count: outputSize)
            return storage
        }
        self.biasStorage = biasStorage
        let elementSize = Self.byteSize(of: plainType)
        var built: [Slice] = []
        do {
            for columns in Self.sliceBounds(outputSize: outputSize, slices: sliceCount) {
                built.append(try Self.makeSlice(
                    columns: columns, weights: weights, elementSize: elementSize, plainType: plainType, weightType: weightType,
                    sourceType: sourceType, destinationType: destinationType, inputSize: inputSize, outputSize: outputSize,
                    bias: biasStorage, attributes: attributes, engine: engine))
            }
        } catch {
            built.forEach(Self.destroy)
            biasStorage?.deallocate()
            dnnl_primitive_attr_destroy(attributes)
            throw error
        }
        slices = built
    }

    deinit {
        cache.destroyAll()
        slices.forEach(Self.destroy)
        biasStorage?.deallocate()
        dnnl_primitive_attr_destroy(attributes)
    }

    /// `attributes` (or new ones) with `dnnl_scratchpad_mode_user` set; destroys `attributes` on failure.
    private static func userScratchpadAttributes(_ attributes: dnnl_primitive_attr_t?) throws -> dnnl_primitive_attr_t {
        var result = attributes
        if result == nil { try OneDNN.check(dnnl_primitive_attr_create(&result), "create primitive attributes") }
        do {
            try OneDNN.check(dnnl_primitive_attr_set_scratchpad_mode(result, dnnl_scratchpad_mode_user), "set the user scratchpad mode")
        } catch {
            dnnl_primitive_attr_destroy(result)
            throw error
        }
        return result!
    }

    /// Bytes of all slices' packed weights.
    var packedByteCount: Int { slices.reduce(0) { $0 + $1.packedByteCount } }

    /// The oneDNN implementation of the first slice's primitive for `rows` (e.g. `brg:avx512_core`).
    func implementationName(rows: Int) throws -> String {
        try primitive(rows: rows, width: slices[0].columns.count).implementation
    }

    /// Computes every slice of `Y` for `rows` rows; after a slice's GEMM, `epilogue(columns)`
    /// (when given) runs on the same thread while those columns are still in its cache.
    /// - Parameters:
    ///   - source: `A`, row-major `[rows, inputSize]` of the source type.
    ///   - destination: `Y`, row-major `[rows, outputSize]` of the destination type.
    func run(source: UnsafeRawPointer, rows: Int, destination: UnsafeMutableRawPointer,
             epilogue: ((Range<Int>) -> Void)? = nil) throws {
        guard rows > 0 else { return }
        // Create the primitives first, on this thread: a failure is then thrown here, not inside a chunk.
        let entries = try slices.map { try primitive(rows: rows, width: $0.columns.count) }
        let failure = FirstFailure()
        CPUThreading.parallelChunks(slices.count) { index, _ in
            do {
                try self.execute(slice: slices[index], entry: entries[index], source: source, rows: rows, destination: destination)
                epilogue?(slices[index].columns)
            } catch {
                failure.record(error)
            }
        }
        if let error = failure.error { throw error }
    }

    private func execute(slice: Slice, entry: MatMulPrimitiveCache.Entry, source: UnsafeRawPointer, rows: Int,
                         destination: UnsafeMutableRawPointer) throws {
        var sourceDescriptor = entry.sourceDescriptor
        var destinationDescriptor = entry.destinationDescriptor
        let offset = slice.columns.lowerBound * Self.byteSize(of: destinationType)
        var scratchpadDescriptor = entry.scratchpadDescriptor
        let stream = try CPUStream.threadLocal(engine: engine)
        var sourceMemory: dnnl_memory_t?
        var destinationMemory: dnnl_memory_t?
        var scratchpadMemory: dnnl_memory_t?
        try OneDNN.check(dnnl_memory_create(&sourceMemory, &sourceDescriptor, engine.handle, UnsafeMutableRawPointer(mutating: source)), "wrap the input")
        defer { dnnl_memory_destroy(sourceMemory) }
        try OneDNN.check(dnnl_memory_create(&destinationMemory, &destinationDescriptor, engine.handle, destination + offset), "wrap the output")
        defer { dnnl_memory_destroy(destinationMemory) }
        if entry.scratchpadByteCount > 0 {
            try OneDNN.check(
                dnnl_memory_create(&scratchpadMemory, &scratchpadDescriptor, engine.handle, stream.scratchpad(byteCount: entry.scratchpadByteCount)),
                "wrap the scratchpad")
        }
        defer { if let scratchpadMemory { dnnl_memory_destroy(scratchpadMemory) } }
        CPUThreading.runOneDNNSequentially()
        try OneDNN.execute(
            entry.primitive, stream: stream, (DNNL_ARG_SRC, sourceMemory!), (DNNL_ARG_WEIGHTS, slice.weightsMemory),
            (DNNL_ARG_DST, destinationMemory!), slice.biasMemory.map { (DNNL_ARG_BIAS, $0) },
            scratchpadMemory.map { (DNNL_ARG_SCRATCHPAD, $0) })
    }

    /// The primitive for `rows` rows of a slice `width` columns wide (slices of equal width share it).
    private func primitive(rows: Int, width: Int) throws -> MatMulPrimitiveCache.Entry {
        let slice = slices.first { $0.columns.count == width }!
        return try cache.entry(key: rows &* 1_000_003 &+ width) {
            let descriptor = try Self.makePrimitiveDescriptor(
                rows: rows, width: width, inputSize: inputSize, outputSize: outputSize, sourceType: sourceType,
                destinationType: destinationType, weights: slice.weightsDescriptor, hasBias: slice.biasMemory != nil,
                attributes: attributes, engine: engine)
            defer { dnnl_primitive_desc_destroy(descriptor) }
            var primitive: dnnl_primitive_t?
            try OneDNN.check(dnnl_primitive_create(&primitive, descriptor), "create a matmul primitive")
            var scratchpad = dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0)?.pointee ?? dnnl_memory_desc_t()
            return MatMulPrimitiveCache.Entry(
                primitive: primitive!,
                sourceDescriptor: dnnl_primitive_desc_query_md(descriptor, dnnl_query_src_md, 0)!.pointee,
                destinationDescriptor: dnnl_primitive_desc_query_md(descriptor, dnnl_query_dst_md, 0)!.pointee,
                scratchpadDescriptor: scratchpad, scratchpadByteCount: dnnl_memory_desc_get_size(&scratchpad),
                implementation: OneDNN.implementationName(descriptor))
        }
    }

    private static func makeSlice(
        columns: Range<Int>, weights: UnsafeRawPointer, elementSize: Int, plainType: dnnl_data_type_t, weightType: dnnl_data_type_t,
        sourceType: dnnl_data_type_t, destinationType: dnnl_data_type_t, inputSize: Int, outputSize: Int,
        bias: UnsafePointer<Float>?, attributes: dnnl_primitive_attr_t, engine: CPUEngine
    ) throws -> Slice {
        let width = columns.count
        // Ask oneDNN for its preferred layout of this slice's weights ("any") for a typical row
        // count; every row count reuses it.
        let anyWeights = try OneDNN.memoryDescriptor([inputSize, width], weightType, dnnl_format_tag_any)
        let probe = try makePrimitiveDescriptor(
            rows: 128, width: width, inputSize: inputSize, outputSize: outputSize, sourceType: sourceType,
            destinationType: destinationType, weights: anyWeights, hasBias: bias != nil, attributes: attributes, engine: engine)
        defer { dnnl_primitive_desc_destroy(probe) }
        var packed = dnnl_primitive_desc_query_md(probe, dnnl_query_weights_md, 0)!.pointee
        let byteCount = dnnl_memory_desc_get_size(&packed)
        let storage = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 64), alignment: 64)
        var weightsHandle: dnnl_memory_t?
        guard dnnl_memory_create(&weightsHandle, &packed, engine.handle, storage) == dnnl_success, let weightsMemory = weightsHandle else {
            storage.deallocate()
            throw KilnError.invalidInput("oneDNN could not wrap packed weights")
        }
        do {
            // The slice's columns of the row-major W, contiguous, then reordered into the packed layout.
            let plain = UnsafeMutableRawPointer.allocate(byteCount: inputSize * width * elementSize, alignment: 64)
            defer { plain.deallocate() }
            for row in 0..<inputSize {
                (plain + row * width * elementSize).copyMemory(
                    from: weights + (row * outputSize + columns.lowerBound) * elementSize, byteCount: width * elementSize)
            }
            try OneDNN.packWeights(UnsafeRawPointer(plain), rows: inputSize, columns: width, dataType: plainType,
                                   into: weightsMemory, descriptor: packed, engine: engine)
            var biasMemory: dnnl_memory_t?
            if let bias {
                var descriptor = try OneDNN.memoryDescriptor([1, width], dnnl_f32, dnnl_ab)
                try OneDNN.check(
                    dnnl_memory_create(&biasMemory, &descriptor, engine.handle, UnsafeMutableRawPointer(mutating: bias + columns.lowerBound)),
                    "wrap the bias")
            }
            return Slice(columns: columns, weightsDescriptor: packed, weightsMemory: weightsMemory, packedWeights: storage,
                         packedByteCount: byteCount, biasMemory: biasMemory)
        } catch {
            dnnl_memory_destroy(weightsMemory)
            storage.deallocate()
            throw error
        }
    }

    private static func destroy(_ slice: Slice) {
        dnnl_memory_destroy(slice.weightsMemory)
        if let biasMemory = slice.biasMemory { dnnl_memory_destroy(biasMemory) }
        slice.packedWeights.deallocate()
    }

    /// `[rows, width] = [rows, K] · [K, width]` writing into a `[rows, outputSize]` row-major
    /// destination (row stride `outputSize`).
    private static func makePrimitiveDescriptor(
        rows: Int, width: Int, inputSize: Int, outputSize: Int, sourceType: dnnl_data_type_t, destinationType: dnnl_data_type_t,
        weights: dnnl_memory_desc_t, hasBias: Bool, attributes: dnnl_primitive_attr_t, engine: CPUEngine
    ) throws -> dnnl_primitive_desc_t {
        var source = try OneDNN.memoryDescriptor([rows, inputSize], sourceType, dnnl_ab)
        var weights = weights
        var bias = try OneDNN.memoryDescriptor([1, width], dnnl_f32, dnnl_ab)
        var destination = try OneDNN.stridedDescriptor([rows, width], destinationType, strides: [outputSize, 1])
        var operation = dnnl_matmul_desc_t()
        if hasBias {
            try OneDNN.check(dnnl_matmul_desc_init(&operation, &source, &weights, &bias, &destination), "describe a matmul")
        } else {
            try OneDNN.check(dnnl_matmul_desc_init(&operation, &source, &weights, nil, &destination), "describe a matmul")
        }
        var descriptor: dnnl_primitive_desc_t?
        try OneDNN.check(
            dnnl_primitive_desc_create(&descriptor, &operation, attributes, engine.handle, nil),
            "create a matmul [\(rows), \(inputSize)]×[\(inputSize), \(width) of \(outputSize)]")
        return descriptor!
    }

    private static func byteSize(of type: dnnl_data_type_t) -> Int {
        switch type {
        case dnnl_s8, dnnl_u8: return 1
        case dnnl_bf16, dnnl_f16: return 2
        default: return 4
        }
    }
}

/// The first error thrown by any chunk of a parallel run.
private final class FirstFailure: @unchecked Sendable {
    // @unchecked: `first` is only touched under `lock`.
    private let lock = NSLock()
    private var first: (any Error)?
    func record(_ error: any Error) { lock.withLock { if first == nil { first = error } } }
    var error: (any Error)? { lock.withLock { first } }
}
