import Foundation
import Prometheus
import Synchronization

/// The server's Prometheus metrics, in a registry of its own (so two servers in one process, as in
/// the tests, don't mix). `/metrics` renders ``render()``.
///
/// Labels are only ever loaded model names and versions, endpoint names and status codes, never
/// client-supplied strings, so the number of series stays bounded.
///
/// The series recorded on every request are looked up in the registry once per label set and
/// kept: the registry's `make...` validates the name and help text and takes its lock on every
/// call, which was most of what metrics cost per request (perf under load).
public final class ServeMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry = PrometheusCollectorRegistry()

    private struct RequestKey: Hashable {
        let model: String, version: String, endpoint: String, status: Int
    }

    /// The series of one (model, version, endpoint, status).
    private struct RequestSeries {
        let requests: Counter
        let errors: Counter?
        let duration: ValueHistogram
    }

    private struct ModelKey: Hashable {
        let model: String, version: String
    }

    /// The per-request and per-batch series of one model version.
    private struct ModelSeries {
        let queueDuration: ValueHistogram
        let computeDuration: ValueHistogram
        let batchSize: ValueHistogram
        let batchTokens: ValueHistogram
        let batches: Counter
        let queueDepth: Gauge
    }

    private let requestSeries = Mutex<[RequestKey: RequestSeries]>([:])
    /// Run before each render: readings taken at scrape time (GPU memory and utilization).
    private let scrapeHooks = Mutex<[@Sendable (ServeMetrics) -> Void]>([])
    private let modelSeries = Mutex<[ModelKey: ModelSeries]>([:])

    static let latencyBuckets: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128]
    static let tokenBuckets: [Double] = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]

    /// Requests currently being handled.
    public let inFlight: Gauge

    public init() {
        inFlight = registry.makeGauge(descriptor: Self.descriptor("kiln_inflight_requests", "Requests being handled"))
        inFlight.set(Double(0))
    }

    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        Self.descriptor(name, help)
    }

    /// The cached series of a request's label set (made on first use).
    private func series(_ key: RequestKey) -> RequestSeries {
        if let found = requestSeries.withLock({ $0[key] }) { return found }
        let labels = [("model", key.model), ("version", key.version), ("endpoint", key.endpoint), ("code", String(key.status))]
        let made = RequestSeries(
            requests: registry.makeCounter(descriptor: descriptor("kiln_requests_total", "Requests by model, version, endpoint and status"), labels: labels),
            errors: key.status >= 400
                ? registry.makeCounter(descriptor: descriptor("kiln_request_errors_total", "Failed requests by model, version, endpoint and status"), labels: labels)
                : nil,
            duration: registry.makeValueHistogram(
                descriptor: descriptor("kiln_request_duration_seconds", "End-to-end request latency"),
                labels: [("model", key.model), ("version", key.version), ("endpoint", key.endpoint)], buckets: Self.latencyBuckets))
        requestSeries.withLock { $0[key] = made }
        return made
    }

    /// The cached series of a model version (made on first use).
    private func series(_ key: ModelKey) -> ModelSeries {
        if let found = modelSeries.withLock({ $0[key] }) { return found }
        let labels = [("model", key.model), ("version", key.version)]
        let made = ModelSeries(
            queueDuration: registry.makeValueHistogram(
                descriptor: descriptor("kiln_queue_duration_seconds", "Time requests wait in the batcher queue"),
                labels: labels, buckets: Self.latencyBuckets),
            computeDuration: registry.makeValueHistogram(
                descriptor: descriptor("kiln_compute_duration_seconds", "Engine time of the batch a request ran in"),
                labels: labels, buckets: Self.latencyBuckets),
            batchSize: registry.makeValueHistogram(
                descriptor: descriptor("kiln_batch_size", "Rows per engine call"), labels: labels, buckets: Self.batchBuckets),
            batchTokens: registry.makeValueHistogram(
                descriptor: descriptor("kiln_batch_tokens", "Real tokens (padding not counted) per engine call"), labels: labels,
                buckets: Self.tokenBuckets),
            batches: registry.makeCounter(descriptor: descriptor("kiln_batches_total", "Engine calls"), labels: labels),
            queueDepth: registry.makeGauge(descriptor: descriptor("kiln_queue_depth", "Requests waiting in the batcher queue"), labels: labels))
        modelSeries.withLock { $0[key] = made }
        return made
    }

    /// Counts a finished request; errors (status >= 400) also count in `kiln_request_errors_total`.
    public func recordRequest(model: String, version: String, endpoint: String, status: Int, seconds: Double) {
        let series = series(RequestKey(model: model, version: version, endpoint: endpoint, status: status))
        series.requests.increment()
        series.errors?.increment()
        series.duration.record(seconds)
    }

    /// Records where one request's time went in the batcher.
    public func recordTimings(model: String, version: String, queueSeconds: Double, computeSeconds: Double) {
        let series = series(ModelKey(model: model, version: version))
        series.queueDuration.record(queueSeconds)
        series.computeDuration.record(computeSeconds)
    }

    /// Records one engine call.
    public func recordBatch(model: String, version: String, requests: Int, rows: Int, tokens: Int) {
        let series = series(ModelKey(model: model, version: version))
        series.batchSize.record(Double(rows))
        series.batchTokens.record(Double(tokens))
        series.batches.increment()
    }

    /// Sets a model version's queue depth.
    public func setQueueDepth(model: String, version: String, depth: Int) {
        series(ModelKey(model: model, version: version)).queueDepth.set(Double(depth))
    }

    /// Marks a model version loaded (1) or not (0), with its precision and instance count.
    public func setModelLoaded(model: String, version: String, precision: String, loaded: Bool) {
        registry.makeGauge(descriptor: descriptor("kiln_model_loaded", "1 while a model version is loaded"),
                           labels: [("model", model), ("version", version), ("precision", precision)]).set(Double(loaded ? 1 : 0))
    }

    /// Marks (1) a version whose engine runs at another precision than the server was asked for
    /// (`--precision int8` without a calibration cache falls back to fp32); 0 once it is unloaded.
    public func setPrecisionFallback(model: String, version: String, requested: String, served: String, active: Bool) {
        registry.makeGauge(
            descriptor: descriptor("kiln_model_precision_fallback", "1 while a version runs at another precision than requested"),
            labels: [("model", model), ("version", version), ("requested", requested), ("precision", served)]).set(Double(active ? 1 : 0))
    }

    /// Publishes a model's roll-out state (0 none, 1 running, 2 promoted, 3 rolled back) and traffic split.
    public func setRollout(model: String, candidate: String, state: Int, percent: Double) {
        registry.makeGauge(descriptor: descriptor("kiln_rollout_state", "Roll-out state: 0 none, 1 running, 2 promoted, 3 rolled back"),
                           labels: [("model", model), ("candidate", candidate)]).set(Double(state))
        registry.makeGauge(descriptor: descriptor("kiln_rollout_traffic_percent", "Share of traffic sent to the candidate"),
                           labels: [("model", model)]).set(percent)
    }

    /// Adds a reading taken at every scrape, before the text is rendered (e.g. GPU gauges:
    /// `kiln serve --device cuda` samples NVML here, so values are as fresh as the scrape).
    public func addScrapeHook(_ hook: @escaping @Sendable (ServeMetrics) -> Void) {
        scrapeHooks.withLock { $0.append(hook) }
    }

    /// Publishes one GPU's memory use and utilization (`gpu` is the CUDA ordinal the server uses).
    public func setGPU(gpu: Int, name: String, memoryUsedBytes: Double, memoryTotalBytes: Double, utilization: Double) {
        let labels = [("gpu", String(gpu)), ("name", name)]
        registry.makeGauge(descriptor: descriptor("kiln_gpu_memory_used_bytes", "GPU memory in use, all processes (NVML)"),
                           labels: labels).set(memoryUsedBytes)
        registry.makeGauge(descriptor: descriptor("kiln_gpu_memory_total_bytes", "GPU memory in all (NVML)"),
                           labels: labels).set(memoryTotalBytes)
        registry.makeGauge(descriptor: descriptor("kiln_gpu_utilization_ratio", "Share of the last NVML sample period a kernel ran, 0-1"),
                           labels: labels).set(utilization)
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> [UInt8] {
        for hook in scrapeHooks.withLock({ $0 }) { hook(self) }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
