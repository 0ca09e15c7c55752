import Foundation
import KilnCore

/// The NLU request path, stage by stage: tokenize (``TextEncoder``) → queue, batch and infer
/// (``ServedModel/infer(_:priority:timeout:)``) → decode (``NLUResultDecoder``) → a ``ParseResult``.
/// Validation happens before (``ParseRequest``), rendering after (the HTTP layer). During a
/// roll-out, requests in the candidate's share run on both versions; the candidate answers (unless
/// it fails) and the comparison feeds the ``RolloutController``.
public struct ParsePipeline: Sendable {
    let models: ModelManager
    let metrics: ServeMetrics

    /// Creates the pipeline over the loaded models.
    public init(models: ModelManager, metrics: ServeMetrics) {
        self.models = models
        self.metrics = metrics
    }

    /// Parses every text of a validated request.
    /// - Returns: one result per text, in order.
    public func parse(_ request: ParseRequest) async throws -> [ParseResult] {
        // One text (every /v1/parse): no child task, so no extra hop through the executor on the
        // latency-critical path.
        if request.texts.count == 1 { return [try await parseOne(request.texts[0], request: request)] }
        return try await withThrowingTaskGroup(of: (Int, ParseResult).self) { group in
            for (index, text) in request.texts.enumerated() {
                group.addTask { (index, try await parseOne(text, request: request)) }
            }
            var results = [ParseResult?](repeating: nil, count: request.texts.count)
            for try await (index, result) in group { results[index] = result }
            return results.map { $0! }
        }
    }

    private func parseOne(_ text: String, request: ParseRequest) async throws -> ParseResult {
        // A version can be retired between routing and queueing (reload, promotion): route again.
        var attempt = 0
        while true {
            attempt += 1
            let route = try models.route(request.model)
            do {
                if let candidate = route.candidate, let rollout = route.rollout {
                    return try await compare(text, request: request, current: route.serving, candidate: candidate, rollout: rollout)
                }
                return try await run(text, request: request, on: route.serving)
            } catch ServeError.unavailable(let message) {
                if attempt >= 5 { throw ServeError.unavailable(message) }
            }
        }
    }

    /// Runs one text on one model version.
    func run(_ text: String, request: ParseRequest, on model: ServedModel) async throws -> ParseResult {
        let start = DispatchTime.now().uptimeNanoseconds
        // Before tokenizing, so the engine's workers wake during it (`infer` hints again for the
        // v2 path; a second hint costs one uncontended lock).
        model.prepareForRequest()
        let encoded = try model.encoder.encode(text)
        let result = try await model.infer(encoded.engineInput, priority: request.priority, timeout: request.timeout)
        let decoded = try model.decoder.decode(result.output, encoded: encoded, topK: request.topK)
        metrics.recordTimings(model: model.name, version: model.versionString,
                              queueSeconds: result.queueSeconds, computeSeconds: result.computeSeconds)
        let total = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        return ParseResult(
            model: model.name, version: model.versionString, intent: decoded.intents.first, intents: decoded.intents,
            slots: decoded.slots, truncated: encoded.truncated,
            timing: .init(queue: result.queueSeconds * 1000, compute: result.computeSeconds * 1000, total: total))
    }

    private func compare(_ text: String, request: ParseRequest, current: ServedModel, candidate: ServedModel,
                         rollout: RolloutController) async throws -> ParseResult {
        async let currentResult = Result { try await run(text, request: request, on: current) }
        async let candidateResult = Result { try await run(text, request: request, on: candidate) }
        let (a, b) = await (currentResult, candidateResult)
        let verdict = rollout.record(current: Self.outcome(a), candidate: Self.outcome(b))
        models.apply(verdict, for: rollout)
        if case .success(let answer) = b { return answer }
        return try a.get()
    }

    private static func outcome(_ result: Result<ParseResult, any Error>) -> RolloutController.Outcome {
        switch result {
        case .success(let answer):
            let slots = answer.slots.map { "\($0.name)@\($0.start)-\($0.end)" }.joined(separator: ",")
            return .init(failed: false, milliseconds: answer.timing.total, signature: "\(answer.intent?.name ?? "-")|\(slots)")
        case .failure(let error):
            // Client errors (bad text) are not the candidate's fault; count only server-side failures.
            if let error = error as? ServeError, error.status.code < 500 {
                return .init(failed: false, milliseconds: 0, signature: "client-error")
            }
            return .init(failed: true, milliseconds: 0, signature: nil)
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
