import Hummingbird

/// The admin API's bearer-token check. Without a configured token the admin API is disabled.
struct AdminAuthorization: Sendable {
    /// The token clients must send as `Authorization: Bearer <token>`; nil disables the admin API.
    let token: String?

    /// Throws unless the request carries the token.
    func check(_ request: Request) throws {
        guard let token, !token.isEmpty else {
            throw ServeError.forbidden("the admin API is disabled: start kiln serve with --admin-token or KILN_ADMIN_TOKEN")
        }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw ServeError.unauthorized("the admin API needs 'Authorization: Bearer <token>'")
        }
        guard Self.constantTimeEqual(Array(header.dropFirst("Bearer ".count).utf8), Array(token.utf8)) else {
            throw ServeError.unauthorized("the bearer token is not valid")
        }
    }

    /// Compares without returning early, so response time does not leak the token.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}
