import Foundation

/// Per-model serving settings: batching, queueing, instances and version policy. Every field has a
/// default that works; the config file (`--config FILE`, JSON) overrides per model.
public struct ModelSettings: Sendable, Codable, Equatable {
    /// The most rows (utterances) one engine call takes.
    public var maxBatchSize: Int = 16
    /// How long the batcher waits for more requests after the first one arrives, in milliseconds.
    public var maxQueueDelayMs: Double = 5
    /// The most requests waiting in the queue; beyond it requests get 429 + Retry-After.
    public var maxQueueSize: Int = 256
    /// How long a request may wait in the queue before it fails with 503, in milliseconds.
    public var queueTimeoutMs: Double = 10_000
    /// Engine instances, each on its own worker thread.
    public var instances: Int = 1
    /// Which version serves: nil for the latest on disk.
    public var version: Int?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case maxBatchSize = "max_batch_size"
        case maxQueueDelayMs = "max_queue_delay_ms"
        case maxQueueSize = "max_queue_size"
        case queueTimeoutMs = "queue_timeout_ms"
        case instances
        case version
        case versionPolicy = "version_policy"
    }

    private struct VersionPolicy: Codable { var specific: Int? }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        maxBatchSize = try container.decodeIfPresent(Int.self, forKey: .maxBatchSize) ?? maxBatchSize
        maxQueueDelayMs = try container.decodeIfPresent(Double.self, forKey: .maxQueueDelayMs) ?? maxQueueDelayMs
        maxQueueSize = try container.decodeIfPresent(Int.self, forKey: .maxQueueSize) ?? maxQueueSize
        queueTimeoutMs = try container.decodeIfPresent(Double.self, forKey: .queueTimeoutMs) ?? queueTimeoutMs
        instances = try container.decodeIfPresent(Int.self, forKey: .instances) ?? instances
        version = try container.decodeIfPresent(Int.self, forKey: .version)
        if version == nil, let policy = try? container.decodeIfPresent(VersionPolicy.self, forKey: .versionPolicy) {
            version = policy.specific
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(maxBatchSize, forKey: .maxBatchSize)
        try container.encode(maxQueueDelayMs, forKey: .maxQueueDelayMs)
        try container.encode(maxQueueSize, forKey: .maxQueueSize)
        try container.encode(queueTimeoutMs, forKey: .queueTimeoutMs)
        try container.encode(instances, forKey: .instances)
        try container.encodeIfPresent(version, forKey: .version)
    }
}

/// How the server runs: where it listens, what it serves, its limits and its admin token.
public struct ServeConfiguration: Sendable {
    /// The model repository directory.
    public var modelRepository: URL
    /// The address to bind (loopback by default).
    public var host: String = "127.0.0.1"
    /// The port to bind; 0 picks a free one (tests).
    public var port: Int = 8080
    /// Engine threads per instance, passed to engines that use them.
    public var threads: Int?
    /// Settings for models the config file does not mention.
    public var defaultModelSettings = ModelSettings()
    /// Per-model overrides, by model name.
    public var modelSettings: [String: ModelSettings] = [:]
    /// Models to load at start; nil loads every model in the repository.
    public var models: [String]?
    /// The bearer token the admin API requires; nil disables the admin API.
    public var adminToken: String?
    /// The largest request body accepted, in bytes.
    public var maxBodyBytes: Int = 8 << 20
    /// The longest text `/v1/parse` accepts, in characters (Unicode scalars).
    public var maxTextCharacters: Int = 20_000
    /// The most texts one `/v1/parse/batch` request may carry.
    public var maxBatchTexts: Int = 256
    /// The deepest JSON nesting accepted.
    public var maxJSONDepth: Int = 32

    /// A configuration with defaults for everything but the repository.
    public init(modelRepository: URL) {
        self.modelRepository = modelRepository
    }

    /// The settings for one model.
    public func settings(for model: String) -> ModelSettings {
        modelSettings[model] ?? defaultModelSettings
    }

    /// The config file (JSON): `{"models": {"<name>": {ModelSettings...}}, "defaults": {...},
    /// "admin_token": "...", "max_body_bytes": N, "max_text_characters": N, "load": ["name", ...]}`.
    public struct File: Sendable, Codable {
        public var models: [String: ModelSettings]?
        public var defaults: ModelSettings?
        public var adminToken: String?
        public var maxBodyBytes: Int?
        public var maxTextCharacters: Int?
        public var load: [String]?

        enum CodingKeys: String, CodingKey {
            case models, defaults, load
            case adminToken = "admin_token"
            case maxBodyBytes = "max_body_bytes"
            case maxTextCharacters = "max_text_characters"
        }
    }

    /// Applies a config file on top of this configuration.
    /// - Parameter url: a JSON config file.
    /// - Throws: ``ServeError/badRequest(_:)`` describing what is wrong with the file.
    public mutating func apply(configFile url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ServeError.badRequest("cannot read config file \(url.path): \(error.localizedDescription)")
        }
        let file: File
        do { file = try JSONDecoder().decode(File.self, from: data) } catch {
            throw ServeError.badRequest("config file \(url.path): \(DecodingErrorText.describe(error))")
        }
        if let defaults = file.defaults { defaultModelSettings = defaults }
        for (name, settings) in file.models ?? [:] { modelSettings[name] = settings }
        if let token = file.adminToken, !token.isEmpty { adminToken = token }
        if let limit = file.maxBodyBytes { maxBodyBytes = limit }
        if let limit = file.maxTextCharacters { maxTextCharacters = limit }
        if let load = file.load { models = load }
    }
}
