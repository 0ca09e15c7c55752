import Foundation

/// How load is offered in one run.
public enum LoadMode: Sendable, Equatable {
    /// N clients, each sending its next request as soon as its last one is answered.
    case closed(concurrency: Int)
    /// Poisson arrivals at a mean rate (requests/s), independent of answers.
    case open(rate: Double)

    /// `closed` or `open`, as written in the JSON report.
    public var name: String {
        switch self {
        case .closed: return "closed"
        case .open: return "open"
        }
    }

    /// `c=N` or `r=R/s`, for tables and progress lines.
    public var label: String {
        switch self {
        case .closed(let concurrency): return "c=\(concurrency)"
        case .open(let rate): return "r=\(BenchFormat.number(rate))/s"
        }
    }
}

/// The result of one run (one point of a sweep), in the shape of the JSON report.
public struct RunResult: Sendable, Equatable, Encodable {
    public var mode: LoadMode
    /// Seconds from the first send to the last answer of the measured window.
    public var durationSeconds: Double
    public var requests: Int
    public var errors: Int
    public var succeeded: Int
    public var errorKinds: [String: Int]
    /// Successful answers per second over `durationSeconds` (errors are not throughput).
    public var throughputRPS: Double
    public var latency: LatencySummary
    public var slaMilliseconds: Double
    /// Share (0-1) of finished requests that succeeded within the SLA.
    public var slaAttainment: Double
    /// Every successful latency in milliseconds, sorted, when asked for (`--raw-latencies`); nil otherwise.
    public var rawLatencies: [Double]?
    /// What finished in each reporting interval, when asked for (`--interval`); nil otherwise.
    public var intervals: [IntervalResult]?
    /// Open loop: P99 and max of how late requests left the generator after their scheduled instant (ms).
    public var sendLagP99: Double?
    public var sendLagMax: Double?

    /// Summarizes a recorder after its run.
    /// - Parameters:
    ///   - snapshot: the final counts.
    ///   - mode: how load was offered.
    ///   - elapsed: the measured window in seconds.
    ///   - slaMilliseconds: the latency target.
    public init(snapshot: RecorderSnapshot, mode: LoadMode, elapsed: Double, slaMilliseconds: Double) {
        self.mode = mode
        durationSeconds = elapsed
        requests = snapshot.done
        errors = snapshot.errors
        succeeded = snapshot.succeeded
        errorKinds = snapshot.errorKinds
        throughputRPS = elapsed > 0 ? Double(snapshot.succeeded) / elapsed : 0
        latency = snapshot.latency
        self.slaMilliseconds = slaMilliseconds
        slaAttainment = snapshot.slaAttainmentPercent / 100
        rawLatencies = snapshot.rawLatencies
        (sendLagP99, sendLagMax) = (snapshot.sendLagP99, snapshot.sendLagMax)
    }

    enum CodingKeys: String, CodingKey {
        case mode, concurrency, rate, requests, errors, succeeded, latency
        case durationSeconds = "duration_s", errorKinds = "error_kinds", throughputRPS = "throughput_rps"
        case latencyMs = "latency_ms", slaMilliseconds = "sla_ms", slaAttainment = "sla_attainment"
        case generator, rawLatencies = "latencies_ms", intervals
        case sendLagP99 = "send_lag_p99_ms", sendLagMax = "send_lag_max_ms"
    }

    /// The percentiles with no successful request are null, not 0 (the Python generator writes the same).
    private struct NullableLatency: Encodable {
        let summary: LatencySummary?
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: LatencySummary.CodingKeys.self)
            for (key, value) in [(LatencySummary.CodingKeys.p50, summary?.p50), (.p90, summary?.p90), (.p99, summary?.p99),
                                 (.p999, summary?.p999), (.max, summary?.max), (.mean, summary?.mean)] {
                if let value { try container.encode(value, forKey: key) } else { try container.encodeNil(forKey: key) }
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(mode.name, forKey: .mode)
        // The contract has both keys on every run, the unused one as an explicit null.
        switch mode {
        case .closed(let concurrency):
            try container.encode(concurrency, forKey: .concurrency)
            try container.encodeNil(forKey: .rate)
        case .open(let rate):
            try container.encodeNil(forKey: .concurrency)
            try container.encode(rate, forKey: .rate)
        }
        try container.encode(durationSeconds, forKey: .durationSeconds)
        try container.encode(requests, forKey: .requests)
        try container.encode(errors, forKey: .errors)
        try container.encode(succeeded, forKey: .succeeded)
        try container.encode(errorKinds, forKey: .errorKinds)
        try container.encode(throughputRPS, forKey: .throughputRPS)
        try container.encode(NullableLatency(summary: succeeded > 0 ? latency : nil), forKey: .latencyMs)
        try container.encode(slaMilliseconds, forKey: .slaMilliseconds)
        try container.encode(slaAttainment, forKey: .slaAttainment)
        try container.encode("kiln bench", forKey: .generator)
        try container.encodeIfPresent(rawLatencies, forKey: .rawLatencies)
        try container.encodeIfPresent(intervals, forKey: .intervals)
        try container.encodeIfPresent(sendLagP99, forKey: .sendLagP99)
        try container.encodeIfPresent(sendLagMax, forKey: .sendLagMax)
    }
}

