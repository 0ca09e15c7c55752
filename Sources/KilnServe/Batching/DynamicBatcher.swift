// Pass: dynamic batching. Pattern: a bounded priority queue drained by one worker thread per engine
// instance. Dispatch policy (``BatchWait``): by default (`whenBusy`) an idle instance takes what is
// queued at once, so a lone request never waits for a batch window; requests that arrive while every
// instance is busy accumulate behind them and become the next batch, so batches form from the load
// itself (the busier the server, the bigger the batches). `always` is the Triton-style policy: an
// idle instance waits up to `maxQueueDelay` after the oldest request to fill its batch. Why safe:
// every queue change happens under one lock, each request is removed from the queue exactly once
// (by the worker that runs it or expires it), and each continuation is resumed exactly once.
import Foundation
import KilnRuntime

/// When an idle engine instance waits for more requests before it runs a batch.
public enum BatchWait: String, Sendable, Codable, CaseIterable {
    /// Run what is queued as soon as an instance is free; requests batch only while every
    /// instance is busy. No added latency at low load (the default).
    case whenBusy = "when-busy"
    /// Wait up to `maxQueueDelay` after the oldest queued request, unless the batch fills first
    /// (the classic dynamic-batcher window: bigger batches at low load, + up to the delay per request).
    case always
}

/// What a batched request gets back: its own output plus where its time went.
public struct BatchedResult<Output: Sendable>: Sendable {
    /// The request's share of the batch output.
    public var output: Output
    /// Time from submission until its batch started computing.
    public var queueSeconds: Double
    /// Time the batch took in the engine.
    public var computeSeconds: Double
    /// How many requests shared the engine call.
    public var batchRequests: Int
    /// How many rows (utterances) the engine call had.
    public var batchRows: Int
}

/// Settings of one ``DynamicBatcher``.
public struct BatcherSettings: Sendable, Equatable {
    /// The most rows one engine call takes (a single larger request still runs, alone).
    public var maxBatchRows: Int
    /// How long to wait for more requests after the oldest queued one arrived; only with
    /// ``BatchWait/always`` (with ``BatchWait/whenBusy`` an idle instance never waits).
    public var maxQueueDelay: Double
    /// The most requests waiting; more are refused with ``ServeError/queueFull(retryAfterSeconds:)``.
    public var maxQueueSize: Int
    /// Worker threads, one per engine instance.
    public var instances: Int
    /// The most real tokens (padding not counted) one engine call computes. nil: rows are the
    /// only limit. The engine runs a batch with padding packed away (padding-free execution), so
    /// its cost follows the real tokens: a batch of short utterances fills up to `maxBatchRows`,
    /// long ones close it earlier. A single request over the budget still runs, alone.
    public var maxBatchTokens: Int?
    /// Whether an idle instance waits `maxQueueDelay` to fill a batch.
    public var batchWait: BatchWait
    /// Batch sizes (rows) to cut batches at, ascending (Triton's `preferred_batch_size`): when more
    /// rows are queued than the smallest of them, a batch takes the largest preferred size the queue
    /// fills, and the rest waits for the next instance. Engines with plans or CUDA graphs per shape
    /// bucket run those sizes best. With ``BatchWait/always``, reaching the largest one ends the
    /// window early. Empty: batches take all they can (up to the limits).
    public var preferredBatchRows: [Int]

    /// Creates settings; all values are clamped to sensible minimums.
    public init(
        maxBatchRows: Int, maxQueueDelay: Double, maxQueueSize: Int, instances: Int, maxBatchTokens: Int? = nil,
        batchWait: BatchWait = .whenBusy, preferredBatchRows: [Int] = []
    ) {
        self.batchWait = batchWait
        self.preferredBatchRows = Array(Set(preferredBatchRows.filter { $0 >= 1 && $0 <= max(1, maxBatchRows) })).sorted()
        self.maxBatchRows = max(1, maxBatchRows)
        self.maxQueueDelay = max(0, maxQueueDelay)
        self.maxQueueSize = max(1, maxQueueSize)
        self.instances = max(1, instances)
        self.maxBatchTokens = maxBatchTokens.map { max(1, $0) }
    }

