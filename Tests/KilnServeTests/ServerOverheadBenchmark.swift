import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import KilnServe

/// Server overhead at concurrency 1: `/v1/parse` over HTTP vs tokenizer + engine + decoder called
/// directly, same texts, same process, one run (so the ratio means something on a noisy machine).
/// Slow and timing-dependent, so off by default: `KILN_SERVE_BENCH=1 swift test --filter ServerOverhead`.
@Suite("server overhead benchmark", .enabled(if: ProcessInfo.processInfo.environment["KILN_SERVE_BENCH"] == "1"))
struct ServerOverheadBenchmark {
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
    }

    @Test("HTTP P50 vs direct P50 at concurrency 1 (max queue delay 0)")
    func overhead() async throws {
        let direct = try DirectNLU()
        let texts = ServeFixtures.texts(50)
        let rounds = Int(ProcessInfo.processInfo.environment["KILN_SERVE_BENCH_ROUNDS"] ?? "4") ?? 4
        for text in texts.prefix(5) { _ = try direct.parse(text) }  // warm-up
        var directTimes: [Double] = []
        var httpTimes: [Double] = []
        let configuration = ServeFixtures.configuration { $0.defaultModelSettings.maxQueueDelayMs = 0 }
        let times = try await withServer(configuration) { _, port in
            try await withClient(port: port) { client in
                var directTimes: [Double] = []
                var httpTimes: [Double] = []
                for _ in 0..<rounds {
                    // Interleave the two so drifting machine load hits both alike.
                    for text in texts {
                        let start = DispatchTime.now().uptimeNanoseconds
                        _ = try direct.parse(text)
                        directTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                        let body = #"{"text": \#(jsonString(text))}"#
                        let httpStart = DispatchTime.now().uptimeNanoseconds
                        let response = try await client.postJSON("/v1/parse", body)
                        httpTimes.append(Double(DispatchTime.now().uptimeNanoseconds - httpStart) / 1e6)
                        #expect(response.status == .ok)
                    }
                }
                return (directTimes, httpTimes)
            }
        }
        (directTimes, httpTimes) = times
        let (d50, h50) = (Self.percentile(directTimes, 0.5), Self.percentile(httpTimes, 0.5))
        let (d99, h99) = (Self.percentile(directTimes, 0.99), Self.percentile(httpTimes, 0.99))
        print(String(format: "server overhead (n=%d): direct P50 %.3f ms P99 %.3f ms | HTTP P50 %.3f ms P99 %.3f ms | P50 overhead %.3f ms",
                     directTimes.count, d50, d99, h50, h99, h50 - d50))
    }
}
