import Foundation
import Hummingbird
import HTTPTypes
import Logging

/// Per-request bookkeeping every endpoint shares: the request id and its logger, body reading
/// under the size limit, the in-flight gauge, the request/error counters and the latency
/// histogram, and turning any thrown error into a JSON error response.
struct RequestScope: Sendable {
    let metrics: ServeMetrics
    let limits: RequestLimits
    let logger: Logger
    private static let counter = AtomicCounter()

    /// The labels an endpoint fills in once it knows which model answered.
    struct Labels {
        var model = "-"
        var version = "-"
    }

    /// Runs an endpoint.
    /// - Parameters:
    ///   - endpoint: the endpoint's name for metrics (`parse`, `v2_infer`, ...).
    ///   - request: the HTTP request.
    ///   - work: the endpoint; gets the body (if `readBody`), the request's logger and labels to fill.
    /// - Returns: the response (errors included), with an `X-Request-Id` header.
    func handle(
        _ endpoint: String, _ request: Request, readBody: Bool = true,
        _ work: @Sendable ([UInt8], Logger, inout Labels) async throws -> Response
    ) async -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        let requestID = request.headers[HTTPField.Name("X-Request-Id")!].map { String($0.prefix(64)) }
            ?? String(Self.counter.next(), radix: 16)
        var logger = self.logger
        logger[metadataKey: "request_id"] = .string(requestID)
        metrics.inFlight.increment()
        defer { metrics.inFlight.decrement() }
        var labels = Labels()
        var response: Response
        do {
            var body: [UInt8] = []
            if readBody {
                do {
                    let buffer = try await request.body.collect(upTo: limits.maxBodyBytes)
                    body = Array(buffer.readableBytesView)
                } catch {
                    throw ServeError.payloadTooLarge("the request body is larger than the limit of \(limits.maxBodyBytes) bytes")
                }
            }
            response = try await work(body, logger, &labels)
        } catch {
            response = HTTPReply.error(error, requestID: requestID, logger: logger)
        }
        response.headers[HTTPField.Name("X-Request-Id")!] = requestID
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        metrics.recordRequest(model: labels.model, version: labels.version, endpoint: endpoint,
                              status: Int(response.status.code), seconds: seconds)
        logger.debug("\(request.method) \(request.uri.path) -> \(response.status.code) in \(String(format: "%.2f", seconds * 1000)) ms")
        return response
    }
}

/// A thread-safe counter for request ids.
final class AtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: UInt64 = 0

    func next() -> UInt64 {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
