import Foundation
import Histogram

/// Collects the outcome of every request of one run, from many concurrent tasks.
///
/// Latencies of successful requests go into an HDR histogram (microseconds, 3 significant digits, so a
/// percentile is within 0.1% of the exact value); the maximum, the mean and the SLA count are kept
/// exactly beside it. Failed requests are counted by kind and count as SLA misses. A second tally
/// covers only the current reporting interval (``takeInterval()``), for soaks that watch the tail
/// latency minute by minute.
public final class LatencyRecorder: @unchecked Sendable {
    // @unchecked: every stored property is read and written only under `lock`.
    private let lock = NSLock()
    private var run: Tally
    private var interval: Tally
    private var sent = 0
    private let slaMicros: UInt64
    private var raw: [UInt64]?

    /// Creates an empty recorder.
    /// - Parameters:
    ///   - slaMilliseconds: the latency target; successes at or under it count as attained.
    ///   - keepRaw: also keep every latency (for CDF plots; memory grows with the request count).
    public init(slaMilliseconds: Double, keepRaw: Bool = false) {
        slaMicros = UInt64((slaMilliseconds * 1000).rounded())
        run = Tally()
        interval = Tally()
        raw = keepRaw ? [] : nil
    }

    /// Notes that a request was sent (so in-flight = sent - done).
    public func recordSent() {
        lock.withLock { sent += 1 }
    }

    /// Records a successful (2xx) answer.
    /// - Parameter latency: time from the request's send (or scheduled) instant to the whole answer.
    public func recordSuccess(latency: Duration) {
        let micros = Self.microseconds(latency)
        lock.withLock {
            run.recordSuccess(micros, underSLA: micros <= slaMicros)
            interval.recordSuccess(micros, underSLA: micros <= slaMicros)
            raw?.append(micros)
        }
    }

    /// Records how late an open-loop request left the generator: from its scheduled instant to the
    /// moment its task handed it to the HTTP client. Large values mean the generator itself was
    /// starved of CPU, and the latencies it reports include its own delay.
    public func recordSendLag(_ lag: Duration) {
        let micros = Self.microseconds(lag)
        lock.withLock {
            run.recordSendLag(micros)
            interval.recordSendLag(micros)
        }
    }

    /// Records a failed request.
    /// - Parameter kind: what went wrong (`http_503`, `timeout`, `connection`, ...).
    public func recordError(kind: String) {
        lock.withLock {
            run.recordError(kind)
            interval.recordError(kind)
        }
    }

    /// A consistent copy of the counts so far.
    public func snapshot() -> RecorderSnapshot {
        lock.withLock {
            var snapshot = run.snapshot(sent: sent)
            snapshot.rawLatencies = raw.map { $0.sorted().map { Double($0) / 1000 } }
            return snapshot
        }
    }

    /// The requests finished since the last call (or since the start), and a fresh interval begun.
    /// `sent` in the result is the run's total so far.
    public func takeInterval() -> RecorderSnapshot {
        lock.withLock {
            defer { interval = Tally() }
            return interval.snapshot(sent: sent)
        }
    }

    private static func microseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        let micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return UInt64(clamping: max(micros, 1))
    }
}

/// The counts and latency histogram of finished requests over some span (a run or an interval).
private struct Tally {
    var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    var succeeded = 0
    var underSLA = 0
    var maxMicros: UInt64 = 0
    var sumMicros: Double = 0
    var errorKinds: [String: Int] = [:]
    var sendLags = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .two)
    var sendLagCount = 0

    mutating func recordSendLag(_ micros: UInt64) {
        _ = sendLags.record(micros)
        sendLagCount += 1
    }

    mutating func recordSuccess(_ micros: UInt64, underSLA attained: Bool) {
        succeeded += 1
        _ = histogram.record(micros)
        maxMicros = max(maxMicros, micros)
        sumMicros += Double(micros)
        if attained { underSLA += 1 }
    }

    mutating func recordError(_ kind: String) {
        errorKinds[kind, default: 0] += 1
    }

    func snapshot(sent: Int) -> RecorderSnapshot {
        func milliseconds(_ percentile: Double) -> Double {
            succeeded == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
        }
        let latency = LatencySummary(
            p50: milliseconds(50), p90: milliseconds(90), p99: milliseconds(99), p999: milliseconds(99.9),
            max: Double(maxMicros) / 1000, mean: succeeded == 0 ? 0 : sumMicros / Double(succeeded) / 1000)
        var snapshot = RecorderSnapshot(
            sent: sent, succeeded: succeeded, errors: errorKinds.values.reduce(0, +), errorKinds: errorKinds,
            underSLA: underSLA, latency: latency)
        if sendLagCount > 0 {
            snapshot.sendLagP99 = Double(sendLags.valueAtPercentile(99)) / 1000
            snapshot.sendLagMax = Double(sendLags.max) / 1000
        }
        return snapshot
    }
}

/// Counts and latency percentiles of a run at one instant.
public struct RecorderSnapshot: Sendable, Equatable {
    /// Requests sent.
    public var sent: Int
    /// Requests answered with 2xx.
    public var succeeded: Int
    /// Requests that failed (any kind).
    public var errors: Int
    /// Failures by kind.
    public var errorKinds: [String: Int]
    /// Successes at or under the SLA.
    public var underSLA: Int
    /// Latency of successful requests.
    public var latency: LatencySummary
    /// Every successful latency in milliseconds, sorted, when the recorder keeps them.
    public var rawLatencies: [Double]? = nil
    /// Open loop: P99 and max of how late requests left the generator after their scheduled instant (ms); nil in closed loop.
    public var sendLagP99: Double? = nil
    public var sendLagMax: Double? = nil

    /// Requests finished, either way.
    public var done: Int { succeeded + errors }

    /// Percent of finished requests that succeeded within the SLA (errors and timeouts are misses); 0 when none finished.
    public var slaAttainmentPercent: Double {
        done == 0 ? 0 : 100 * Double(underSLA) / Double(done)
    }
}

/// Latency percentiles in milliseconds.
public struct LatencySummary: Codable, Sendable, Equatable {
    enum CodingKeys: String, CodingKey { case p50, p90, p99, p999, max, mean }

    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double
    public var mean: Double

    public init(p50: Double, p90: Double, p99: Double, p999: Double, max: Double, mean: Double) {
        (self.p50, self.p90, self.p99, self.p999, self.max, self.mean) = (p50, p90, p99, p999, max, mean)
    }
}
