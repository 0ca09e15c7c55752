import ArgumentParser
import Dispatch
import Foundation
import KilnCalibration
import KilnCore
import KilnKernels
import KilnONNX
import KilnRuntime
import KilnServe
import Logging
import Synchronization

/// `kiln serve`: the NLU server (NLU API, Open Inference Protocol v2, admin API, /metrics).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model repository over HTTP: NLU API, Open Inference Protocol v2, metrics.",
        discussion: """
            Examples:
              kiln serve                      # ./models on 127.0.0.1:8080
              kiln serve --model-repository models --port 9000 --instances 2
              KILN_ADMIN_TOKEN=secret kiln serve --config serve.json

            Endpoints:
              POST /v1/parse {"text": "..."}    POST /v1/parse/batch {"texts": [...]}
              GET  /v2/health/live, /v2/health/ready, /v2, /metrics
              GET  /v2/models/NAME[/versions/V][/ready|/config]
              POST /v2/models/NAME[/versions/V]/infer  (JSON or binary tensors)
              POST /v2/repository/index
            Admin (Authorization: Bearer TOKEN):
              POST /v2/repository/models/NAME/load|unload
              POST|GET /admin/models/NAME/rollout
              POST /admin/models/NAME/rollout/promote|rollback

            Config file (JSON, or YAML with the same keys; command-line options override it):
              {"defaults": {...}, "models": {"NAME": {"max_batch_size": 16, "max_batch_tokens": 1024,
               "max_queue_delay_ms": 5, "batch_wait": "when-busy", "max_queue_size": 256,
               "queue_timeout_ms": 10000, "instances": 1, "warm_up": true,
               "calibration": "calibration.json", "keep_fp32": ["NODE"],
               "version_policy": {"specific": 2}}},
               "admin_token": "...", "max_body_bytes": 8388608,
               "max_text_characters": 20000, "load": ["NAME"]}
            warm_up (default true): run each engine on batch 1 and the max batch at 8-64 tokens before the
            version reports ready, so the first requests do not pay first-call costs.

            --precision int8: each model version with a calibration cache from `kiln calibrate` (default
            NAME/VERSION/calibration.json) gets a static int8 engine (heads fp32); the others serve fp32 and
            the log says why. Plans are cached per model, precision and calibration cache.

            SIGTERM or SIGINT: stop accepting, answer in-flight requests, exit.
            """
    )

    @Option(help: ArgumentHelp("The model repository: a directory of NAME/VERSION/ folders (default: ./models, else the repo's models/).", valueName: "dir"))
    var modelRepository: String?

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "The port to listen on (0 picks a free one).")
    var port: Int = 8080

    @Option(help: "CPU threads for the compiled engine's kernels (default: all cores).")
    var threads: Int?

    @Option(help: """
        Engine precision: fp32; bf16 (needs AVX512_BF16; NLU heads stay fp32); or int8: static int8 for every \
        model with a calibration cache (NAME/VERSION/calibration.json, or "calibration" in the config file; \
        "keep_fp32" lists GEMMs to keep fp32), fp32 for the others (logged, and shown in /v2/models/NAME/config \
        and the kiln_model_precision_fallback metric).
        """)
    var precision: String = "fp32"

    @Option(help: "compiled (optimized plans, built on first start and cached in KILN_CACHE_DIR or ~/.cache/kiln/plans), or reference (the exact, slow reference executor).")
    var engine: String = "compiled"

    @Option(help: "cpu, or cuda / cuda:N: serve CUDA fp16 engines on that NVIDIA GPU (built at start, CUDA graphs per shape bucket; one engine per instance).")
    var device: String = "cpu"

    @Option(help: "Engine instances per model, each on its own worker thread.")
    var instances: Int?

    @Option(help: "The most utterances per engine call.")
    var maxBatchSize: Int?

    @Option(help: "The most real tokens (padding not counted) per engine call; long utterances close a batch sooner.")
    var maxBatchTokens: Int?

    @Option(help: "How long the batcher waits to fill a batch, in milliseconds (with --batch-wait always).")
    var maxQueueDelayMs: Double?

    @Option(help: "when-busy (default): an idle engine instance runs what is queued at once, requests batch while every instance is busy; always: an idle instance waits --max-queue-delay-ms to fill a batch.")
    var batchWait: String?

    @Option(help: ArgumentHelp("Batch sizes to cut batches at, e.g. 4,8,16 (Triton's preferred_batch_size): a batch takes the largest one the queue fills.", valueName: "sizes"))
    var preferredBatchSizes: String?

    @Option(help: "The most queued requests per model; more get 429 with Retry-After.")
    var maxQueueSize: Int?

    @Option(help: ArgumentHelp("A config file with per-model settings: JSON, or YAML (.yaml/.yml) with the same keys.", valueName: "file"))
    var config: String?

    @Option(help: "The admin API's bearer token (or set KILN_ADMIN_TOKEN); without one the admin API is disabled.")
    var adminToken: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    var logLevel: String = "info"

    func validate() throws {
        if let instances, instances < 1 { throw ValidationError("--instances must be at least 1") }
        if let maxBatchSize, maxBatchSize < 1 { throw ValidationError("--max-batch-size must be at least 1") }
        if let maxBatchTokens, maxBatchTokens < 1 { throw ValidationError("--max-batch-tokens must be at least 1") }
        if let maxQueueDelayMs, maxQueueDelayMs < 0 { throw ValidationError("--max-queue-delay-ms must not be negative") }
        if let batchWait, BatchWait(rawValue: batchWait) == nil { throw ValidationError("--batch-wait must be when-busy or always") }
        if let preferredBatchSizes, parsedPreferredBatchSizes == nil {
            throw ValidationError("--preferred-batch-sizes must be positive integers separated by commas (got '\(preferredBatchSizes)')")
        }
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error") }
    }

    func run() throws {
        OpenMPWaitPolicy.ensurePassive()  // may replace the process; nothing above it may have side effects
        var configuration = ServeConfiguration(modelRepository: try repositoryURL())
        if let config { try configuration.apply(configFile: URL(fileURLWithPath: config)) }
        configuration.host = host
        configuration.port = port
        configuration.threads = threads
        configuration.adminToken = adminToken ?? ProcessInfo.processInfo.environment["KILN_ADMIN_TOKEN"] ?? configuration.adminToken
        applyOverrides(to: &configuration.defaultModelSettings)
        for name in configuration.modelSettings.keys { applyOverrides(to: &configuration.modelSettings[name]!) }

        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "kiln.serve")
        if let threads { CPUThreading.configure(threadCount: threads) }
        let server = try KilnServer(
            configuration: configuration, engineFactory: try engineFactory(configuration: configuration, logger: logger), logger: logger)
        if let ordinal = try CUDAServe.ordinal(device: device) {
            CUDAServe.publishGPUMetrics(ordinal: ordinal, on: server.metrics, log: { logger.notice("\($0)") })
        }
        try Self.runBlocking { try await server.run() }
    }

    /// The engine every model version runs on: a compiled plan (cached on disk, one shared
    /// engine per version for all its instances), or the reference executor.
    private func engineFactory(configuration: ServeConfiguration, logger: Logger) throws -> EngineFactory {
        guard ["fp32", "bf16", "int8"].contains(precision) else { throw ValidationError("--precision must be fp32, bf16 or int8") }
        if let ordinal = try CUDAServe.ordinal(device: device) {
            let maxBatch = maxBatchSize ?? 64
            return CUDAServe.engineFactory(ordinal: ordinal, maxBatch: maxBatch, log: { logger.info("\($0)") })
        }
        switch engine {
        case "reference" where precision != "fp32":
            throw ValidationError("--engine reference runs fp32 only (got --precision \(precision))")
        case "reference":
            return { directory in try ReferenceExecutor(graph: ONNXImporter().load(directory.modelURL)) }
        case "compiled" where precision == "int8":
            let engines = Int8ServeEngines(configuration: configuration, log: { logger.info("\($0)") })
            return { directory in try engines.engine(for: directory) }
        case "compiled":
            let cache = EngineCache(compiler: PlanCompiler(precision: precision), log: { logger.info("\($0)") })
            return { directory in try cache.engine(for: directory.modelURL) }
        default:
            throw ValidationError("--engine must be compiled or reference")
        }
    }

    private func applyOverrides(to settings: inout ModelSettings) {
        if let instances { settings.instances = instances }
        if let maxBatchSize { settings.maxBatchSize = maxBatchSize }
        if let maxBatchTokens { settings.maxBatchTokens = maxBatchTokens }
        if let maxQueueDelayMs { settings.maxQueueDelayMs = maxQueueDelayMs }
        if let batchWait = batchWait.flatMap(BatchWait.init(rawValue:)) { settings.batchWait = batchWait }
        if let maxQueueSize { settings.maxQueueSize = maxQueueSize }
        if let sizes = parsedPreferredBatchSizes { settings.preferredBatchSizes = sizes }
    }

    /// `--preferred-batch-sizes` as numbers; nil when absent or malformed.
    private var parsedPreferredBatchSizes: [Int]? {
        guard let preferredBatchSizes else { return nil }
        let sizes = preferredBatchSizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, sizes.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
        return sizes.compactMap { $0 }
    }

    /// --model-repository, else ./models, else the models/ folder of the source checkout the tool was built from.
    private func repositoryURL() throws -> URL {
        if let modelRepository { return URL(fileURLWithPath: modelRepository) }
        let local = URL(fileURLWithPath: "models")
        if FileManager.default.fileExists(atPath: local.path) { return local }
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let embedded = packageRoot.appendingPathComponent("models")
        if FileManager.default.fileExists(atPath: embedded.path) { return embedded }
        throw ValidationError("no model repository: ./models does not exist; pass --model-repository DIR")
    }

    /// Runs async work from this synchronous command and waits for it.
    private static func runBlocking(_ work: @escaping @Sendable () async throws -> Void) throws {
        final class Outcome: @unchecked Sendable { var error: (any Error)? }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await work() } catch { outcome.error = error }
            done.signal()
        }
        done.wait()
        if let error = outcome.error { throw error }
    }
}

