import Foundation
import Prometheus

/// The server's Prometheus metrics, in a registry of its own (so two servers in one process, as in
/// the tests, don't mix). `/metrics` renders ``render()``.
///
/// Labels are only ever loaded model names and versions, endpoint names and status codes, never
/// client-supplied strings, so the number of series stays bounded.
public final class ServeMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry = PrometheusCollectorRegistry()

    static let latencyBuckets: [Double] = [
        0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128]
    static let tokenBuckets: [Double] = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]

    public init() {
        inFlight.set(Double(0))
    }

    private func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// Requests currently being handled.
    public var inFlight: Gauge {
        registry.makeGauge(descriptor: descriptor("kiln_inflight_requests", "Requests being handled"))
    }

    /// Counts a finished request; errors (status >= 400) also count in `kiln_request_errors_total`.
    public func recordRequest(model: String, version: String, endpoint: String, status: Int, seconds: Double) {
        let labels = [("model", model), ("version", version), ("endpoint", endpoint), ("code", String(status))]
        registry.makeCounter(descriptor: descriptor("kiln_requests_total", "Requests by model, version, endpoint and status"), labels: labels)
            .increment()
        if status >= 400 {
            registry.makeCounter(descriptor: descriptor("kiln_request_errors_total", "Failed requests by model, version, endpoint and status"), labels: labels)
                .increment()
        }
        registry.makeValueHistogram(
            descriptor: descriptor("kiln_request_duration_seconds", "End-to-end request latency"),
            labels: [("model", model), ("version", version), ("endpoint", endpoint)], buckets: Self.latencyBuckets
        ).record(seconds)
    }

    /// Records where one request's time went in the batcher.
    public func recordTimings(model: String, version: String, queueSeconds: Double, computeSeconds: Double) {
        let labels = [("model", model), ("version", version)]
        registry.makeValueHistogram(
            descriptor: descriptor("kiln_queue_duration_seconds", "Time requests wait in the batcher queue"),
            labels: labels, buckets: Self.latencyBuckets
        ).record(queueSeconds)
        registry.makeValueHistogram(
            descriptor: descriptor("kiln_compute_duration_seconds", "Engine time of the batch a request ran in"),
            labels: labels, buckets: Self.latencyBuckets
        ).record(computeSeconds)
    }

    /// Records one engine call.
    public func recordBatch(model: String, version: String, requests: Int, rows: Int, tokens: Int) {
        let labels = [("model", model), ("version", version)]
        registry.makeValueHistogram(
            descriptor: descriptor("kiln_batch_size", "Rows per engine call"), labels: labels, buckets: Self.batchBuckets
        ).record(Double(rows))
        registry.makeValueHistogram(
            descriptor: descriptor("kiln_batch_tokens", "Real tokens (padding not counted) per engine call"), labels: labels, buckets: Self.tokenBuckets
        ).record(Double(tokens))
        registry.makeCounter(descriptor: descriptor("kiln_batches_total", "Engine calls"), labels: labels).increment()
    }

    /// Sets a model version's queue depth.
    public func setQueueDepth(model: String, version: String, depth: Int) {
        registry.makeGauge(descriptor: descriptor("kiln_queue_depth", "Requests waiting in the batcher queue"),
                           labels: [("model", model), ("version", version)]).set(Double(depth))
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

    /// The Prometheus text exposition of every metric.
    public func render() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}
