import Foundation
import NIOCore
import NIOPosix
import KilnEventLoop
import Testing

@testable import KilnServe

/// The event-loop task executor that keeps a connection's handlers on its event loop thread
/// (EventLoopBoundHTTP1.swift): code under its preference runs on that loop, and comes back to it
/// after a suspension that another thread resumes (as the batcher's worker thread does).
@Suite("event-loop task executor", .timeLimit(.minutes(1)))
struct EventLoopExecutorTests {
    @Test("jobs run on the chosen event loop, also after a resume from another thread")
    func staysOnEventLoop() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loop = group.next()
        let executor = EventLoopTaskExecutor(loop)
        let (before, after, value) = await withTaskExecutorPreference(executor) {
            let before = loop.inEventLoop
            let value: Int = await withCheckedContinuation { continuation in
                let thread = Thread { continuation.resume(returning: 42) }
                thread.start()
            }
            return (before, loop.inEventLoop, value)
        }
        try await group.shutdownGracefully()
        #expect(before)
        #expect(after)
        #expect(value == 42)
    }

    @Test("child tasks inherit the event loop (the /v1/parse/batch fan-out)")
    func childTasksInherit() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loop = group.next()
        let onLoop = await withTaskExecutorPreference(EventLoopTaskExecutor(loop)) {
            await withTaskGroup(of: Bool.self) { tasks in
                for _ in 0..<8 { tasks.addTask { loop.inEventLoop } }
                return await tasks.reduce(true) { $0 && $1 }
            }
        }
        try await group.shutdownGracefully()
        #expect(onLoop)
    }
}
