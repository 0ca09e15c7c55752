#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// How many threads the CPU kernels use, and the threads they run on.
///
/// - Kiln's kernels (the GEMMs on packed weights, LayerNorm, softmax, GELU, attention,
///   embeddings) spread rows, panels or (sequence, head) pairs over
///   ``CPUThreading/parallelFor(_:width:minimumChunk:_:)``, which runs them on ``ComputePool``:
///   one set of worker threads for the process, awake for a short time after each job and
///   asleep otherwise (see there why not OpenMP's teams).
/// - oneDNN (Debian's build) runs on **OpenMP** (libgomp). Its GEMMs are cut into column slices
///   that the pool runs, each slice a one-thread oneDNN call
///   (``CPUThreading/runOneDNNSequentially()``), so OpenMP never starts a team of its own and
///   the two runtimes never fight for the cores.
///
/// The default for both is the number of online CPUs; set `KILN_NUM_THREADS` (or
/// `OMP_NUM_THREADS`) in the environment, or call ``configure(threadCount:)``.
public enum CPUThreading {
    private static let state = ThreadCountState()

    /// The thread count GEMMs and SIMD kernels use.
    public static var threadCount: Int { state.threadCount }

    /// Threads for oneDNN GEMMs (same as ``threadCount``).
    public static var gemmThreadCount: Int { state.threadCount }

    /// Sets the thread count for every CPU kernel.
    /// - Parameter threadCount: threads to use, at least 1.
    public static func configure(threadCount: Int) {
        state.threadCount = max(1, threadCount)
    }

    /// Makes oneDNN calls from the calling thread run on that thread alone (OpenMP's thread count
    /// is a per-thread setting; a store into libgomp, nanoseconds). Kiln parallelizes oneDNN's
    /// GEMMs itself, by column slices on ``ComputePool``.
    static func runOneDNNSequentially() {
        if let setNumThreads = OpenMP.setNumThreads { setNumThreads(1) }
    }

    /// Wakes the pool's sleeping workers ahead of parallel work (an engine calls this when a run
    /// starts, so its first parallel region does not wait for a thread to wake up).
    public static func prepareForParallelWork() {
        if state.threadCount > 1 { ComputePool.shared.prepare() }
    }

    /// Runs `body(chunkRange)` over `0..<count` split into at most `width` contiguous chunks,
    /// concurrently; returns when all chunks are done. Runs inline when one chunk suffices.
    /// - Parameters:
    ///   - count: number of work items.
    ///   - width: maximum concurrent chunks (default ``threadCount``).
    ///   - minimumChunk: fewest items worth a chunk of their own (amortizes dispatch cost).
    ///   - body: processes one chunk; must only touch state disjoint from other chunks.
    public static func parallelFor(
        _ count: Int, width: Int = CPUThreading.threadCount, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void
    ) {
        guard count > 0 else { return }
        let chunks = max(1, min(width, count / max(1, minimumChunk)))
        if chunks == 1 {
            body(0..<count)
            return
        }
        parallelChunks(chunks) { chunk, chunks in
            body((count * chunk / chunks)..<(count * (chunk + 1) / chunks))
        }
    }

    /// Runs `body(chunk, chunks)` for `chunk` in `0..<chunks` concurrently (inline when
    /// `chunks` is 1); the body picks its share of the work, e.g. every `chunks`-th item.
    public static func parallelChunks(_ chunks: Int, _ body: (_ chunk: Int, _ chunks: Int) -> Void) {
        if chunks <= 1 {
            body(0, 1)
            return
        }
        ComputePool.shared.run(chunks, width: state.threadCount, body)
    }
}

/// The thread count, readable from any thread.
private final class ThreadCountState: @unchecked Sendable {
    private var value: Int
    private var lock = pthread_mutex_t()

    init() {
        pthread_mutex_init(&lock, nil)
        value = ThreadCountState.environmentThreadCount() ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    var threadCount: Int {
        get { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return value }
        set { pthread_mutex_lock(&lock); value = newValue; pthread_mutex_unlock(&lock) }
    }

    static func environmentThreadCount() -> Int? {
        for name in ["KILN_NUM_THREADS", "OMP_NUM_THREADS"] {
            if let raw = getenv(name), let count = Int(String(cString: raw)), count > 0 { return count }
        }
        return nil
    }
}

/// libgomp's `omp_set_num_threads`, found at run time (oneDNN loads libgomp; Kiln does not link it).
enum OpenMP {
    typealias SetNumThreads = @convention(c) (Int32) -> Void
    typealias GetMaxThreads = @convention(c) () -> Int32

    static let setNumThreads: SetNumThreads? = symbol("omp_set_num_threads", as: SetNumThreads.self)
    static let getMaxThreads: GetMaxThreads? = symbol("omp_get_max_threads", as: GetMaxThreads.self)

    private static func symbol<T>(_ name: String, as type: T.Type) -> T? {
        let handle = dlopen(nil, RTLD_NOW) ?? dlopen("libgomp.so.1", RTLD_NOW)
        guard let handle, let pointer = dlsym(handle, name) ?? dlsym(dlopen("libgomp.so.1", RTLD_NOW), name) else {
            return nil
        }
        return unsafeBitCast(pointer, to: type)
    }
}
