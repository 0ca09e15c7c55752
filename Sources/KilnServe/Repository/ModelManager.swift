import Foundation
import Logging

/// What is loaded and what serves: for each model its serving version, and during a roll-out its
/// candidate. Loads, reloads and unloads swap versions atomically; the replaced version drains
/// (finishes every request it already accepted) before its engines stop, so no in-flight request fails.
public final class ModelManager: @unchecked Sendable {
    /// The versions of one model that are loaded.
    struct Slot {
        var serving: ServedModel
        var candidate: ServedModel?
        var rollout: RolloutController?
        /// The last finished roll-out, for the admin API.
        var lastRollout: RolloutController?
    }

    /// Where a request goes: the serving version, plus the candidate when this request is in the
    /// roll-out's share of traffic.
    public struct Route: Sendable {
        public var serving: ServedModel
        public var candidate: ServedModel?
        public var rollout: RolloutController?

        /// A route to one version only, outside any roll-out.
        public init(serving: ServedModel, candidate: ServedModel? = nil, rollout: RolloutController? = nil) {
            self.serving = serving
            self.candidate = candidate
            self.rollout = rollout
        }
    }

    /// The repository models load from.
    public let repository: ModelRepository
    private let configuration: ServeConfiguration
    private let engineFactory: EngineFactory
    private let metrics: ServeMetrics
    private let logger: Logger
    private let lock = NSLock()
    private var slots: [String: Slot] = [:]
    private var defaultModel: String?
    /// Versions that were replaced and are finishing their queues.
    private var draining: [Task<Void, Never>] = []

    /// Creates a manager; nothing is loaded until ``loadAll()`` or ``load(_:version:)``.
    public init(repository: ModelRepository, configuration: ServeConfiguration, engineFactory: @escaping EngineFactory,
                metrics: ServeMetrics, logger: Logger) {
        self.repository = repository
        self.configuration = configuration
        self.engineFactory = engineFactory
        self.metrics = metrics
        self.logger = logger
    }

    /// Loads the configured models (all in the repository by default).
    /// - Throws: the first load failure.
    public func loadAll() async throws {
        let names = configuration.models ?? repository.modelNames()
        guard !names.isEmpty else {
            throw ServeError.modelLoadFailed("the model repository \(repository.root.path) has no models (expected <name>/<version>/model.json)")
        }
        for (index, name) in names.enumerated() {
            logger.info("loading model \(index + 1)/\(names.count): \(name)")
            let model = try await load(name)
            logger.info("loaded \(name) version \(model.version) (\(model.settings.instances) instance(s), max batch \(model.settings.maxBatchSize), \(model.precision))")
        }
        let preferred = repository.defaultModelName()
        lock.withLock { defaultModel = preferred.flatMap { slots[$0] != nil ? $0 : nil } ?? slots.keys.sorted().first }
    }

    /// Loads (or reloads) a model and makes it serve. A running roll-out of the model is cancelled.
    /// - Parameters:
    ///   - name: the model.
    ///   - version: the version; nil for the configured one, else the latest on disk.
    /// - Returns: the newly serving version.
    @discardableResult
    public func load(_ name: String, version: Int? = nil) async throws -> ServedModel {
        let model = try await build(name, version: version)
        let replaced: [ServedModel] = lock.withLock {
            let old = slots[name]
            old?.rollout?.finish(.rolledBack, reason: "the model was reloaded")
            slots[name] = Slot(serving: model, candidate: nil, rollout: nil, lastRollout: old?.rollout ?? old?.lastRollout)
            if defaultModel == nil { defaultModel = name }
            return [old?.serving, old?.candidate].compactMap { $0 }.filter { $0 !== model }
        }
        retire(replaced)
        return model
    }

    /// Unloads a model: new requests get 404, requests already accepted finish.
    /// - Throws: ``ServeError/modelNotFound(_:)`` if it is not loaded.
    public func unload(_ name: String) throws {
        let removed: Slot? = lock.withLock {
            let slot = slots.removeValue(forKey: name)
            if defaultModel == name { defaultModel = slots.keys.sorted().first }
            return slot
        }
        guard let removed else { throw ServeError.modelNotFound("model '\(name)' is not loaded") }
        removed.rollout?.finish(.rolledBack, reason: "the model was unloaded")
        retire([removed.serving, removed.candidate].compactMap { $0 })
    }

