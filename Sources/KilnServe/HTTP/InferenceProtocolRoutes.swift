import Foundation
import Hummingbird
import HTTPTypes
import KilnCore

/// The Open Inference Protocol v2 (KServe / Triton HTTP): health, server and model metadata,
/// model config, inference (JSON and the binary tensor data extension) and the repository index.
/// Repository load/unload live in ``AdminRoutes``.
struct InferenceProtocolRoutes: Sendable {
    let scope: RequestScope
    let models: ModelManager
    let state: ServerState
    static let headerLengthField = HTTPField.Name("Inference-Header-Content-Length")!

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v2/health/live") { _, _ in HTTPReply.ok() }
        router.get("/v2/health/ready") { request, _ in
            await scope.handle("health", request, readBody: false) { _, _, _ in
                guard state.isReady, !models.loadedModels().isEmpty else {
                    throw ServeError.unavailable("not ready: models are loading or the server is shutting down")
                }
                return HTTPReply.ok()
            }
        }
        router.get("/v2") { request, _ in
            await scope.handle("v2_metadata", request, readBody: false) { _, _, _ in
                HTTPReply.jsonObject([
                    "name": "kiln", "version": ServerState.version,
                    "extensions": ["binary_tensor_data", "model_repository", "model_configuration"],
                ])
            }
        }
        for suffix in ["", "/versions/:version"] {
            router.get("/v2/models/:name\(suffix)") { request, context in
                await scope.handle("v2_model_metadata", request, readBody: false) { _, _, labels in
                    let model = try resolve(context, &labels)
                    return HTTPReply.jsonObject(Self.metadata(of: model, versions: models.repository.versions(of: model.name)))
                }
            }
            router.get("/v2/models/:name\(suffix)/ready") { request, context in
                await scope.handle("v2_model_ready", request, readBody: false) { _, _, labels in
                    _ = try resolve(context, &labels)
                    return HTTPReply.ok()
                }
            }
            router.get("/v2/models/:name\(suffix)/config") { request, context in
                await scope.handle("v2_model_config", request, readBody: false) { _, _, labels in
                    HTTPReply.jsonObject(Self.config(of: try resolve(context, &labels)))
                }
            }
            router.post("/v2/models/:name\(suffix)/infer") { request, context in
                await scope.handle("v2_infer", request) { body, _, labels in
                    try await infer(request, context: context, body: body, labels: &labels)
                }
            }
        }
        router.post("/v2/repository/index") { request, _ in
            await scope.handle("v2_repository_index", request) { _, _, _ in
                let loaded = Dictionary(models.loadedModels().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
                var index: [[String: Any]] = []
                for name in models.repository.modelNames() {
                    for version in models.repository.versions(of: name) {
                        let ready = loaded[name]?.version == version
                        index.append(["name": name, "version": String(version), "state": ready ? "READY" : "UNAVAILABLE",
                                      "reason": ready ? "" : "not serving"])
                    }
                }
                return HTTPReply.jsonObject(index)
            }
        }
    }

    private func resolve(_ context: BasicRequestContext, _ labels: inout RequestScope.Labels) throws -> ServedModel {
        let name = context.parameters.get("name") ?? ""
        var version: Int?
        if let text = context.parameters.get("version"), !text.isEmpty {
            guard let number = Int(text) else { throw ServeError.badRequest("version '\(text)' is not a number") }
            version = number
        }
        let model = try models.resolve(name, version: version)
        labels = RequestScope.Labels(model: model.name, version: model.versionString)
        return model
    }

    /// One v2 inference. Without a version in the path it goes where NLU traffic goes: during a
    /// roll-out, requests in the candidate's share run on both versions, the comparison (labels of the
    /// top intent and slot tags, ``OutputAgreement``) feeds the roll-out, and the candidate answers
    /// unless it failed. A version in the path pins that version and takes no part in roll-outs.
    private func infer(_ request: Request, context: BasicRequestContext, body: [UInt8], labels: inout RequestScope.Labels) async throws
        -> Response
    {
        var headerLength: Int?
        if let text = request.headers[Self.headerLengthField] {
            guard let value = Int(text) else { throw ServeError.badRequest("Inference-Header-Content-Length is not a number") }
            headerLength = value
        }
        let pinned = !(context.parameters.get("version") ?? "").isEmpty
        var attempt = 0
        while true {
            attempt += 1
            let resolved = try resolve(context, &labels)
            let route = pinned ? ModelManager.Route(serving: resolved) : try models.route(resolved.name)
            let inference = try V2InferenceRequest.decode(body, headerLength: headerLength, model: route.serving, limits: scope.limits)
            let answer: (model: ServedModel, result: BatchedResult<[String: Tensor]>)
            do {
                if let candidate = route.candidate, let rollout = route.rollout {
                    answer = try await compare(inference.input, current: route.serving, candidate: candidate, rollout: rollout)
                } else {
                    answer = (route.serving, try await route.serving.infer(inference.input, priority: 0, timeout: nil))
                }
            } catch ServeError.unavailable(let message) {
                if attempt >= 5 { throw ServeError.unavailable(message) }
                continue  // the version was retired under us (reload, promotion): route again
            }
            let model = answer.model
            labels = RequestScope.Labels(model: model.name, version: model.versionString)
            scope.metrics.recordTimings(model: model.name, version: model.versionString,
                                        queueSeconds: answer.result.queueSeconds, computeSeconds: answer.result.computeSeconds)
            let response = try V2InferenceResponse(model: model, request: inference, outputs: answer.result.output)
            if let length = response.headerLength {
                return HTTPReply.bytes(response.body, contentType: "application/octet-stream",
                                       extraHeaders: [Self.headerLengthField: String(length)])
            }
            return HTTPReply.bytes(response.body)
        }
    }

