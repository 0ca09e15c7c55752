import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import KilnServe

@Suite("graceful shutdown", .timeLimit(.minutes(2)))
struct GracefulShutdownTests {
    @Test("stopping (as on SIGTERM) answers every in-flight request before exiting")
    func drainsInFlight() async throws {
        let slow: EngineFactory = { SlowEngine(base: try ServeFixtures.engineFactory($0), seconds: 0.5) }
        let configuration = ServeFixtures.configuration { $0.defaultModelSettings.maxBatchSize = 2 }
        let server = try KilnServer(configuration: configuration, engineFactory: slow, logger: ServeFixtures.logger)
        let handle = try await server.start()
        let port = handle.port
        let requests = (0..<4).map { index in
            Task {
                try await withClient(port: port) { client in
                    try await client.postJSON("/v1/parse", #"{"text": "in flight \#(index)"}"#).status
                }
            }
        }
        // Stop only once every request reached the batcher: the server has accepted them all.
        let batcher = try server.models.resolve(nil).batcher
        try await waitUntil("all four requests are accepted") { batcher.acceptedCount == 4 }
        try await handle.stop()
        for request in requests { #expect(try await request.value == .ok) }
    }
}