    /// The serving version of a model (the default model when `name` is nil), or a specific loaded version.
    /// - Throws: ``ServeError/modelNotFound(_:)`` naming what is loaded.
    public func resolve(_ name: String?, version: Int? = nil) throws -> ServedModel {
        try lock.withLock {
            let key = name ?? defaultModel ?? ""
            guard let slot = slots[key] else {
                let loaded = slots.keys.sorted().joined(separator: ", ")
                throw ServeError.modelNotFound(name == nil
                    ? "no model is loaded" : "model '\(key)' is not loaded (loaded: \(loaded.isEmpty ? "none" : loaded))")
            }
            guard let version, version != slot.serving.version else { return slot.serving }
            if let candidate = slot.candidate, candidate.version == version { return candidate }
            throw ServeError.modelNotFound("model '\(key)' version \(version) is not loaded (serving version \(slot.serving.version))")
        }
    }

    /// Where one NLU request goes, deciding whether it is part of the roll-out's traffic.
    public func route(_ name: String?) throws -> Route {
        let serving = try resolve(name)
        let (candidate, rollout): (ServedModel?, RolloutController?) = lock.withLock {
            guard let slot = slots[serving.name], slot.serving === serving else { return (nil, nil) }
            return (slot.candidate, slot.rollout)
        }
        if let candidate, let rollout, rollout.shouldUseCandidate() {
            return Route(serving: serving, candidate: candidate, rollout: rollout)
        }
        return Route(serving: serving, candidate: nil, rollout: nil)
    }

    /// The loaded models' serving versions, by name.
    public func loadedModels() -> [ServedModel] {
        lock.withLock { slots.values.map(\.serving).sorted { $0.name < $1.name } }
    }

    /// The default model's name.
    public var defaultModelName: String? { lock.withLock { defaultModel } }

    // MARK: Roll-outs

    /// Loads a candidate version and starts sending `policy.percent`% of NLU traffic to it.
    /// - Throws: ``ServeError/conflict(_:)`` when a roll-out is already running.
    public func startRollout(_ name: String, policy: RolloutPolicy) async throws -> RolloutController.Status {
        try policy.validate()
        let current = try resolve(name)
        guard policy.candidateVersion != current.version else {
            throw ServeError.conflict("version \(policy.candidateVersion) of '\(name)' is already serving")
        }
        if lock.withLock({ slots[name]?.rollout != nil }) {
            throw ServeError.conflict("a roll-out of '\(name)' is already running; promote or roll it back first")
        }
        let candidate = try await build(name, version: policy.candidateVersion)
        let controller = RolloutController(model: name, currentVersion: current.version, policy: policy)
        let started: Bool = lock.withLock {
            guard var slot = slots[name], slot.serving === current, slot.rollout == nil else { return false }
            slot.candidate = candidate
            slot.rollout = controller
            slots[name] = slot
            return true
        }
        guard started else {
            retire([candidate])
            throw ServeError.conflict("'\(name)' changed while the candidate was loading; try again")
        }
        metrics.setRollout(model: name, candidate: String(policy.candidateVersion), state: 1, percent: policy.percent)
        logger.info("roll-out of \(name): version \(policy.candidateVersion) gets \(policy.percent)% of traffic")
        return controller.status()
    }

    /// Makes the candidate serve and retires the old version.
    public func promote(_ name: String, reason: String = "promoted by hand") throws -> RolloutController.Status {
        try finishRollout(name, promote: true, reason: reason)
    }

    /// Stops the roll-out and retires the candidate.
    public func rollBack(_ name: String, reason: String = "rolled back by hand") throws -> RolloutController.Status {
        try finishRollout(name, promote: false, reason: reason)
    }

