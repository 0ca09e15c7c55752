import Foundation
import Synchronization
import Testing

@testable import KilnServe

/// The server writes `/v1/parse` answers with ``JSONBytes`` instead of `JSONEncoder`: the bytes
/// must be valid JSON that carries exactly what `Codable` encoding carries, for any text a user
/// can send (quotes, backslashes, control characters, non-ASCII, astral scalars) and any number.
@Suite struct ResponseEncodingTests {
    static let awkwardStrings = [
        "", "plain", #"quote " inside"#, #"back\slash"#, "new\nline", "tab\there", "cr\rlf", "bell\u{07}",
        "nul\u{00}byte", "unit sep\u{1F}", "del\u{7F}", "form\u{0C}feed", "back\u{08}space", "slash / kept",
        "São Paulo", "東京駅", "emoji 🎉 and 👩‍👩‍👧", "\u{2028}line separator\u{2029}", "é (combining)",
    ]

    static func result(name: String, value: String, confidence: Float, intent: Bool = true) -> ParseResult {
        let top = ParseResult.Intent(name: name, confidence: confidence)
        return ParseResult(
            model: "m\(name)", version: "1", intent: intent ? top : nil,
            intents: intent ? [top, .init(name: "other", confidence: 1 - confidence)] : [],
            slots: [.init(name: name, value: value, start: 0, end: value.unicodeScalars.count, confidence: confidence),
                    .init(name: "second", value: "x", start: 3, end: 4, confidence: 0.5)],
            truncated: !intent, timing: .init(queue: 0.012345678, compute: 2.5, total: 3))
    }

    static let confidences: [Float] = [0, 1, 0.5, 0.1, 0.9999702, 6.7770593e-06, 1e-30, .leastNonzeroMagnitude,
                                       .greatestFiniteMagnitude, 123456.78]

    /// The `Codable` encoding the server used before, as a parsed JSON object.
    static func codableObject<Value: Encodable>(_ value: Value) throws -> NSDictionary {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return try #require(JSONSerialization.jsonObject(with: encoder.encode(value)) as? NSDictionary)
    }

    @Test("parse answers: same JSON object as Codable, and decode back to the same value", arguments: awkwardStrings)
    func parseResultMatchesCodable(text: String) throws {
        for (index, confidence) in Self.confidences.enumerated() {
            let value = Self.result(name: text, value: text, confidence: confidence, intent: index % 3 != 0)
            let bytes = value.jsonBytes()
            let object = try #require(JSONSerialization.jsonObject(with: Data(bytes)) as? NSDictionary)
            #expect(object == (try Self.codableObject(value)))
            #expect(try JSONDecoder().decode(ParseResult.self, from: Data(bytes)) == value)
        }
    }

    @Test("batch answers: results in order, same as Codable; an empty batch is an empty list")
    func batchMatchesCodable() throws {
        let batch = ParseBatchResult(results: Self.awkwardStrings.enumerated().map { index, text in
            Self.result(name: text, value: String(text.reversed()), confidence: Self.confidences[index % Self.confidences.count])
        })
        let bytes = batch.jsonBytes()
        #expect(try JSONDecoder().decode(ParseBatchResult.self, from: Data(bytes)) == batch)
        let object = try #require(JSONSerialization.jsonObject(with: Data(bytes)) as? NSDictionary)
        #expect(object == (try Self.codableObject(batch)))
        #expect(String(decoding: ParseBatchResult(results: []).jsonBytes(), as: UTF8.self) == #"{"results":[]}"#)
    }