    /// Runs one request on the current version and the candidate, reports both to the roll-out and
    /// returns the candidate's answer (the current version's if the candidate failed).
    private func compare(_ input: EngineInput, current: ServedModel, candidate: ServedModel, rollout: RolloutController)
        async throws -> (model: ServedModel, result: BatchedResult<[String: Tensor]>)
    {
        async let currentRun = Result { try await current.infer(input, priority: 0, timeout: nil) }
        async let candidateRun = Result { try await candidate.infer(input, priority: 0, timeout: nil) }
        let (a, b) = await (currentRun, candidateRun)
        let verdict = rollout.record(current: Self.outcome(a, card: current.card), candidate: Self.outcome(b, card: candidate.card))
        models.apply(verdict, for: rollout)
        if case .success(let result) = b { return (candidate, result) }
        return (current, try a.get())
    }

    private static func outcome(_ result: Result<BatchedResult<[String: Tensor]>, any Error>, card: ModelCard)
        -> RolloutController.Outcome
    {
        switch result {
        case .success(let answer):
            return .init(failed: false, milliseconds: (answer.queueSeconds + answer.computeSeconds) * 1000,
                         signature: OutputAgreement.signature(of: answer.output, card: card))
        case .failure:
            // The input was validated before either version ran, so a failure here is the server's.
            return .init(failed: true, milliseconds: 0, signature: nil)
        }
    }

    static func metadata(of model: ServedModel, versions: [Int]) -> [String: Any] {
        func tensors(_ infos: [ValueInfo]) -> [[String: Any]] {
            infos.map { ["name": $0.name, "datatype": V2Datatype.name(of: $0.dtype), "shape": V2Datatype.shape($0.shape)] }
        }
        return [
            "name": model.name, "versions": versions.map(String.init), "platform": "kiln",
            "inputs": tensors(model.inputSignature), "outputs": tensors(model.outputSignature),
        ]
    }

    static func config(of model: ServedModel) -> [String: Any] {
        func tensors(_ infos: [ValueInfo], key: String) -> [[String: Any]] {
            infos.map { [
                "name": $0.name, key: V2Datatype.configName(of: $0.dtype),
                "dims": Array(V2Datatype.shape($0.shape).dropFirst()),
            ] }
        }
        let settings = model.settings
        return [
            "name": model.name, "platform": "kiln", "backend": "kiln",
            "version_policy": ["specific": ["versions": [model.version]]],
            "max_batch_size": settings.maxBatchSize,
            "input": tensors(model.inputSignature, key: "data_type"),
            "output": tensors(model.outputSignature, key: "data_type"),
            "dynamic_batching": [
                "max_queue_delay_microseconds": settings.batchWait == .always ? Int(settings.maxQueueDelayMs * 1000) : 0,
                "preferred_batch_size": settings.preferredBatchSizes,
                "default_queue_policy": [
                    "max_queue_size": settings.maxQueueSize,
                    "default_timeout_microseconds": Int(settings.queueTimeoutMs * 1000),
                ],
            ],
            "instance_group": [["count": settings.instances, "kind": "KIND_CPU"]],
            "parameters": parameters(of: model),
        ]
    }

    /// The config's `parameters`: precision (and, when it fell back, what was asked for and why), limits, warm-up.
    private static func parameters(of model: ServedModel) -> [String: Any] {
        var parameters: [String: Any] = [
            "precision": ["string_value": model.precision],
            "max_seq_length": ["string_value": String(model.card.maxSeqLength)],
            "batch_wait": ["string_value": model.settings.batchWait.rawValue],
            "warm_up_ms": ["string_value": String(format: "%.1f", model.warmUpSeconds * 1000)],
        ]
        if let requested = model.requestedPrecision { parameters["requested_precision"] = ["string_value": requested] }
        if let note = model.precisionNote { parameters["precision_note"] = ["string_value": note] }
        return parameters
    }
}
