import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

/// `kiln serve`: loads the model repository and serves the NLU API, the Open Inference Protocol v2,
/// the admin API and `/metrics` over HTTP (Hummingbird 2).
///
/// ```swift
/// let server = try KilnServer(configuration: configuration, engineFactory: factory, logger: logger)
/// try await server.run()                 // until SIGTERM/SIGINT, then drains and returns
/// ```
public final class KilnServer: Sendable {
    /// How the server runs.
    public let configuration: ServeConfiguration
    /// The loaded models.
    public let models: ModelManager
    /// The Prometheus metrics.
    public let metrics: ServeMetrics
    private let logger: Logger
    private let state = ServerState()

    /// Creates a server; nothing is loaded or bound until ``run(gracefulShutdownSignals:onRunning:)``.
    /// - Parameters:
    ///   - configuration: address, repository, limits, per-model settings, admin token.
    ///   - engineFactory: builds engines (the single place to swap the reference executor for a compiled engine).
    ///   - logger: the server's logger; each request logs with a `request_id`.
    /// - Throws: ``ServeError/modelLoadFailed(_:)`` when the repository does not exist.
    public init(configuration: ServeConfiguration, engineFactory: @escaping EngineFactory, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        metrics = ServeMetrics()
        models = ModelManager(
            repository: try ModelRepository(root: configuration.modelRepository), configuration: configuration,
            engineFactory: engineFactory, metrics: metrics, logger: logger)
    }

    /// Loads the models, then serves until a shutdown signal (or ``ServerHandle/stop()``), then stops
    /// accepting connections, finishes in-flight requests and drains the batchers.
    /// - Parameters:
    ///   - gracefulShutdownSignals: signals that start a graceful shutdown.
    ///   - onRunning: called with the bound port once the server listens.
    public func run(
        gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint],
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) async throws {
        let group = try await makeServiceGroup(gracefulShutdownSignals: gracefulShutdownSignals, onRunning: onRunning)
        try await group.run()
    }

    /// Starts the server in the background (tests, embedding) and returns once it listens.
    /// - Returns: a handle with the bound port and a `stop()` that shuts down gracefully.
    public func start() async throws -> ServerHandle {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        let group = try await makeServiceGroup(gracefulShutdownSignals: []) { port in continuation.yield(port) }
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var iterator = stream.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await task.value
            throw ServeError.unavailable("the server stopped before it started listening")
        }
        return ServerHandle(port: port, group: group, task: task)
    }

    private func makeServiceGroup(gracefulShutdownSignals: [UnixSignal], onRunning: @escaping @Sendable (Int) async -> Void)
        async throws -> ServiceGroup
    {
        try await models.loadAll()
        state.setReady(true)
        let application = Application(
            router: makeRouter(),
            server: Self.httpServer(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "kiln"),
            onServerRunning: { [logger] channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("kiln serve listening on http://\(channel.localAddress?.ipAddress ?? "?"):\(port)")
                await onRunning(port)
            },
            logger: logger)
        let drain = ModelDrainService(models: models, state: state, logger: logger)
        return ServiceGroup(configuration: .init(
            services: [.init(service: drain), .init(service: application)],
            gracefulShutdownSignals: gracefulShutdownSignals, logger: logger))
    }

    /// HTTP/1.1 with each connection's handlers on its event loop thread (fewer thread wake-ups per
    /// request, see EventLoopBoundHTTP1.swift); `KILN_HTTP_HANDLERS=global-pool` keeps Hummingbird's
    /// default (handlers on Swift's global pool), for A/B measurements.
    static func httpServer() -> HTTPServerBuilder {
        if ProcessInfo.processInfo.environment["KILN_HTTP_HANDLERS"] == "global-pool" { return .http1() }
        return .http1OnEventLoop()
    }

    /// The router with every endpoint.
    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        let scope = RequestScope(metrics: metrics, limits: RequestLimits(configuration), logger: logger)
        let pipeline = ParsePipeline(models: models, metrics: metrics)
        NLURoutes(scope: scope, pipeline: pipeline, models: models).register(on: router)
        InferenceProtocolRoutes(scope: scope, models: models, state: state).register(on: router)
        AdminRoutes(scope: scope, models: models, authorization: AdminAuthorization(token: configuration.adminToken))
            .register(on: router)
        let metrics = self.metrics
        router.get("/metrics") { _, _ in
            HTTPReply.bytes(metrics.render(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        return router
    }
}

/// A running server started with ``KilnServer/start()``.
public struct ServerHandle: Sendable {
    /// The port it listens on.
    public let port: Int
    let group: ServiceGroup
    let task: Task<Void, any Error>

    /// Shuts down gracefully (as SIGTERM does) and waits until every request is answered.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// Drains the model batchers after the HTTP server has stopped (services shut down in reverse
/// order, so the application, listed after this, finishes its in-flight requests first).
struct ModelDrainService: Service {
    let models: ModelManager
    let state: ServerState
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        state.setReady(false)
        logger.info("draining model queues")
        await models.shutdown()
        logger.info("kiln serve stopped")
    }
}
