#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CKilnSIMD
import Synchronization

/// Kiln's own worker threads for the CPU kernels: what ``CPUThreading/parallelChunks(_:_:)`` runs
/// chunks on.
///
/// Why not OpenMP: libgomp gives every thread that starts a parallel region a team of its own
/// and, once the process has more OpenMP threads than cores (a server has a team per engine
/// instance, per model, plus the threads that loaded them), it cuts the time an idle team
/// member spins to about a hundred iterations. The member then sleeps in the kernel between
/// any two of the ~40 parallel regions of a batch-1 call, and on a virtual machine waking a
/// sleeping vCPU costs 0.1-0.3 ms: a 3 ms MiniLM call took 6-13 ms inside `kiln serve`.
/// `OMP_WAIT_POLICY=active` is no cure: spinning forever steals the cores the server's other
/// threads need.
///
/// This pool has one set of workers for the whole process and bounds waiting by time: a worker
/// that finishes its chunk polls for the next job for ``spinNanoseconds`` (default 200 µs,
/// `KILN_SPIN_US`), so the regions of one engine call find it awake, and then sleeps on a
/// condition variable, so an idle server burns no CPU. While polling it yields the core every
/// few microseconds, so HTTP threads or another instance waiting for that core run first. One
/// job runs at a time; a caller that finds the pool busy (another engine instance, or a chunk
/// that itself asks for parallel work) runs its chunks on its own thread, so threads never
/// outnumber `threadCount` per engine call.
/// Chunks are claimed from a shared counter, the caller included: a caller never waits for a
/// worker to wake up before it starts, and a slow worker cannot hold a chunk it has not begun.
final class ComputePool: @unchecked Sendable {
    // @unchecked: `current`, `parked` and `workers` are guarded by `mutex`; the rest are atomics
    // or immutable.

    /// The process's pool.
    static let shared = ComputePool(spinNanoseconds: ComputePool.environmentSpinNanoseconds() ?? 200_000)

    /// How long an idle worker polls for the next job before it sleeps.
    let spinNanoseconds: UInt64

    /// Bumped once per published job; workers wait for it to change.
    private let generation = Atomic<UInt64>(0)
    /// Held by the caller whose job is running.
    private let busy = Atomic<Bool>(false)
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var current: Job?
    private var parked = 0
    private var workers = 0

    /// A pool whose idle workers poll for `spinNanoseconds` before sleeping (0: sleep at once).
    init(spinNanoseconds: UInt64) {
        self.spinNanoseconds = spinNanoseconds
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
    }

    /// One parallel job: `chunks` calls of the caller's body, claimed one at a time.
    private final class Job: @unchecked Sendable {
        // @unchecked: `region` is only dereferenced by a thread that claimed a chunk, and the
        // caller keeps it alive until every claimed chunk has finished (`done == chunks`).
        let region: UnsafeRawPointer
        let chunks: Int
        let next = Atomic<Int>(0)
        let done = Atomic<Int>(0)

        init(region: UnsafeRawPointer, chunks: Int) {
            self.region = region
            self.chunks = chunks
        }

        /// Runs chunks until none is left to claim.
        func work() {
            while true {
                let chunk = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard chunk < chunks else { return }
                region.assumingMemoryBound(to: Region.self).pointee.body(chunk, chunks)
                done.wrappingAdd(1, ordering: .releasing)
            }
        }
    }

    /// What a job's chunks call, on the caller's stack.
    private struct Region {
        let body: (Int, Int) -> Void
    }

