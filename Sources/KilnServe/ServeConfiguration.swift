import Foundation
import Yams

/// Per-model serving settings: batching, queueing, instances and version policy. Every field has a
/// default that works; the config file (`--config FILE`, JSON or YAML) overrides per model.
public struct ModelSettings: Sendable, Codable, Equatable {
    /// The most rows (utterances) one engine call takes.
    public var maxBatchSize: Int = 16
    /// The most real tokens (padding not counted) one engine call takes; nil for no token limit.
    public var maxBatchTokens: Int?
    /// How long the batcher waits for more requests after the first one arrives, in milliseconds
    /// (only when `batchWait` is `always`).
    public var maxQueueDelayMs: Double = 5
    /// When an idle engine instance waits `maxQueueDelayMs` to fill a batch: `when-busy` (default)
    /// never makes a request wait for an idle instance; `always` is the classic window.
    public var batchWait: BatchWait = .whenBusy
    /// Batch sizes to cut batches at (Triton's `preferred_batch_size`); empty: as large as fits.
    public var preferredBatchSizes: [Int] = []
    /// The most requests waiting in the queue; beyond it requests get 429 + Retry-After.
    public var maxQueueSize: Int = 256
    /// How long a request may wait in the queue before it fails with 503, in milliseconds.
    public var queueTimeoutMs: Double = 10_000
    /// Engine instances, each on its own worker thread.
    public var instances: Int = 1
    /// Which version serves: nil for the latest on disk.
    public var version: Int?
    /// The calibration cache for `--precision int8` (from `kiln calibrate`), relative to the version
    /// folder or absolute; nil: `calibration.json` in the version folder.
    public var calibration: String?
    /// GEMMs (node names, see `kiln inspect`) an int8 engine keeps in fp32, e.g. the ones the
    /// mixed-precision search of `kiln build --max-intent-drop` chose.
    public var keepFP32: [String] = []
    /// Whether a version runs its engines on the common shapes before it reports ready.
    public var warmUp: Bool = true

    public init() {}

    /// Checks the values a decoder cannot: sizes and delays in range.
    /// - Parameter context: where the settings came from, for the message.
    /// - Throws: ``ServeError/badRequest(_:)`` naming the first field out of range.
    public func validate(context: String) throws {
        func fail(_ field: String, _ rule: String) -> ServeError { .badRequest("\(context).\(field) \(rule)") }
        if maxBatchSize < 1 { throw fail("max_batch_size", "must be at least 1") }
        if let maxBatchTokens, maxBatchTokens < 1 { throw fail("max_batch_tokens", "must be at least 1") }
        if maxQueueDelayMs < 0 { throw fail("max_queue_delay_ms", "must not be negative") }
        if let bad = preferredBatchSizes.first(where: { $0 < 1 || $0 > maxBatchSize }) {
            throw fail("preferred_batch_sizes", "must be between 1 and max_batch_size (\(maxBatchSize)); got \(bad)")
        }
        if maxQueueSize < 1 { throw fail("max_queue_size", "must be at least 1") }
        if queueTimeoutMs <= 0 { throw fail("queue_timeout_ms", "must be positive") }
        if instances < 1 { throw fail("instances", "must be at least 1") }
        if let version, version < 1 { throw fail("version", "must be at least 1") }
    }

    enum CodingKeys: String, CodingKey {
        case maxBatchSize = "max_batch_size"
        case maxBatchTokens = "max_batch_tokens"
        case maxQueueDelayMs = "max_queue_delay_ms"
        case batchWait = "batch_wait"
        case preferredBatchSizes = "preferred_batch_sizes"
        case maxQueueSize = "max_queue_size"
        case queueTimeoutMs = "queue_timeout_ms"
        case instances
        case version
        case versionPolicy = "version_policy"
        case calibration
        case keepFP32 = "keep_fp32"
        case warmUp = "warm_up"
    }

