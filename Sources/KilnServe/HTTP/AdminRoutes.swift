import Foundation
import Hummingbird
import HTTPTypes
import Logging

/// The admin API, behind a bearer token: repository load/unload (v2 repository extension) and
/// roll-out control.
///
/// - `POST /v2/repository/models/{name}/load` — load or reload (body optional:
///   `{"parameters": {"version": N}}`); the old version drains, no request fails.
/// - `POST /v2/repository/models/{name}/unload`
/// - `POST /admin/models/{name}/rollout` — start: ``RolloutPolicy`` as JSON
/// - `GET /admin/models/{name}/rollout` — status
/// - `POST /admin/models/{name}/rollout/promote`, `.../rollout/rollback`
struct AdminRoutes: Sendable {
    let scope: RequestScope
    let models: ModelManager
    let authorization: AdminAuthorization

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v2/repository/models/:name/load") { request, context in
            await admin("admin_load", request) { body, logger, labels in
                let name = context.parameters.get("name") ?? ""
                let version = try Self.requestedVersion(body, limits: scope.limits)
                let model = try await models.load(name, version: version)
                labels = .init(model: model.name, version: model.versionString)
                logger.notice("loaded \(model.name) version \(model.version) by admin request")
                return HTTPReply.jsonObject(["name": model.name, "version": model.versionString, "state": "READY"])
            }
        }
        router.post("/v2/repository/models/:name/unload") { request, context in
            await admin("admin_unload", request) { _, logger, _ in
                let name = context.parameters.get("name") ?? ""
                try models.unload(name)
                logger.notice("unloaded \(name) by admin request")
                return HTTPReply.jsonObject(["name": name, "state": "UNAVAILABLE"])
            }
        }
        router.post("/admin/models/:name/rollout") { request, context in
            await admin("admin_rollout", request) { body, _, _ in
                let data = try JSONBody.validated(body, limits: scope.limits)
                let policy: RolloutPolicy
                do { policy = try JSONDecoder().decode(RolloutPolicy.self, from: data) } catch {
                    throw ServeError.badRequest("\(DecodingErrorText.describe(error)); expected {\"candidate_version\": N, \"percent\"?: 10, ...}")
                }
                return HTTPReply.json(try await models.startRollout(context.parameters.get("name") ?? "", policy: policy))
            }
        }
        router.get("/admin/models/:name/rollout") { request, context in
            await admin("admin_rollout", request, readBody: false) { _, _, _ in
                HTTPReply.json(try models.rolloutStatus(context.parameters.get("name") ?? ""))
            }
        }
        router.post("/admin/models/:name/rollout/promote") { request, context in
            await admin("admin_rollout", request) { _, _, _ in
                HTTPReply.json(try models.promote(context.parameters.get("name") ?? ""))
            }
        }
        router.post("/admin/models/:name/rollout/rollback") { request, context in
            await admin("admin_rollout", request) { _, _, _ in
                HTTPReply.json(try models.rollBack(context.parameters.get("name") ?? ""))
            }
        }
    }

    private func admin(
        _ endpoint: String, _ request: Request, readBody: Bool = true,
        _ work: @escaping @Sendable ([UInt8], Logger, inout RequestScope.Labels) async throws -> Response
    ) async -> Response {
        await scope.handle(endpoint, request, readBody: readBody) { body, logger, labels in
            try authorization.check(request)
            return try await work(body, logger, &labels)
        }
    }

    /// The version a load request asks for: `{"parameters": {"version": N}}`, or nil.
    static func requestedVersion(_ body: [UInt8], limits: RequestLimits) throws -> Int? {
        guard !body.isEmpty else { return nil }
        let data = try JSONBody.validated(body, limits: limits)
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ServeError.badRequest("the load request body must be a JSON object")
        }
        guard let parameters = object["parameters"] as? [String: Any], let value = parameters["version"] else { return nil }
        if let number = value as? NSNumber { return number.intValue }
        if let text = value as? String, let number = Int(text) { return number }
        throw ServeError.badRequest("parameters.version must be a version number")
    }
}