    /// Whether a batch of `rows` rows holding `tokens` real tokens is over a limit.
    func exceeds(rows: Int, tokens: Int) -> Bool {
        if rows > maxBatchRows { return true }
        if let maxBatchTokens, tokens > maxBatchTokens { return true }
        return false
    }

    /// Whether a batch of `rows` rows holding `tokens` real tokens has no room for another row like
    /// the ones it has (its mean row length), so waiting for more requests cannot make it bigger.
    func isFull(rows: Int, tokens: Int) -> Bool {
        if rows >= maxBatchRows { return true }
        if let largest = preferredBatchRows.last, rows >= largest { return true }
        if let maxBatchTokens, rows > 0, tokens + max(1, tokens / rows) > maxBatchTokens { return true }
        return false
    }
}

/// Observes a batcher for metrics; called from worker threads.
public struct BatcherObserver: Sendable {
    /// Called when the queue length changes.
    public var queueDepthChanged: @Sendable (Int) -> Void
    /// Called after each engine call with (requests, rows, compute seconds).
    public var batchCompleted: @Sendable (Int, Int, Double) -> Void

    /// Creates an observer.
    public init(
        queueDepthChanged: @escaping @Sendable (Int) -> Void = { _ in },
        batchCompleted: @escaping @Sendable (Int, Int, Double) -> Void = { _, _, _ in }
    ) {
        self.queueDepthChanged = queueDepthChanged
        self.batchCompleted = batchCompleted
    }
}

/// The dynamic batcher: the one place that knows about batches.
///
/// Requests wait in a bounded queue (highest priority first, then arrival order). Each worker
/// thread (one per engine instance) takes the oldest request, with ``BatchWait/always`` waits up to
/// `maxQueueDelay` for more to arrive (with the default ``BatchWait/whenBusy`` it does not wait:
/// requests batch up while every instance is busy), then hands up to `maxBatchRows` rows (and, when set, `maxBatchTokens` real tokens)
/// to `runBatch` and resumes every caller with its
/// own slice of the result. A full queue refuses new requests at once (429 + Retry-After) instead
/// of growing; a request that waited past its deadline fails with 503 instead of running late.
/// `shutdown()` stops accepting, finishes everything queued, then stops the workers.
public final class DynamicBatcher<Item: Sendable, Output: Sendable>: @unchecked Sendable {
    /// Runs one batch on one engine instance: one output per item, in order.
    public typealias RunBatch = @Sendable (_ instance: Int, _ items: [Item]) throws -> [Output]

    private struct Pending {
        var item: Item
        var rows: Int
        /// Real tokens in all its rows (its share of `maxBatchTokens`).
        var tokens: Int
        var priority: Int
        var sequence: UInt64
        var enqueued: UInt64
        var deadline: UInt64
        var continuation: CheckedContinuation<BatchedResult<Output>, any Error>
    }

    /// The settings the batcher runs with.
    public let settings: BatcherSettings
    private let runBatch: RunBatch
    private let observer: BatcherObserver
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var queue: [Pending] = []
    private var sequence: UInt64 = 0
    private var stopping = false
    private var runningWorkers = 0
    private var busyWorkers = 0
    private var meanBatchSeconds: Double = 0.05