/// The engines of `kiln serve --precision int8`: a static int8 plan for each model version with a
/// calibration cache, an fp32 plan (reported as a fallback, with the reason) for the others. Plans are
/// cached on disk per (model, precision, CPU) as for fp32, in a folder per calibration cache and
/// kept-fp32 list, so a new cache never reuses an old plan; one engine per plan in memory.
final class Int8ServeEngines: Sendable {
    private let configuration: ServeConfiguration
    private let log: @Sendable (String) -> Void
    private let fp32: EngineCache
    private let int8Caches = Mutex<[String: EngineCache]>([:])

    init(configuration: ServeConfiguration, log: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.log = log
        fp32 = EngineCache(compiler: PlanCompiler(precision: "fp32"), log: log)
    }

    /// The int8 engine of a version, or its fp32 engine with the reason it is not int8.
    func engine(for directory: ModelVersionDirectory) throws -> DescribedEngine {
        let settings = configuration.settings(for: directory.name)
        let calibrationURL = settings.calibration.map { path in
            path.hasPrefix("/") ? URL(fileURLWithPath: path) : directory.url.appendingPathComponent(path)
        } ?? directory.url.appendingPathComponent("calibration.json")
        guard FileManager.default.fileExists(atPath: calibrationURL.path) else {
            return try fallback(directory, because: "no calibration cache at \(calibrationURL.path) (make one with `kiln calibrate \(directory.modelURL.path) --data UTTERANCES -o \(calibrationURL.path)`, or set \"calibration\" in the config file)")
        }
        let table: CalibrationTable
        let cacheBytes: Data
        do {
            cacheBytes = try Data(contentsOf: calibrationURL)
            let modelSHA = SHA256.hexDigest(try Data(contentsOf: directory.modelURL, options: .alwaysMapped))
            table = try CalibrationTable.read(calibrationURL, expectingModelSHA256: modelSHA)
        } catch {
            return try fallback(directory, because: "the calibration cache \(calibrationURL.path) cannot be used: \(error)")
        }
        // The plan depends on the cache's contents and the kept-fp32 list: both key its cache folder.
        let keep = settings.keepFP32.sorted()
        let key = String(SHA256.hexDigest(cacheBytes + Data(keep.joined(separator: "\n").utf8)).prefix(16))
        let cache = int8Caches.withLock { caches in
            if let cache = caches[key] { return cache }
            let compiler = PlanCompiler(
                precision: "int8", int8: Int8Settings(activationScales: table.activationScales(), keepInFP32: Set(keep)))
            let cache = EngineCache(
                directory: EngineCache.defaultDirectory.appendingPathComponent("int8-calibration-\(key)"), compiler: compiler, log: log)
            caches[key] = cache
            return cache
        }
        log("\(directory.name)/\(directory.version): int8 with calibration \(calibrationURL.path) (\(table.samples) utterances)\(keep.isEmpty ? "" : ", \(keep.count) GEMM(s) kept fp32")")
        return DescribedEngine(try cache.engine(for: directory.modelURL), precision: "int8")
    }

    private func fallback(_ directory: ModelVersionDirectory, because reason: String) throws -> DescribedEngine {
        log("\(directory.name)/\(directory.version): serving fp32, not int8: \(reason)")
        return DescribedEngine(try fp32.engine(for: directory.modelURL), precision: "fp32", requestedPrecision: "int8", note: reason)
    }
}
