// Each connection's request handling runs on its own NIO event loop thread. How: wrap
// Hummingbird's `HTTP1Channel` and run its `handle` under `withTaskExecutorPreference` with a task
// executor that enqueues onto the connection's event loop. Why: by default Hummingbird handles a
// connection in a task on Swift's global pool, so one /v1/parse crossed threads six times (event
// loop -> pool -> batcher -> pool -> event loop -> client), and on this machine each wake-up of a
// thread that slept through a 10 ms engine call costs ~0.1-0.3 ms (measured: a GET on an idle
// server costs 1.2 ms after a 10 ms pause vs 0.3 ms back to back). On the event loop the request
// parts arrive and the response is written on the same thread with no hop; the only crossings left
// are to the batcher thread and back. Why safe: the handlers never block for long (the engine runs
// on the batcher threads; model builds run in detached tasks, which do not inherit the preference),
// the event loop runs every job it is given in order, and a connection never changes event loop.
import Hummingbird
import HummingbirdCore
import KilnEventLoop
import Logging
import NIOCore

/// Hummingbird's HTTP/1.1 channel whose per-connection task prefers the connection's event loop.
struct EventLoopBoundHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        let executor = EventLoopTaskExecutor(value.channel.eventLoop)
        await withTaskExecutorPreference(executor) {
            await inner.handle(value: value, logger: logger)
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with each connection handled on its event loop thread (see the file header).
    static func http1OnEventLoop(configuration: HTTP1Channel.Configuration = .init()) -> HTTPServerBuilder {
        .init { responder in
            EventLoopBoundHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: configuration))
        }
    }
}