    @Test("escapes only what JSON requires; numbers in shortest form; no intent is null")
    func exactText() {
        var json = JSONBytes()
        json.object { members in
            members.member("s") { $0.string("a\"b\\c/d\u{01}\n é") }
            members.member("whole") { $0.number(Float(2)) }
            members.member("small") { $0.number(Float(6.7770593e-06)) }
            members.member("nan") { $0.number(Double.nan) }
            members.member("int") { $0.number(-42) }
            members.member("none") { $0.null() }
            members.member("list") { $0.array([true, false]) { json, flag in json.bool(flag) } }
        }
        #expect(String(decoding: json.bytes, as: UTF8.self)
                == #"{"s":"a\"b\\c/d\u0001\n é","whole":2,"small":6.7770593e-06,"nan":null,"int":-42,"none":null,"list":[true,false]}"#)
    }

    @Test("metrics: cached series keep counting, errors count apart, timings and batches land in their model's series")
    func cachedMetricSeries() {
        let metrics = ServeMetrics()
        for _ in 0..<3 { metrics.recordRequest(model: "a", version: "1", endpoint: "parse", status: 200, seconds: 0.002) }
        metrics.recordRequest(model: "a", version: "1", endpoint: "parse", status: 429, seconds: 0.001)
        metrics.recordRequest(model: "b", version: "2", endpoint: "parse", status: 200, seconds: 0.003)
        metrics.recordTimings(model: "a", version: "1", queueSeconds: 0.001, computeSeconds: 0.004)
        metrics.recordTimings(model: "a", version: "1", queueSeconds: 0.002, computeSeconds: 0.004)
        metrics.recordBatch(model: "a", version: "1", requests: 2, rows: 2, tokens: 17)
        metrics.setQueueDepth(model: "a", version: "1", depth: 5)
        metrics.setQueueDepth(model: "a", version: "1", depth: 3)
        let text = String(decoding: metrics.render(), as: UTF8.self)
        #expect(text.contains(#"kiln_requests_total{model="a",version="1",endpoint="parse",code="200"} 3"#))
        #expect(text.contains(#"kiln_requests_total{model="a",version="1",endpoint="parse",code="429"} 1"#))
        #expect(text.contains(#"kiln_request_errors_total{model="a",version="1",endpoint="parse",code="429"} 1"#))
        #expect(!text.contains(#"kiln_request_errors_total{model="a",version="1",endpoint="parse",code="200"}"#))
        #expect(text.contains(#"kiln_requests_total{model="b",version="2",endpoint="parse",code="200"} 1"#))
        #expect(text.contains(#"kiln_request_duration_seconds_count{model="a",version="1",endpoint="parse"} 4"#))
        #expect(text.contains(#"kiln_queue_duration_seconds_count{model="a",version="1"} 2"#))
        #expect(text.contains(#"kiln_batch_tokens_sum{model="a",version="1"} 17"#))
        #expect(text.contains(#"kiln_batches_total{model="a",version="1"} 1"#))
        #expect(text.contains(#"kiln_queue_depth{model="a",version="1"} 3"#))
    }

    @Test("metrics: scrape hooks run before every render, so GPU gauges carry the reading of that scrape")
    func scrapeHooksFeedGPUGauges() {
        let metrics = ServeMetrics()
        let scrapes = Mutex(0)
        metrics.addScrapeHook { metrics in
            let count = scrapes.withLock { $0 += 1; return $0 }
            metrics.setGPU(gpu: 0, name: "Test GPU", memoryUsedBytes: Double(count) * 1e9, memoryTotalBytes: 80e9, utilization: 0.25 * Double(count))
        }
        let first = String(decoding: metrics.render(), as: UTF8.self)
        #expect(first.contains(#"kiln_gpu_memory_used_bytes{gpu="0",name="Test GPU"} 1000000000"#))
        #expect(first.contains(#"kiln_gpu_memory_total_bytes{gpu="0",name="Test GPU"} 80000000000"#))
        #expect(first.contains(#"kiln_gpu_utilization_ratio{gpu="0",name="Test GPU"} 0.25"#))
        let second = String(decoding: metrics.render(), as: UTF8.self)
        #expect(second.contains(#"kiln_gpu_utilization_ratio{gpu="0",name="Test GPU"} 0.5"#))
        #expect(scrapes.withLock { $0 } == 2)
    }
}
