import Foundation
import AsyncHTTPClient
import NIOCore
import NIOPosix

/// Names a failed request's cause for the report's `error_kinds`, so "the server said 503" and
/// "the client gave up" and "nothing was listening" stay apart.
public enum ErrorKind {
    /// The kind for a non-2xx answer: `http_503`.
    public static func http(status: Int) -> String { "http_\(status)" }

    /// The kind for a thrown error.
    /// - Parameter error: what the HTTP client threw.
    /// - Returns: `timeout`, `connect_timeout`, `connection_refused`, `connection_closed`, `connection`, or `other`.
    public static func classify(_ error: any Error) -> String {
        if let clientError = error as? HTTPClientError {
            switch clientError {
            case .deadlineExceeded, .readTimeout, .writeTimeout: return "timeout"
            case .connectTimeout: return "connect_timeout"
            case .remoteConnectionClosed: return "connection_closed"
            default: return "other"
            }
        }
        if let connectionError = error as? NIOConnectionError {
            return connectionError.connectionErrors.contains { isRefused($0.error) } ? "connection_refused" : "connection"
        }
        if isRefused(error) { return "connection_refused" }
        if error is IOError || error is ChannelError { return "connection" }
        return "other"
    }

    private static func isRefused(_ error: any Error) -> Bool {
        guard let ioError = error as? IOError else { return false }
        return ioError.errnoCode == ECONNREFUSED
    }
}