/// What finished in one reporting interval of a run (`--interval`): a soak's minute-by-minute view.
/// Requests count in the interval in which they finished; the last interval is the tail after the
/// offered window (requests still in flight when it ended), so it is usually short.
public struct IntervalResult: Sendable, Equatable, Encodable {
    /// 1 for the first interval.
    public var index: Int
    /// Where the interval starts, in seconds from the start of the measured window.
    public var startSeconds: Double
    public var durationSeconds: Double
    public var requests: Int
    public var errors: Int
    public var errorKinds: [String: Int]
    /// Successful answers per second over the interval.
    public var throughputRPS: Double
    public var latency: LatencySummary
    /// Open loop: P99 and max of how late requests left the generator (ms): large values mean the
    /// generator was starved of CPU and its latencies include its own delay. Nil in closed loop.
    public var sendLagP99: Double?
    public var sendLagMax: Double?

    /// Summarizes one interval's tally.
    public init(index: Int, startSeconds: Double, durationSeconds: Double, snapshot: RecorderSnapshot) {
        (self.index, self.startSeconds, self.durationSeconds) = (index, startSeconds, durationSeconds)
        requests = snapshot.done
        errors = snapshot.errors
        errorKinds = snapshot.errorKinds
        throughputRPS = durationSeconds > 0 ? Double(snapshot.succeeded) / durationSeconds : 0
        latency = snapshot.latency
        (sendLagP99, sendLagMax) = (snapshot.sendLagP99, snapshot.sendLagMax)
    }

    enum CodingKeys: String, CodingKey {
        case index, requests, errors
        case startSeconds = "start_s", durationSeconds = "duration_s", errorKinds = "error_kinds"
        case throughputRPS = "throughput_rps", latency = "latency_ms"
        case sendLagP99 = "send_lag_p99_ms", sendLagMax = "send_lag_max_ms"
    }
}

/// The whole report written by `--json`: `{"url", "api", "runs": [...]}` plus the settings used.
public struct BenchReport: Sendable, Encodable {
    public var url: String
    public var api: BenchAPI
    public var endpoint: String
    public var model: String?
    public var texts: Int
    public var warmupSeconds: Double
    public var timeoutSeconds: Double
    public var runs: [RunResult]

    public init(url: String, api: BenchAPI, endpoint: String, model: String?, texts: Int, warmupSeconds: Double,
                timeoutSeconds: Double, runs: [RunResult]) {
        (self.url, self.api, self.endpoint, self.model, self.texts) = (url, api, endpoint, model, texts)
        (self.warmupSeconds, self.timeoutSeconds, self.runs) = (warmupSeconds, timeoutSeconds, runs)
    }

    enum CodingKeys: String, CodingKey {
        case url, api, endpoint, model, texts, runs
        case warmupSeconds = "warmup_s", timeoutSeconds = "timeout_s"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(url, forKey: .url)
        try container.encode(api, forKey: .api)
        try container.encode(endpoint, forKey: .endpoint)
        try container.encode(model, forKey: .model)
        try container.encode(texts, forKey: .texts)
        try container.encode(warmupSeconds, forKey: .warmupSeconds)
        try container.encode(timeoutSeconds, forKey: .timeoutSeconds)
        try container.encode(runs, forKey: .runs)
    }

    /// Pretty-printed JSON with sorted keys.
    public func jsonData() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// The stdout table: one header, then one row per run as it finishes.
public enum BenchTable {
    /// The header line.
    public static let header = row([
        "mode", "load", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "SLA %",
    ])

    /// One run's row.
    public static func row(_ result: RunResult) -> String {
        let latency = result.latency
        return row([
            result.mode.name, result.mode.label, "\(result.requests)", "\(result.errors)",
            String(format: "%.1f", result.throughputRPS),
            ms(latency.p50), ms(latency.p90), ms(latency.p99), ms(latency.p999), ms(latency.max),
            String(format: "%.2f", result.slaAttainment * 100),
        ])
    }

    /// One interval's line: `interval 3 (120-180 s): 39240 requests, 0 errors, 654.0 req/s, p50 19.8 ms, p99 316 ms, max 424 ms`.
    public static func intervalLine(_ interval: IntervalResult) -> String {
        let end = interval.startSeconds + interval.durationSeconds
        let latency = interval.latency
        return "interval \(interval.index) (\(BenchFormat.number(interval.startSeconds.rounded()))-\(BenchFormat.number(end.rounded())) s): "
            + "\(interval.requests) requests, \(interval.errors) errors, " + String(format: "%.1f req/s", interval.throughputRPS)
            + ", p50 \(ms(latency.p50)) ms, p99 \(ms(latency.p99)) ms, max \(ms(latency.max)) ms"
            + (interval.sendLagP99.map { ", send lag p99 \(ms($0)) ms" } ?? "")
    }

    /// The error kinds of a run, if any: `  errors c=16: http_503 x12, timeout x3`.
    public static func errorLine(_ result: RunResult) -> String? {
        guard !result.errorKinds.isEmpty else { return nil }
        let kinds = result.errorKinds.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }
        return "  errors \(result.mode.label): " + kinds.joined(separator: ", ")
    }

    private static let widths = [6, 10, 9, 7, 9, 8, 8, 8, 9, 8, 7]

    private static func row(_ cells: [String]) -> String {
        zip(cells, widths).enumerated().map { index, pair in
            let (cell, width) = pair
            let padding = String(repeating: " ", count: max(0, width - cell.count))
            return index < 2 ? cell + padding : padding + cell
        }.joined(separator: " ")
    }

    private static func ms(_ value: Double) -> String { String(format: value < 10 ? "%.2f" : "%.1f", value) }
}

/// Number formatting shared by the table and progress lines.
public enum BenchFormat {
    /// `20 s` or `2.5 s`.
    public static func seconds(_ value: Double) -> String { number(value) + " s" }

    /// `20` for whole numbers, `2.5` otherwise.
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(format: "%g", value)
    }
}
