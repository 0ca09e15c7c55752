import AsyncHTTPClient
import Foundation
import KilnEventLoop
import NIOCore
import NIOPosix

/// Settings shared by every run of a sweep.
public struct LoadSettings: Sendable {
    /// Seconds measured per run.
    public var duration: Double = 20
    /// Seconds of the same load before each run, not measured (connections, caches, JIT-free servers warming up).
    public var warmup: Double = 3
    /// Seconds before a request counts as a `timeout` error.
    public var timeout: Double = 10
    /// The latency target for SLA attainment, in milliseconds.
    public var slaMilliseconds: Double = 100
    /// Connections the client may open in open-loop runs (closed loop opens one per client).
    public var openLoopConnections: Int = 256
    /// Seed of the Poisson schedules.
    public var seed: UInt64 = 42
    /// Keep every latency of the measured window in the result (for latency CDFs).
    public var keepRawLatencies = false
    /// Report what finished in each span of this many seconds of the measured window (soaks); nil: no intervals.
    public var reportInterval: Double?

    public init() {}
}

/// Sends the load of one run and records every outcome: closed loop (N clients back to back) or
/// open loop (Poisson arrivals, timed from their scheduled instants).
///
/// Request bodies are encoded once up front; texts are taken in order, each client starting at its own
/// offset, so every run walks the same natural mix of lengths.
public struct LoadGenerator: Sendable {
    /// Where requests go.
    public let endpoint: String
    /// One ready body per utterance.
    public let bodies: [ByteBuffer]
    /// The sweep's settings.
    public let settings: LoadSettings

    /// Creates a generator.
    /// - Parameters:
    ///   - endpoint: the URL every request is POSTed to.
    ///   - bodies: JSON bodies, one per utterance (at least one).
    ///   - settings: durations, timeout, SLA.
    public init(endpoint: String, bodies: [[UInt8]], settings: LoadSettings) {
        precondition(!bodies.isEmpty, "a load needs at least one request body")
        self.endpoint = endpoint
        self.bodies = bodies.map { ByteBuffer(bytes: $0) }
        self.settings = settings
    }

    /// Sends one request and fails with a clear message if the server cannot be reached or rejects the
    /// request shape, so a sweep never runs for minutes against the wrong address or API.
    /// - Throws: ``BenchError/serverUnreachable(url:detail:)`` or ``BenchError/requestRejected(url:status:body:)``.
    public func preflight() async throws {
        let client = makeClient(connections: 1)
        let outcome: Result<Void, any Error>
        do { try await checkFirstRequest(client: client); outcome = .success(()) } catch { outcome = .failure(error) }
        await Self.shutdown(client)
        try outcome.get()
    }