    /// Creates a batcher and starts its worker threads.
    /// - Parameters:
    ///   - settings: batch size, delay, queue bound and instance count.
    ///   - observer: metrics hooks.
    ///   - runBatch: the engine call for one batch on a given instance.
    public init(settings: BatcherSettings, observer: BatcherObserver = BatcherObserver(), runBatch: @escaping RunBatch) {
        self.settings = settings
        self.runBatch = runBatch
        self.observer = observer
        runningWorkers = settings.instances
        for instance in 0..<settings.instances {
            let thread = Thread { [self] in self.workerLoop(instance: instance) }
            thread.name = "kiln-batcher-\(instance)"
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// The number of requests waiting.
    public var queueDepth: Int {
        condition.lock()
        defer { condition.unlock() }
        return queue.count
    }

    /// Engine instances running a batch right now.
    public var busyInstances: Int {
        condition.lock()
        defer { condition.unlock() }
        return busyWorkers
    }

    /// Requests accepted into the queue since the batcher started (refused ones not counted).
    public var acceptedCount: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return sequence
    }

    /// Queues one request and waits for its result.
    /// - Parameters:
    ///   - item: the request's rows.
    ///   - rows: how many rows it has (its share of `maxBatchRows`).
    ///   - tokens: its real tokens, all rows together, padding not counted (its share of `maxBatchTokens`).
    ///   - priority: higher runs first; equal priorities run in arrival order.
    ///   - timeout: seconds it may wait in the queue.
    /// - Returns: its output and timings.
    /// - Throws: ``ServeError/queueFull(retryAfterSeconds:)``, ``ServeError/timedOut(_:)``,
    ///   ``ServeError/unavailable(_:)`` after shutdown, or what `runBatch` threw.
    public func submit(_ item: Item, rows: Int = 1, tokens: Int = 1, priority: Int = 0, timeout: Double) async throws
        -> BatchedResult<Output>
    {
        try await withCheckedThrowingContinuation { continuation in
            let now = DispatchTime.now().uptimeNanoseconds
            condition.lock()
            if stopping {
                condition.unlock()
                continuation.resume(throwing: ServeError.unavailable("the model is being unloaded; retry"))
                return
            }
            if queue.count >= settings.maxQueueSize {
                let retryAfter = retryAfterSecondsLocked()
                condition.unlock()
                continuation.resume(throwing: ServeError.queueFull(retryAfterSeconds: retryAfter))
                return
            }
            sequence += 1
            let pending = Pending(
                item: item, rows: max(1, rows), tokens: max(1, tokens), priority: priority, sequence: sequence, enqueued: now,
                deadline: now &+ UInt64(max(0, timeout) * 1e9), continuation: continuation)
            // Insert after every request of equal or higher priority.
            let index = queue.lastIndex { $0.priority >= priority }.map { $0 + 1 } ?? 0
            queue.insert(pending, at: index)
            let depth = queue.count
            condition.broadcast()
            condition.unlock()
            observer.queueDepthChanged(depth)
        }
    }

    /// Stops accepting requests, lets the workers finish everything already queued, and returns
    /// once they have stopped.
    public func shutdown() async {
        beginShutdown()
        while runningWorkerCount() > 0 {
            try? await Task.sleep(for: .milliseconds(2))
        }
    }

    private func beginShutdown() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }

    private func runningWorkerCount() -> Int {
        condition.lock()
        defer { condition.unlock() }
        return runningWorkers
    }

    /// Seconds a refused client should wait: the time to work off the queue, at least 1.
    private func retryAfterSecondsLocked() -> Int {
        let batches = Double(queue.count) / Double(settings.maxBatchRows) / Double(settings.instances)
        return max(1, Int((batches * meanBatchSeconds).rounded(.up)))
    }

    private func workerLoop(instance: Int) {
        EngineThreads.prepareCurrentThread()
        condition.lock()
        while true {
            while queue.isEmpty && !stopping { condition.wait() }
            if queue.isEmpty && stopping { break }
            waitForBatchWindowLocked()
            let (batch, expired) = takeBatchLocked()
            let depth = queue.count
            busyWorkers += 1
            condition.unlock()
            observer.queueDepthChanged(depth)
            for pending in expired {
                pending.continuation.resume(throwing: ServeError.timedOut(
                    "the request waited in the queue longer than its timeout; the server is overloaded, retry later"))
            }
            let seconds = batch.isEmpty ? 0 : run(batch, instance: instance)
            condition.lock()
            busyWorkers -= 1
            if seconds > 0 { meanBatchSeconds = 0.8 * meanBatchSeconds + 0.2 * seconds }
        }
        runningWorkers -= 1
        condition.unlock()
    }

