import Foundation
import Testing

@testable import KilnBench

@Suite("latency statistics and SLA attainment")
struct LatencyRecorderTests {
    // The HDR histogram keeps 3 significant digits: a percentile is within 0.1% of the exact order statistic.
    @Test("percentiles of 1...1000 ms within 0.1%; max and mean exact")
    func percentiles() {
        let recorder = LatencyRecorder(slaMilliseconds: 100)
        for milliseconds in (1...1000).shuffled() { recorder.recordSuccess(latency: .milliseconds(milliseconds)) }
        let latency = recorder.snapshot().latency
        for (value, expected) in [(latency.p50, 500.0), (latency.p90, 900.0), (latency.p99, 990.0), (latency.p999, 999.0)] {
            #expect(abs(value - expected) / expected <= 0.001, "got \(value) for \(expected)")
        }
        #expect(latency.max == 1000)
        #expect(abs(latency.mean - 500.5) < 1e-9)
    }

    @Test("SLA attainment: successes at or under the target over all finished requests; errors are misses")
    func slaAttainment() {
        let recorder = LatencyRecorder(slaMilliseconds: 50)
        for milliseconds in 1...100 { recorder.recordSuccess(latency: .milliseconds(milliseconds)) }
        for _ in 0..<6 { recorder.recordError(kind: "timeout") }
        for _ in 0..<4 { recorder.recordError(kind: ErrorKind.http(status: 503)) }
        let snapshot = recorder.snapshot()
        #expect(snapshot.underSLA == 50)  // 1...50 ms, 50 ms itself included
        #expect(snapshot.done == 110 && snapshot.errors == 10 && snapshot.succeeded == 100)
        #expect(snapshot.errorKinds == ["timeout": 6, "http_503": 4])
        #expect(abs(snapshot.slaAttainmentPercent - 100.0 * 50 / 110) < 1e-9)
    }

    @Test("sub-millisecond latencies keep their precision; no request gives zeros, not NaN")
    func edges() {
        let empty = LatencyRecorder(slaMilliseconds: 10).snapshot()
        #expect(empty.latency == LatencySummary(p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0))
        #expect(empty.slaAttainmentPercent == 0)
        let recorder = LatencyRecorder(slaMilliseconds: 1)
        recorder.recordSuccess(latency: .microseconds(250))
        #expect(abs(recorder.snapshot().latency.p50 - 0.25) < 0.001)
        #expect(recorder.snapshot().slaAttainmentPercent == 100)
    }

    @Test("an interval holds only what finished since the last one; the run's totals hold everything")
    func intervals() {
        let recorder = LatencyRecorder(slaMilliseconds: 100)
        for milliseconds in 1...10 { recorder.recordSuccess(latency: .milliseconds(milliseconds)) }
        recorder.recordError(kind: "timeout")
        let first = recorder.takeInterval()
        #expect(first.succeeded == 10 && first.errors == 1 && first.latency.max == 10)
        for milliseconds in 501...600 { recorder.recordSuccess(latency: .milliseconds(milliseconds)) }
        let second = recorder.takeInterval()
        #expect(second.succeeded == 100 && second.errors == 0 && second.errorKinds.isEmpty)
        #expect(abs(second.latency.p50 - 550) / 550 <= 0.001 && second.latency.max == 600)
        #expect(second.underSLA == 0)
        let empty = recorder.takeInterval()
        #expect(empty.done == 0 && empty.latency.p99 == 0)
        let run = recorder.snapshot()
        #expect(run.succeeded == 110 && run.errors == 1 && run.underSLA == 10 && run.latency.max == 600)
    }

    @Test("send lag: P99 and max of how late requests left, per run and per interval; absent when none was recorded")
    func sendLag() {
        let recorder = LatencyRecorder(slaMilliseconds: 100)
        #expect(recorder.snapshot().sendLagP99 == nil)
        for milliseconds in 1...100 { recorder.recordSendLag(.milliseconds(milliseconds)) }
        let interval = recorder.takeInterval()
        // Two significant digits: within 1%.
        #expect(abs((interval.sendLagP99 ?? 0) - 99) <= 1 && abs((interval.sendLagMax ?? 0) - 100) <= 1)
        #expect(recorder.takeInterval().sendLagP99 == nil)
        #expect(abs((recorder.snapshot().sendLagMax ?? 0) - 100) <= 1)
    }

    @Test("throughput counts successes over the measured window")
    func throughput() {
        let recorder = LatencyRecorder(slaMilliseconds: 100)
        for _ in 0..<30 { recorder.recordSuccess(latency: .milliseconds(10)) }
        recorder.recordError(kind: "connection_refused")
        let result = RunResult(snapshot: recorder.snapshot(), mode: .closed(concurrency: 2), elapsed: 2, slaMilliseconds: 100)
        #expect(result.throughputRPS == 15)
        #expect(result.requests == 31 && result.errors == 1)
    }
}