    /// The running or last roll-out of a model.
    public func rolloutStatus(_ name: String) throws -> RolloutController.Status {
        try lock.withLock {
            guard let slot = slots[name] else { throw ServeError.modelNotFound("model '\(name)' is not loaded") }
            guard let controller = slot.rollout ?? slot.lastRollout else {
                throw ServeError.modelNotFound("model '\(name)' has no roll-out")
            }
            return controller.status()
        }
    }

    /// Acts on a controller's verdict (called from the request path).
    func apply(_ verdict: RolloutController.Verdict, for controller: RolloutController) {
        switch verdict {
        case .keepGoing: return
        case .promote(let reason): _ = try? finishRollout(controller.model, promote: true, reason: reason, expected: controller)
        case .rollBack(let reason): _ = try? finishRollout(controller.model, promote: false, reason: reason, expected: controller)
        }
    }

    private func finishRollout(_ name: String, promote: Bool, reason: String, expected: RolloutController? = nil) throws
        -> RolloutController.Status
    {
        let (controller, retired): (RolloutController, ServedModel) = try lock.withLock {
            guard var slot = slots[name], let controller = slot.rollout, let candidate = slot.candidate else {
                throw ServeError.conflict("'\(name)' has no roll-out running")
            }
            if let expected, expected !== controller { throw ServeError.conflict("the roll-out changed") }
            controller.finish(promote ? .promoted : .rolledBack, reason: reason)
            let retired = promote ? slot.serving : candidate
            if promote { slot.serving = candidate }
            slot.candidate = nil
            slot.rollout = nil
            slot.lastRollout = controller
            slots[name] = slot
            return (controller, retired)
        }
        retire([retired])
        let status = controller.status()
        metrics.setRollout(model: name, candidate: String(status.candidateVersion), state: status.state.gaugeValue, percent: 0)
        logger.notice("roll-out of \(name) version \(status.candidateVersion): \(status.state.rawValue) (\(reason))")
        return status
    }

    // MARK: Lifecycle

    /// Drains every loaded version (after the HTTP server stopped taking requests).
    public func shutdown() async {
        let all: [ServedModel] = lock.withLock {
            let models = slots.values.flatMap { [$0.serving, $0.candidate].compactMap { $0 } }
            slots.removeAll()
            return models
        }
        retire(all)
        let tasks = lock.withLock { draining }
        for task in tasks { await task.value }
    }

    private func build(_ name: String, version: Int?) async throws -> ServedModel {
        guard ModelRepository.isSafeName(name) else { throw ServeError.badRequest("'\(name)' is not a valid model name") }
        let settings = configuration.settings(for: name)
        let available = repository.versions(of: name)
        guard let chosen = version ?? settings.version ?? available.last else {
            throw ServeError.modelNotFound("model '\(name)' is not in the repository \(repository.root.lastPathComponent)")
        }
        let directory = try repository.directory(name: name, version: chosen)
        let (factory, metrics) = (engineFactory, metrics)
        // Loading is slow, blocking work (parsing, engine construction): keep it off the request threads.
        let model = try await Task.detached(priority: .utility) {
            try ServedModel(directory: directory, settings: settings, engineFactory: factory, metrics: metrics)
        }.value
        // The build's transient allocations (several times the engine's size) are free now.
        FreedMemory.returnToSystem()
        describe(model)
        return model
    }

    /// Logs what a newly built version runs as: its precision (and why, when it is not the one
    /// asked for) and how long its warm-up took.
    private func describe(_ model: ServedModel) {
        let label = "\(model.name)/\(model.version)"
        if let requested = model.requestedPrecision {
            logger.warning("\(label): serving \(model.precision), not \(requested): \(model.precisionNote ?? "no reason given")")
        }
        if model.settings.warmUp {
            logger.info("\(label): warm-up \(String(format: "%.0f", model.warmUpSeconds * 1000)) ms (batch 1 and \(model.settings.maxBatchSize), sequence buckets up to \(min(model.card.maxSeqLength, EngineWarmUp.sequenceBuckets.last!)) tokens); ready")
        }
    }

    private func retire(_ models: [ServedModel]) {
        guard !models.isEmpty else { return }
        let metrics = self.metrics
        let task = Task {
            for model in models { await model.drain(metrics: metrics) }
        }
        lock.withLock { draining.append(task) }
    }
}
