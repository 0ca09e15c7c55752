import Foundation
import Hummingbird

/// The NLU API the chat front end calls: `POST /v1/parse`, `POST /v1/parse/batch`, `GET /v1/models`.
struct NLURoutes: Sendable {
    let scope: RequestScope
    let pipeline: ParsePipeline
    let models: ModelManager

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/parse") { request, _ in
            await scope.handle("parse", request) { body, _, labels in
                let parse = try ParseRequest.decode(body, batch: false, limits: scope.limits)
                labels = try Self.labels(for: parse.model, models: models)
                let result = try await pipeline.parse(parse)[0]
                (labels.model, labels.version) = (result.model, result.version)
                return HTTPReply.bytes(result.jsonBytes())
            }
        }
        router.post("/v1/parse/batch") { request, _ in
            await scope.handle("parse_batch", request) { body, _, labels in
                let parse = try ParseRequest.decode(body, batch: true, limits: scope.limits)
                labels = try Self.labels(for: parse.model, models: models)
                let results = try await pipeline.parse(parse)
                return HTTPReply.bytes(ParseBatchResult(results: results).jsonBytes())
            }
        }
        router.get("/v1/models") { request, _ in
            await scope.handle("models", request, readBody: false) { _, _, _ in
                let list = models.loadedModels().map { model -> [String: Any] in
                    ["name": model.name, "version": model.versionString, "intents": model.card.intentLabels,
                     "slot_labels": model.card.slotLabels, "max_seq_length": model.card.maxSeqLength,
                     "default": model.name == models.defaultModelName]
                }
                return HTTPReply.jsonObject(["models": list])
            }
        }
    }

    /// Metric labels for a request's model (only loaded names become labels).
    static func labels(for name: String?, models: ModelManager) throws -> RequestScope.Labels {
        let model = try models.resolve(name)
        return RequestScope.Labels(model: model.name, version: model.versionString)
    }
}