    /// Waits (lock held) until the batch is full, the oldest request has waited `maxQueueDelay`,
    /// or the batcher is stopping. With ``BatchWait/whenBusy`` it returns at once: this worker is
    /// idle, and a request must not wait for an idle engine.
    private func waitForBatchWindowLocked() {
        guard settings.batchWait == .always else { return }
        guard let oldest = queue.map(\.enqueued).min() else { return }
        let windowEnd = oldest &+ UInt64(settings.maxQueueDelay * 1e9)
        while !stopping && !queue.isEmpty && !nextBatchIsFullLocked() {
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= windowEnd { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(windowEnd - now) / 1e9))
        }
    }

    /// The requests at the head of the queue that fit one batch (row and token limits), as the
    /// running row count after each of them, and whether they fill it (waiting longer cannot make
    /// it bigger).
    private func headOfQueueLocked() -> (rowsAfter: [Int], full: Bool) {
        var rows = 0
        var tokens = 0
        var rowsAfter: [Int] = []
        for pending in queue {
            if !rowsAfter.isEmpty && settings.exceeds(rows: rows + pending.rows, tokens: tokens + pending.tokens) { return (rowsAfter, true) }
            rows += pending.rows
            tokens += pending.tokens
            rowsAfter.append(rows)
            if settings.isFull(rows: rows, tokens: tokens) { return (rowsAfter, true) }
        }
        return (rowsAfter, false)
    }

    /// Whether the requests at the head of the queue already fill a batch (rows or tokens).
    private func nextBatchIsFullLocked() -> Bool {
        headOfQueueLocked().full
    }

    /// Removes (lock held) the next batch from the queue, and the expired requests met on the way.
    private func takeBatchLocked() -> (batch: [Pending], expired: [Pending]) {
        let now = DispatchTime.now().uptimeNanoseconds
        var expired: [Pending] = []
        queue.removeAll { pending in
            guard pending.deadline < now else { return false }
            expired.append(pending)
            return true
        }
        let count = batchLengthLocked()
        let batch = Array(queue.prefix(count))
        queue.removeFirst(count)
        return (batch, expired)
    }

    /// How many requests (lock held, from the head of the queue) the next batch takes: all that fit
    /// the row and token limits, cut back to the largest preferred batch size they reach.
    private func batchLengthLocked() -> Int {
        let rowsAfter = headOfQueueLocked().rowsAfter
        // Cut back to the largest preferred size the queued rows reach (at least one request);
        // when they reach none, waiting would not help an idle instance: take everything.
        guard let rows = rowsAfter.last, let target = settings.preferredBatchRows.last(where: { $0 <= rows }) else {
            return rowsAfter.count
        }
        return (rowsAfter.lastIndex(where: { $0 <= target }) ?? 0) + 1
    }

    /// Runs a batch and resumes its callers; returns the compute time.
    private func run(_ batch: [Pending], instance: Int) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let rows = batch.reduce(0) { $0 + $1.rows }
        let outcome = Result { try runBatch(instance, batch.map(\.item)) }
        let end = DispatchTime.now().uptimeNanoseconds
        let computeSeconds = Double(end - start) / 1e9
        observer.batchCompleted(batch.count, rows, computeSeconds)
        switch outcome {
        case .success(let outputs) where outputs.count == batch.count:
            for (pending, output) in zip(batch, outputs) {
                pending.continuation.resume(returning: BatchedResult(
                    output: output, queueSeconds: Double(start - min(start, pending.enqueued)) / 1e9,
                    computeSeconds: computeSeconds, batchRequests: batch.count, batchRows: rows))
            }
        case .success:
            for pending in batch {
                pending.continuation.resume(throwing: ServeError.internalError("the engine returned the wrong number of results"))
            }
        case .failure(let error) where batch.count == 1:
            batch[0].continuation.resume(throwing: error)
        case .failure:
            // One bad request must not fail its neighbours: run each alone to find out whose it was.
            for pending in batch {
                let single = Result { try runBatch(instance, [pending.item]) }
                switch single {
                case .success(let outputs) where outputs.count == 1:
                    pending.continuation.resume(returning: BatchedResult(
                        output: outputs[0], queueSeconds: Double(start - min(start, pending.enqueued)) / 1e9,
                        computeSeconds: computeSeconds, batchRequests: 1, batchRows: pending.rows))
                case .success:
                    pending.continuation.resume(throwing: ServeError.internalError("the engine returned the wrong number of results"))
                case .failure(let error):
                    pending.continuation.resume(throwing: error)
                }
            }
        }
        return computeSeconds
    }
}
