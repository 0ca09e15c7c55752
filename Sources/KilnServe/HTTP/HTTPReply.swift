import Foundation
import Hummingbird
import HTTPTypes
import Logging

/// Builds the server's responses: JSON bodies, and JSON errors (`{"error": "..."}`, the v2
/// protocol's error shape) that say what to fix and never carry internals.
enum HTTPReply {
    static let jsonContentType = "application/json"

    /// A JSON response from an `Encodable` value.
    static func json<Value: Encodable>(_ value: Value, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return bytes(Array(data), status: status)
    }

    /// A JSON response from a `JSONSerialization`-compatible object.
    static func jsonObject(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        return bytes(Array(data), status: status)
    }

    /// A response with raw bytes.
    static func bytes(_ body: [UInt8], status: HTTPResponse.Status = .ok, contentType: String = jsonContentType,
                      extraHeaders: HTTPFields = [:]) -> Response {
        var headers = extraHeaders
        headers[.contentType] = contentType
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// An empty `200 OK`.
    static func ok() -> Response { Response(status: .ok, headers: [.contentLength: "0"]) }

    /// The error response for any error; unexpected errors become a 500 with the request id only.
    static func error(_ error: any Error, requestID: String, logger: Logger) -> Response {
        let serveError = error as? ServeError ?? Self.classify(error)
        var headers: HTTPFields = [:]
        if case .queueFull(let seconds) = serveError {
            headers[.retryAfter] = String(seconds)
        }
        if serveError.status.code >= 500 {
            logger.error("request failed: \(String(describing: error))")
        } else {
            logger.debug("request refused: \(serveError.description)")
        }
        var message = serveError.description
        if case .internalError = serveError { message = "internal error (request id \(requestID)); the server log has details" }
        let data = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data()
        return bytes(Array(data), status: serveError.status, extraHeaders: headers)
    }

    /// Maps errors from outside Kiln (body collection, engines) to a ``ServeError``.
    static func classify(_ error: any Error) -> ServeError {
        let text = String(describing: error)
        if text.contains("TooManyBytes") || text.contains("contentTooLarge") || text.contains("Payload Too Large") {
            return .payloadTooLarge("the request body is larger than the server's limit")
        }
        return .internalError(text)
    }
}