    private func checkFirstRequest(client: HTTPClient) async throws {
        var request = makeRequest(body: bodies[0])
        request.headers.replaceOrAdd(name: "Connection", value: "close")
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(settings.timeout * 1000)))
            let body = try await response.body.collect(upTo: 1 << 20)
            let status = Int(response.status.code)
            // 4xx other than back-pressure (429) means every request will fail the same way.
            if (400..<500).contains(status), status != 429 {
                throw BenchError.requestRejected(url: endpoint, status: status, body: String(buffer: body).prefix(300).description)
            }
        } catch let error as BenchError {
            throw error
        } catch {
            let kind = ErrorKind.classify(error)
            if kind.hasPrefix("connection") || kind == "connect_timeout" || kind == "timeout" {
                throw BenchError.serverUnreachable(url: endpoint, detail: "\(kind) (\(error))")
            }
            throw BenchError.serverUnreachable(url: endpoint, detail: "\(error)")
        }
    }

    /// Runs warm-up then the measured window for one load.
    /// - Parameters:
    ///   - mode: closed loop with N clients or open loop at R requests/s.
    ///   - progress: called with the live recorder and the elapsed seconds of the measured window each second.
    ///   - onInterval: with ``LoadSettings/reportInterval`` set, called as each interval closes (the last one,
    ///     the tail after the offered window, too).
    /// - Returns: the run's result.
    public func run(_ mode: LoadMode, progress: (@Sendable (RecorderSnapshot, Double) -> Void)? = nil,
                    onInterval: (@Sendable (IntervalResult) -> Void)? = nil) async -> RunResult {
        let connections: Int
        switch mode {
        case .closed(let concurrency): connections = concurrency
        case .open: connections = settings.openLoopConnections
        }
        // Open loop: one event loop thread of its own sends, times and receives every request
        // (see ``openLoop(offsets:start:client:recorder:)``).
        var openLoopGroup: MultiThreadedEventLoopGroup?
        if case .open = mode { openLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1) }
        let client = makeClient(connections: connections, group: openLoopGroup)
        if settings.warmup > 0 {
            _ = await measure(mode, duration: settings.warmup, client: client, recorder: LatencyRecorder(slaMilliseconds: settings.slaMilliseconds))
        }
        let recorder = LatencyRecorder(slaMilliseconds: settings.slaMilliseconds, keepRaw: settings.keepRawLatencies)
        let start = ContinuousClock.now
        let reporter = progress.map { report in
            Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    if Task.isCancelled { break }
                    report(recorder.snapshot(), Self.seconds(ContinuousClock.now - start))
                }
            }
        }
        let intervals = settings.reportInterval.map { IntervalClock(recorder: recorder, start: start, length: $0, report: onInterval) }
        let ticking = intervals.map { clock in Task { await clock.tick() } }
        let elapsed = await measure(mode, duration: settings.duration, client: client, recorder: recorder)
        reporter?.cancel()
        ticking?.cancel()
        await ticking?.value
        intervals?.close()
        await Self.shutdown(client)
        try? await openLoopGroup?.shutdownGracefully()
        var result = RunResult(snapshot: recorder.snapshot(), mode: mode, elapsed: elapsed, slaMilliseconds: settings.slaMilliseconds)
        result.intervals = intervals?.results
        return result
    }

    /// Offers the load for `duration` seconds, waits for the last answer, and returns the seconds elapsed.
    func measure(_ mode: LoadMode, duration: Double, client: HTTPClient, recorder: LatencyRecorder) async -> Double {
        let start = ContinuousClock.now
        switch mode {
        case .closed(let concurrency):
            await closedLoop(clients: concurrency, until: start + .seconds(duration), client: client, recorder: recorder)
        case .open(let rate):
            let offsets = ArrivalSchedule.poisson(rate: rate, duration: duration, seed: settings.seed)
            let loop = client.eventLoopGroup.next()
            await withTaskExecutorPreference(EventLoopTaskExecutor(loop)) {
                await openLoop(offsets: offsets, start: start, loop: loop, client: client, recorder: recorder)
            }
        }
        return Self.seconds(ContinuousClock.now - start)
    }

    /// N clients, each sending its next request as soon as the last is answered, until the deadline.
    private func closedLoop(clients: Int, until deadline: ContinuousClock.Instant, client: HTTPClient, recorder: LatencyRecorder) async {
        let stride = max(1, bodies.count / max(1, clients))
        await withDiscardingTaskGroup { group in
            for clientIndex in 0..<clients {
                group.addTask {
                    var index = clientIndex * stride
                    while ContinuousClock.now < deadline {
                        let sentAt = ContinuousClock.now
                        let ok = await send(bodies[index % bodies.count], timedFrom: sentAt, client: client, recorder: recorder)
                        index += 1
                        // A dead server answers instantly; don't spin a core on refused connections.
                        if !ok { try? await Task.sleep(for: .milliseconds(10)) }
                    }
                }
            }
        }
    }

    /// Sends request i at `start + offsets[i]` whatever happened to the earlier ones.
    ///
    /// Runs on `loop`, the client's only event loop (the caller prefers it as task executor): the
    /// wait for each arrival is a timer of that loop and each request's task, its connection's
    /// reads and writes and its latency record all stay on that thread. With Swift's global pool
    /// and `Task.sleep`, every request crossed threads four times (timer -> pool -> event loop ->
    /// pool), which cost twice the CPU per request of the closed loop.
    private func openLoop(offsets: [Double], start: ContinuousClock.Instant, loop: any EventLoop, client: HTTPClient,
                          recorder: LatencyRecorder) async {
        await withDiscardingTaskGroup { group in
            for (index, offset) in offsets.enumerated() {
                let scheduled = start + .nanoseconds(Int64(offset * 1e9))
                let wait = scheduled - ContinuousClock.now
                if wait > .zero {
                    let (seconds, attoseconds) = wait.components
                    let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
                    try? await loop.scheduleTask(in: .nanoseconds(nanoseconds)) {}.futureResult.get()
                }
                let body = bodies[index % bodies.count]
                group.addTask {
                    // Timed from the schedule, not from when the task got to run: a late send is the server's queue too.
                    // How late it is leaving is recorded beside it, so a starved generator shows itself.
                    recorder.recordSendLag(ContinuousClock.now - scheduled)
                    _ = await send(body, timedFrom: scheduled, client: client, recorder: recorder)
                }
            }
        }
    }

    /// Sends one request; records its latency or its error kind. Returns whether it succeeded.
    private func send(_ body: ByteBuffer, timedFrom start: ContinuousClock.Instant, client: HTTPClient, recorder: LatencyRecorder) async -> Bool {
        recorder.recordSent()
        do {
            let response = try await client.execute(makeRequest(body: body), timeout: .milliseconds(Int64(settings.timeout * 1000)))
            _ = try await response.body.collect(upTo: 16 << 20)
            let status = Int(response.status.code)
            guard (200..<300).contains(status) else {
                recorder.recordError(kind: ErrorKind.http(status: status))
                return true  // the server answered; no back-off needed
            }
            recorder.recordSuccess(latency: ContinuousClock.now - start)
            return true
        } catch {
            recorder.recordError(kind: ErrorKind.classify(error))
            return false
        }
    }

    private func makeRequest(body: ByteBuffer) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(body)
        return request
    }

    /// A client on `group` (nil: NIO's shared event loops).
    private func makeClient(connections: Int, group: MultiThreadedEventLoopGroup? = nil) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, connections))
        configuration.timeout = .init(connect: .milliseconds(Int64(settings.timeout * 1000)))
        if let group { return HTTPClient(eventLoopGroupProvider: .shared(group), configuration: configuration) }
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Closes a client's connections (its event loops are the shared singleton and stay up).
    private static func shutdown(_ client: HTTPClient) async {
        try? await client.shutdown()
    }

    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

