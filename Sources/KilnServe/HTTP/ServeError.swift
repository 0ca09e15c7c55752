import Foundation
import HTTPTypes

/// Everything that can go wrong while serving a request, each with the HTTP status it maps to and
/// a message that tells the client what to change. Messages never include stack traces or paths
/// outside the model repository.
public enum ServeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The request body is not what the endpoint accepts (bad JSON, wrong types, empty text...).
    case badRequest(String)
    /// The request body is larger than the configured limit.
    case payloadTooLarge(String)
    /// No such model or version is loaded.
    case modelNotFound(String)
    /// The model's queue is full; try again after `retryAfterSeconds`.
    case queueFull(retryAfterSeconds: Int)
    /// The request waited in the queue longer than its timeout.
    case timedOut(String)
    /// The model is being unloaded or the server is shutting down.
    case unavailable(String)
    /// A model could not be loaded from the repository.
    case modelLoadFailed(String)
    /// The admin API was called without a valid bearer token.
    case unauthorized(String)
    /// The admin API is disabled (no token configured).
    case forbidden(String)
    /// The request conflicts with the current state (e.g. a roll-out already running).
    case conflict(String)
    /// The engine failed on a valid request: a server bug, reported without internals.
    case internalError(String)

    /// The HTTP status the error answers with.
    public var status: HTTPResponse.Status {
        switch self {
        case .badRequest: return .badRequest
        case .payloadTooLarge: return .contentTooLarge
        case .modelNotFound: return .notFound
        case .queueFull: return .tooManyRequests
        case .timedOut: return .serviceUnavailable
        case .unavailable: return .serviceUnavailable
        case .modelLoadFailed: return .badRequest
        case .unauthorized: return .unauthorized
        case .forbidden: return .forbidden
        case .conflict: return .conflict
        case .internalError: return .internalServerError
        }
    }

    public var description: String {
        switch self {
        case .badRequest(let message), .payloadTooLarge(let message), .modelNotFound(let message),
            .timedOut(let message), .unavailable(let message), .modelLoadFailed(let message),
            .unauthorized(let message), .forbidden(let message), .conflict(let message), .internalError(let message):
            return message
        case .queueFull(let seconds):
            return "the model's request queue is full; retry after \(seconds) s"
        }
    }
}

/// Short, client-safe descriptions of `DecodingError`s: what was wrong and where.
enum DecodingErrorText {
    static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "the body is not valid JSON" }
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "the body" : "'" + keys.joined(separator: ".").replacingOccurrences(of: ".[", with: "[") + "'"
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context)) has the wrong type (expected \(Self.jsonName(type)))"
        case .valueNotFound(let type, let context):
            return "\(path(context)) is null (expected \(Self.jsonName(type)))"
        case .keyNotFound(let key, _):
            return "missing field '\(key.stringValue)'"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "the body is not valid JSON" : "\(path(context)) is invalid"
        @unknown default:
            return "the body is not valid JSON"
        }
    }

    private static func jsonName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "a boolean"
        default:
            let name = String(describing: type)
            return name.hasPrefix("Array") ? "an array" : (name.hasPrefix("Dictionary") ? "an object" : "an object")
        }
    }
}
