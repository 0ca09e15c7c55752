#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// How many threads the CPU kernels use, for both runtimes underneath them:
///
/// - oneDNN (Debian's build) runs GEMMs on **OpenMP** (libgomp). OpenMP's thread count is a
///   per-thread setting, so ``FusedMatMulKernel`` applies ``CPUThreading/gemmThreadCount`` on
///   the calling thread before every execution (a store into libgomp, nanoseconds).
/// - The SIMD kernels spread rows, or (sequence, head) pairs, over
///   ``CPUThreading/parallelFor(_:width:minimumChunk:_:)``, which runs them on the **same**
///   OpenMP thread team (`GOMP_parallel`, found at run time) when libgomp is loaded, and on
///   Dispatch's worker pool otherwise. One team matters: after a GEMM, OpenMP's workers spin
///   for a while waiting for the next parallel region; a second pool (Dispatch) started then
///   fights them for the cores, and on a busy 2-core machine a layer's small kernels could
///   take a scheduler time slice each instead of microseconds.
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

    /// Sets OpenMP's thread count for parallel regions started from the calling thread.
    static func applyOpenMPThreadCount() {
        if let setNumThreads = OpenMP.setNumThreads {
            setNumThreads(Int32(state.threadCount))
        }
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
        if OpenMP.team != nil {
            OpenMP.run(chunks, body)
            return
        }
        withoutActuallyEscaping(body) { body in
            let shared = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in shared.value(chunk, chunks) }
        }
    }
}

/// Hands a closure to Dispatch's workers. Safe because `parallelFor`/`parallelChunks` wait for
/// every chunk before returning and document that chunks must touch disjoint state.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
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

    typealias Parallel = @convention(c) (@convention(c) (UnsafeMutableRawPointer?) -> Void, UnsafeMutableRawPointer?, UInt32, UInt32) -> Void
    typealias ThreadQuery = @convention(c) () -> Int32

    static let setNumThreads: SetNumThreads? = symbol("omp_set_num_threads", as: SetNumThreads.self)
    static let getMaxThreads: GetMaxThreads? = symbol("omp_get_max_threads", as: GetMaxThreads.self)
    /// libgomp's team entry points: `GOMP_parallel(fn, data, num_threads, flags)` (what
    /// `#pragma omp parallel` compiles to) and the member's number and team size; nil when
    /// libgomp is not loaded.
    static let team: (parallel: Parallel, threadNumber: ThreadQuery, teamSize: ThreadQuery)? = {
        guard let parallel = symbol("GOMP_parallel", as: Parallel.self),
              let threadNumber = symbol("omp_get_thread_num", as: ThreadQuery.self),
              let teamSize = symbol("omp_get_num_threads", as: ThreadQuery.self)
        else { return nil }
        return (parallel, threadNumber, teamSize)
    }()

    /// What a team member needs: the body and the number of chunks.
    private struct Region {
        let body: (Int, Int) -> Void
        let chunks: Int
    }

    /// Runs `body(chunk, chunks)` for every chunk on an OpenMP team of up to `chunks` threads
    /// (the calling thread included). The team may be smaller than asked (nested regions run
    /// with one thread), so each member takes every team-size-th chunk: every chunk runs once.
    static func run(_ chunks: Int, _ body: (Int, Int) -> Void) {
        guard let team else { preconditionFailure("OpenMP.run without libgomp") }
        withoutActuallyEscaping(body) { body in
            var region = Region(body: body, chunks: chunks)
            withUnsafeMutablePointer(to: &region) { pointer in
                team.parallel({ raw in
                    let region = raw!.assumingMemoryBound(to: Region.self).pointee
                    let entry = OpenMP.team!
                    let members = max(1, Int(entry.teamSize()))
                    var chunk = Int(entry.threadNumber())
                    while chunk < region.chunks {
                        region.body(chunk, region.chunks)
                        chunk += members
                    }
                }, UnsafeMutableRawPointer(pointer), UInt32(chunks), 0)
            }
        }
    }

    private static func symbol<T>(_ name: String, as type: T.Type) -> T? {
        let handle = dlopen(nil, RTLD_NOW) ?? dlopen("libgomp.so.1", RTLD_NOW)
        guard let handle, let pointer = dlsym(handle, name) ?? dlsym(dlopen("libgomp.so.1", RTLD_NOW), name) else {
            return nil
        }
        return unsafeBitCast(pointer, to: type)
    }
}