    private struct VersionPolicy: Codable { var specific: Int? }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init()
        maxBatchSize = try container.decodeIfPresent(Int.self, forKey: .maxBatchSize) ?? maxBatchSize
        maxBatchTokens = try container.decodeIfPresent(Int.self, forKey: .maxBatchTokens)
        maxQueueDelayMs = try container.decodeIfPresent(Double.self, forKey: .maxQueueDelayMs) ?? maxQueueDelayMs
        batchWait = try container.decodeIfPresent(BatchWait.self, forKey: .batchWait) ?? batchWait
        preferredBatchSizes = try container.decodeIfPresent([Int].self, forKey: .preferredBatchSizes) ?? preferredBatchSizes
        maxQueueSize = try container.decodeIfPresent(Int.self, forKey: .maxQueueSize) ?? maxQueueSize
        queueTimeoutMs = try container.decodeIfPresent(Double.self, forKey: .queueTimeoutMs) ?? queueTimeoutMs
        instances = try container.decodeIfPresent(Int.self, forKey: .instances) ?? instances
        version = try container.decodeIfPresent(Int.self, forKey: .version)
        calibration = try container.decodeIfPresent(String.self, forKey: .calibration)
        keepFP32 = try container.decodeIfPresent([String].self, forKey: .keepFP32) ?? keepFP32
        warmUp = try container.decodeIfPresent(Bool.self, forKey: .warmUp) ?? warmUp
        if version == nil, let policy = try? container.decodeIfPresent(VersionPolicy.self, forKey: .versionPolicy) {
            version = policy.specific
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(maxBatchSize, forKey: .maxBatchSize)
        try container.encodeIfPresent(maxBatchTokens, forKey: .maxBatchTokens)
        try container.encode(maxQueueDelayMs, forKey: .maxQueueDelayMs)
        try container.encode(batchWait, forKey: .batchWait)
        try container.encode(preferredBatchSizes, forKey: .preferredBatchSizes)
        try container.encode(maxQueueSize, forKey: .maxQueueSize)
        try container.encode(queueTimeoutMs, forKey: .queueTimeoutMs)
        try container.encode(instances, forKey: .instances)
        try container.encodeIfPresent(version, forKey: .version)
        try container.encodeIfPresent(calibration, forKey: .calibration)
        try container.encode(keepFP32, forKey: .keepFP32)
        try container.encode(warmUp, forKey: .warmUp)
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

    /// The config file (JSON, or the same keys in YAML): `{"models": {"<name>": {ModelSettings...}}, "defaults": {...},
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

        /// Decodes a config file: YAML when the path ends in `.yaml`/`.yml`, JSON otherwise. Both go
        /// through the same `Codable` keys, so a wrong type or key gives the same message in either.
        static func decode(_ data: Data, path: String) throws -> File {
            let isYAML = path.hasSuffix(".yaml") || path.hasSuffix(".yml")
            do {
                if isYAML {
                    guard let text = String(data: data, encoding: .utf8) else {
                        throw ServeError.badRequest("config file \(path): not UTF-8 text")
                    }
                    // A YAML file with only comments has no document; treat it as an empty config.
                    if try Yams.compose(yaml: text) == nil { return File() }
                    return try YAMLDecoder().decode(File.self, from: text)
                }
                return try JSONDecoder().decode(File.self, from: data)
            } catch let error as ServeError {
                throw error
            } catch let error as YamlError {
                throw ServeError.badRequest("config file \(path): invalid YAML: \(error)")
            } catch {
                throw ServeError.badRequest("config file \(path): \(DecodingErrorText.describe(error))")
            }
        }
    }

    /// Applies a config file on top of this configuration.
    /// - Parameter url: a JSON file, or a YAML file (`.yaml`/`.yml`); both have the same keys.
    /// - Throws: ``ServeError/badRequest(_:)`` describing what is wrong with the file.
    public mutating func apply(configFile url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ServeError.badRequest("cannot read config file \(url.path): \(error.localizedDescription)")
        }
        let file = try File.decode(data, path: url.path)
        for (name, settings) in (file.models ?? [:]).sorted(by: { $0.key < $1.key }) {
            try settings.validate(context: "config file \(url.path): models.\(name)")
        }
        try file.defaults?.validate(context: "config file \(url.path): defaults")
        if let defaults = file.defaults { defaultModelSettings = defaults }
        for (name, settings) in file.models ?? [:] { modelSettings[name] = settings }
        if let token = file.adminToken, !token.isEmpty { adminToken = token }
        if let limit = file.maxBodyBytes { maxBodyBytes = limit }
        if let limit = file.maxTextCharacters { maxTextCharacters = limit }
        if let load = file.load { models = load }
    }
}