    /// Runs `body(chunk, chunks)` for every chunk in `0..<chunks` on the calling thread and up to
    /// `width - 1` workers; returns when all have finished. When the pool is already running a
    /// job, runs them all on the calling thread instead.
    func run(_ chunks: Int, width: Int, _ body: (Int, Int) -> Void) {
        guard chunks > 1, width > 1, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for chunk in 0..<chunks { body(chunk, chunks) }
            return
        }
        defer { busy.store(false, ordering: .releasing) }
        ensureWorkers(min(width, chunks) - 1)
        withoutActuallyEscaping(body) { body in
            var region = Region(body: body)
            withUnsafePointer(to: &region) { pointer in
                let job = Job(region: UnsafeRawPointer(pointer), chunks: chunks)
                publish(job)
                job.work()
                waitUntilDone(job)
                pthread_mutex_lock(&mutex)
                current = nil
                pthread_mutex_unlock(&mutex)
            }
        }
    }

    /// Wakes sleeping workers so that they are polling when the next job comes (an engine calls
    /// this as a call starts, before its first parallel region).
    func prepare() {
        pthread_mutex_lock(&mutex)
        if parked > 0 {
            generation.wrappingAdd(1, ordering: .releasing)
            pthread_cond_broadcast(&wake)
        }
        pthread_mutex_unlock(&mutex)
    }

    /// Worker threads started so far.
    var workerCount: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return workers
    }

    private func publish(_ job: Job) {
        pthread_mutex_lock(&mutex)
        current = job
        generation.wrappingAdd(1, ordering: .releasing)
        if parked > 0 { pthread_cond_broadcast(&wake) }
        pthread_mutex_unlock(&mutex)
    }

    /// Polls until every chunk has finished; yields the core now and then in case the worker
    /// holding the last chunk was preempted (more runnable threads than cores).
    private func waitUntilDone(_ job: Job) {
        var polls = 0
        while job.done.load(ordering: .acquiring) < job.chunks {
            polls += 1
            if polls & 63 == 0 { sched_yield() } else { kiln_cpu_relax() }
        }
    }

    private func ensureWorkers(_ count: Int) {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        // A new worker waits for the generation after the current one: the job about to be
        // published (the caller holds `busy`, so nothing else publishes in between).
        let seen = generation.load(ordering: .acquiring)
        while workers < count {
            workers += 1
            startWorker(number: workers, seen: seen)
        }
    }

    private func startWorker(number: Int, seen: UInt64) {
        let context = Unmanaged.passRetained(WorkerContext(pool: self, number: number, seen: seen)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, 8 << 20)  // kernels keep small scratch on the stack
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(&thread, &attributes, { raw in
            let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
            context.pool.workerLoop(number: context.number, seen: context.seen)
            return nil
        }, context)
        pthread_attr_destroy(&attributes)
        if status != 0 {
            // No thread: the caller and any other workers still run every chunk (they are claimed).
            Unmanaged<WorkerContext>.fromOpaque(context).release()
            workers -= 1
        }
    }

    private final class WorkerContext {
        let pool: ComputePool
        let number: Int
        let seen: UInt64
        init(pool: ComputePool, number: Int, seen: UInt64) {
            self.pool = pool
            self.number = number
            self.seen = seen
        }
    }

    private func workerLoop(number: Int, seen initial: UInt64) {
        kiln_set_thread_name("kiln-compute-\(number)")
        ComputeThreadPriority.applyToCurrentThread()
        var seen = initial
        while true {
            seen = waitForNewGeneration(after: seen)
            pthread_mutex_lock(&mutex)
            let job = current
            pthread_mutex_unlock(&mutex)
            job?.work()
        }
    }

    /// Polls for a generation other than `seen` for up to ``spinNanoseconds``, then sleeps until
    /// one is published; returns it.
    private func waitForNewGeneration(after seen: UInt64) -> UInt64 {
        let deadline = Self.now() &+ spinNanoseconds
        var polls = 0
        while spinNanoseconds > 0 {
            let value = generation.load(ordering: .acquiring)
            if value != seen { return value }
            kiln_cpu_relax()
            polls += 1
            if polls & 63 == 0 {
                if Self.now() >= deadline { break }
                // Let a runnable thread on this core (an HTTP thread, another engine instance
                // running inline) go first: returns at once when there is none.
                sched_yield()
            }
        }
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while generation.load(ordering: .acquiring) == seen {
            parked += 1
            pthread_cond_wait(&wake, &mutex)
            parked -= 1
        }
        return generation.load(ordering: .acquiring)
    }

    private static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }

    /// `KILN_SPIN_US` in nanoseconds, if set to a number.
    static func environmentSpinNanoseconds() -> UInt64? {
        guard let raw = getenv("KILN_SPIN_US"), let microseconds = Double(String(cString: raw)), microseconds >= 0 else { return nil }
        return UInt64(microseconds * 1000)
    }
}