/// Closes a reporting interval every `length` seconds of a run's measured window, on the clock (no drift).
final class IntervalClock: @unchecked Sendable {
    // @unchecked: `results` is appended by `tick()` and then once by `close()`, which runs only after the
    // ticking task has finished; it is read after that.
    private let recorder: LatencyRecorder
    private let start: ContinuousClock.Instant
    private let length: Double
    private let report: (@Sendable (IntervalResult) -> Void)?
    private(set) var results: [IntervalResult] = []

    init(recorder: LatencyRecorder, start: ContinuousClock.Instant, length: Double, report: (@Sendable (IntervalResult) -> Void)?) {
        (self.recorder, self.start, self.length, self.report) = (recorder, start, length, report)
    }

    /// Closes one interval per `length` seconds until cancelled.
    func tick() async {
        while true {
            let boundary = start + .nanoseconds(Int64(Double(results.count + 1) * length * 1e9))
            do { try await Task.sleep(until: boundary, clock: .continuous) } catch { return }
            append(recorder.takeInterval(), end: boundary)
        }
    }

    /// Closes the last, partial interval (requests that finished after the last boundary).
    func close() {
        append(recorder.takeInterval(), end: ContinuousClock.now)
    }

    private func append(_ snapshot: RecorderSnapshot, end: ContinuousClock.Instant) {
        let from = Double(results.count) * length
        let result = IntervalResult(index: results.count + 1, startSeconds: from,
                                    durationSeconds: max(LoadGenerator.seconds(end - start) - from, 1e-9), snapshot: snapshot)
        results.append(result)
        report?(result)
    }
}
