import Foundation
import Histogram

/// Collects the outcome of every request of one run, from many concurrent tasks.
///
/// Latencies of successful requests go into an HDR histogram (microseconds, 3 significant digits, so a
/// percentile is within 0.1% of the exact value); the maximum, the mean and the SLA count are kept
/// exactly beside it. Failed requests are counted by kind and count as SLA misses.
public final class LatencyRecorder: @unchecked Sendable {
    // @unchecked: every stored property is read and written only under `lock`.
    private let lock = NSLock()
    private var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
    private var sent = 0
    private var succeeded = 0
    private var underSLA = 0
    private var maxMicros: UInt64 = 0
    private var sumMicros: Double = 0
    private var errorKinds: [String: Int] = [:]
    private let slaMicros: UInt64
    private var raw: [UInt64]?

    /// Creates an empty recorder.
    /// - Parameters:
    ///   - slaMilliseconds: the latency target; successes at or under it count as attained.
    ///   - keepRaw: also keep every latency (for CDF plots; memory grows with the request count).
    public init(slaMilliseconds: Double, keepRaw: Bool = false) {
        slaMicros = UInt64((slaMilliseconds * 1000).rounded())
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
            succeeded += 1
            _ = histogram.record(micros)
            maxMicros = max(maxMicros, micros)
            sumMicros += Double(micros)
            if micros <= slaMicros { underSLA += 1 }
            raw?.append(micros)
        }
    }

    /// Records a failed request.
    /// - Parameter kind: what went wrong (`http_503`, `timeout`, `connection`, ...).
    public func recordError(kind: String) {
        lock.withLock { errorKinds[kind, default: 0] += 1 }
    }

    /// A consistent copy of the counts so far.
    public func snapshot() -> RecorderSnapshot {
        lock.withLock {
            let errors = errorKinds.values.reduce(0, +)
            func milliseconds(_ percentile: Double) -> Double {
                succeeded == 0 ? 0 : Double(histogram.valueAtPercentile(percentile)) / 1000
            }
            let latency = LatencySummary(
                p50: milliseconds(50), p90: milliseconds(90), p99: milliseconds(99), p999: milliseconds(99.9),
                max: Double(maxMicros) / 1000, mean: succeeded == 0 ? 0 : sumMicros / Double(succeeded) / 1000)
            return RecorderSnapshot(
                sent: sent, succeeded: succeeded, errors: errors, errorKinds: errorKinds, underSLA: underSLA, latency: latency,
                rawLatencies: raw.map { $0.sorted().map { Double($0) / 1000 } })
        }
    }

    private static func microseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        let micros = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return UInt64(clamping: max(micros, 1))
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
