// Running Swift concurrency tasks on a NIO event loop thread. Why: a task on Swift's global pool
// that talks to a NIO channel crosses threads on every await (pool -> event loop -> pool), and on a
// virtual machine each wake-up of a sleeping thread costs 0.1-0.3 ms. Under
// `withTaskExecutorPreference(EventLoopTaskExecutor(loop))` a task's jobs run on the loop itself, so
// work for a channel on that loop continues on the same thread. `kiln serve` handles each
// connection on its own loop this way, and `kiln bench`'s open loop sends from its client's loop.
// Why safe: the loop runs every job it is given, in order; jobs run this way must not block it.
import NIOCore

/// A task executor that runs jobs on one NIO event loop.
public final class EventLoopTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked: immutable; an EventLoop is thread-safe.
    /// The loop jobs run on.
    public let eventLoop: any EventLoop

    /// An executor for `eventLoop`.
    public init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
