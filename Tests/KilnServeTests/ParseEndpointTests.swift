import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import KilnServe

/// `/v1/parse` end to end over real HTTP on loopback, against the engine called directly.
@Suite("NLU API", .serialized, .timeLimit(.minutes(5)))
struct ParseEndpointTests {
    @Test("one text: intent, top-k, slots with offsets, timing, same as the engine called directly")
    func singleText() async throws {
        let direct = try DirectNLU()
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let text = "Book a hotel in Zürich for friday, café near the lake"
                let response = try await client.postJSON("/v1/parse", #"{"text": \#(jsonString(text)), "top_k": 3}"#)
                #expect(response.status == .ok)
                let result = try response.decode(ParseResult.self)
                #expect(result.model == "tiny-nlu")
                #expect(result.version == "1")
                #expect(result.intents.count == 3)
                #expect(result.intent == result.intents.first)
                #expect(!result.truncated)
                #expect(result.timing.total >= result.timing.compute)
                expectSameAnswer(result, try direct.parse(text, topK: 3), text: text)
                let scalars = Array(text.unicodeScalars)
                for slot in result.slots {
                    #expect(String(String.UnicodeScalarView(scalars[slot.start..<slot.end])) == slot.value)
                }
                #expect(response.headers[HTTPField.Name("X-Request-Id")!] != nil)
            }
        }
    }

    @Test("64 concurrent clients with distinct texts get their own answers (no cross-talk)")
    func concurrentClientsNoCrossTalk() async throws {
        let direct = try DirectNLU()
        let texts = ServeFixtures.texts(128)
        let expected = try texts.map { try direct.parse($0) }
        let configuration = ServeFixtures.configuration { $0.defaultModelSettings.maxBatchSize = 16 }
        try await withServer(configuration) { server, port in
            let results = try await withThrowingTaskGroup(of: [(Int, ParseResult)].self) { group in
                for clientIndex in 0..<64 {
                    group.addTask {
                        try await withClient(port: port) { client in
                            var answers: [(Int, ParseResult)] = []
                            for index in [clientIndex, clientIndex + 64] {
                                let response = try await client.postJSON("/v1/parse", #"{"text": \#(jsonString(texts[index]))}"#)
                                guard response.status == .ok else { throw TestFailure("status \(response.status): \(response.text)") }
                                answers.append((index, try response.decode(ParseResult.self)))
                            }
                            return answers
                        }
                    }
                }
                var all: [(Int, ParseResult)] = []
                for try await answers in group { all += answers }
                return all
            }
            #expect(results.count == texts.count)
            for (index, result) in results { expectSameAnswer(result, expected[index], text: texts[index]) }
            // The batcher really batched: some engine call had more than one row.
            let metrics = String(decoding: server.metrics.render(), as: UTF8.self)
            #expect(metrics.contains("kiln_batch_size_bucket"))
            #expect(!metrics.contains(#"kiln_batch_size_bucket{model="tiny-nlu",version="1",le="1.0"} \#(texts.count)"#))
        }
    }

    @Test("batch endpoint answers each text in order")
    func batchEndpoint() async throws {
        let direct = try DirectNLU()
        let texts = ServeFixtures.texts(9)
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let body = #"{"texts": [\#(texts.map(jsonString).joined(separator: ","))], "top_k": 2}"#
                let response = try await client.postJSON("/v1/parse/batch", body)
                #expect(response.status == .ok)
                let batch = try response.decode(ParseBatchResult.self)
                #expect(batch.results.count == texts.count)
                for (text, result) in zip(texts, batch.results) { expectSameAnswer(result, try direct.parse(text, topK: 2), text: text) }
            }
        }
    }

    @Test("over-long text is truncated to max_seq_length and says so")
    func truncation() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let text = Array(repeating: "transfer money", count: 100).joined(separator: " ")
                let response = try await client.postJSON("/v1/parse", #"{"text": \#(jsonString(text))}"#)
                #expect(response.status == .ok)
                #expect(try response.decode(ParseResult.self).truncated)
            }
        }
    }

    @Test("/metrics exposes requests, latency histograms, batch size, queue depth and in-flight")
    func metrics() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                _ = try await client.postJSON("/v1/parse", #"{"text": "hello there"}"#)
                _ = try await client.postJSON("/v1/parse", #"{"text": ""}"#)
                let text = try await client.get("/metrics").text
                for name in ["kiln_requests_total", "kiln_request_errors_total", "kiln_request_duration_seconds_bucket",
                             "kiln_queue_duration_seconds_bucket", "kiln_compute_duration_seconds_bucket",
                             "kiln_batch_size_bucket", "kiln_batch_tokens_bucket", "kiln_queue_depth", "kiln_inflight_requests",
                             "kiln_model_loaded"] {
                    #expect(text.contains(name), "missing \(name)")
                }
                #expect(text.contains(#"kiln_requests_total{model="tiny-nlu",version="1",endpoint="parse",code="200"} 1"#))
                #expect(text.contains(#"endpoint="parse",code="400"} 1"#))
            }
        }
    }
}
