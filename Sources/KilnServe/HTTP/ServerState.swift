import Foundation

/// Whether the server takes traffic: ready once models are loaded, not ready once shutdown begins
/// (so load balancers stop sending before the listener closes).
final class ServerState: @unchecked Sendable {
    /// The server version reported by `GET /v2`.
    static let version = "0.1.0"
    private let lock = NSLock()
    private var ready = false

    var isReady: Bool { lock.withLock { ready } }

    func setReady(_ value: Bool) { lock.withLock { ready = value } }
}
