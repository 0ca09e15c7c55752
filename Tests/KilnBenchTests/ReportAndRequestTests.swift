import Foundation
import Testing

@testable import KilnBench

@Suite("JSON report, table, request shapes and texts")
struct ReportAndRequestTests {
    private func sampleRun(_ mode: LoadMode) -> RunResult {
        let recorder = LatencyRecorder(slaMilliseconds: 100)
        for milliseconds in [5, 10, 200] { recorder.recordSuccess(latency: .milliseconds(milliseconds)) }
        recorder.recordError(kind: "http_500")
        return RunResult(snapshot: recorder.snapshot(), mode: mode, elapsed: 1.5, slaMilliseconds: 100)
    }

    @Test("the JSON report has the contract's keys; the unused one of concurrency/rate is null")
    func jsonShape() throws {
        let report = BenchReport(
            url: "http://127.0.0.1:1", api: .kiln, endpoint: "http://127.0.0.1:1/v1/parse", model: nil, texts: 3,
            warmupSeconds: 0, timeoutSeconds: 10, runs: [sampleRun(.closed(concurrency: 4)), sampleRun(.open(rate: 12.5))])
        let object = try #require(try JSONSerialization.jsonObject(with: report.jsonData()) as? [String: Any])
        #expect(object["url"] as? String == "http://127.0.0.1:1")
        #expect(object["api"] as? String == "kiln")
        let runs = try #require(object["runs"] as? [[String: Any]])
        #expect(runs.count == 2)
        let contractKeys: Set = [
            "mode", "concurrency", "rate", "duration_s", "requests", "errors", "error_kinds", "throughput_rps", "latency_ms",
            "sla_ms", "sla_attainment",
        ]
        for run in runs { #expect(contractKeys.isSubset(of: Set(run.keys))) }
        #expect(runs[0]["mode"] as? String == "closed" && runs[0]["concurrency"] as? Int == 4 && runs[0]["rate"] is NSNull)
        #expect(runs[1]["mode"] as? String == "open" && runs[1]["rate"] as? Double == 12.5 && runs[1]["concurrency"] is NSNull)
        let latency = try #require(runs[0]["latency_ms"] as? [String: Double])
        #expect(Set(latency.keys) == ["p50", "p90", "p99", "p999", "max", "mean"])
        #expect(latency["max"] == 200)
        #expect(runs[0]["requests"] as? Int == 4 && runs[0]["errors"] as? Int == 1)
        #expect(runs[0]["error_kinds"] as? [String: Int] == ["http_500": 1])
        #expect(abs((runs[0]["throughput_rps"] as? Double ?? 0) - 2) < 1e-9)  // 3 successes in 1.5 s
        #expect(abs((runs[0]["sla_attainment"] as? Double ?? 0) - 0.5) < 1e-9)  // 2 of 4 within 100 ms, as a share
        #expect(runs[0]["latencies_ms"] == nil)
    }

    @Test("a run with no success writes null percentiles; --raw-latencies writes every latency sorted")
    func nullsAndRaw() throws {
        let failed = LatencyRecorder(slaMilliseconds: 100)
        failed.recordError(kind: "timeout")
        let empty = RunResult(snapshot: failed.snapshot(), mode: .open(rate: 1), elapsed: 1, slaMilliseconds: 100)
        let emptyObject = try JSONSerialization.jsonObject(with: JSONEncoder().encode(empty)) as? [String: Any]
        let latency = try #require(emptyObject?["latency_ms"] as? [String: Any])
        #expect(latency.count == 6 && latency.values.allSatisfy { $0 is NSNull })

        let kept = LatencyRecorder(slaMilliseconds: 100, keepRaw: true)
        for milliseconds in [30, 10, 20] { kept.recordSuccess(latency: .milliseconds(milliseconds)) }
        let run = RunResult(snapshot: kept.snapshot(), mode: .closed(concurrency: 1), elapsed: 1, slaMilliseconds: 100)
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(run)) as? [String: Any]
        #expect(object?["latencies_ms"] as? [Double] == [10, 20, 30])
    }

    @Test("table rows line up with the header and show the numbers")
    func table() {
        let row = BenchTable.row(sampleRun(.closed(concurrency: 16)))
        #expect(row.count == BenchTable.header.count)
        #expect(row.hasPrefix("closed c=16"))
        #expect(row.hasSuffix("50.00"))
        #expect(BenchTable.errorLine(sampleRun(.open(rate: 10)))?.contains("http_500 x1") == true)
    }

    @Test("endpoints for each API; v2 needs a model; the URL must be http(s)")
    func endpoints() throws {
        #expect(try RequestTemplate(baseURL: "http://127.0.0.1:8080/", api: .kiln, model: nil).endpoint == "http://127.0.0.1:8080/v1/parse")
        #expect(try RequestTemplate(baseURL: "http://h:1", api: .v2, model: "snips").endpoint == "http://h:1/v2/models/snips/infer")
        #expect(try RequestTemplate(baseURL: "http://h:1/predictions/m", api: .text, model: nil).endpoint == "http://h:1/predictions/m")
        #expect(throws: BenchError.self) { try RequestTemplate(baseURL: "http://h:1", api: .v2, model: nil) }
        #expect(throws: BenchError.self) { try RequestTemplate(baseURL: "127.0.0.1:8080", api: .kiln, model: nil) }
    }

    @Test("request bodies: Kiln NLU, v2 BYTES tensor (input name configurable), generic text; quotes and CJK survive")
    func bodies() throws {
        let text = #"say "hi" 你好"#
        let kiln = try JSONSerialization.jsonObject(with: Data(BenchRequestBody.make(text: text, api: .kiln, model: "snips"))) as? [String: String]
        #expect(kiln == ["text": text, "model": "snips"])
        let plain = try JSONSerialization.jsonObject(with: Data(BenchRequestBody.make(text: text, api: .text, model: "snips"))) as? [String: String]
        #expect(plain == ["text": text])
        let v2 = try #require(
            try JSONSerialization.jsonObject(with: Data(BenchRequestBody.make(text: text, api: .v2, model: "m", v2Input: "TEXT"))) as? [String: Any])
        let input = try #require((v2["inputs"] as? [[String: Any]])?.first)
        #expect(input["name"] as? String == "TEXT" && input["datatype"] as? String == "BYTES")
        #expect(input["shape"] as? [Int] == [1] && input["data"] as? [String] == [text])
    }

    @Test("text sources: lines, banking77-style CSV with quoted commas, CAIS character/tag blocks")
    func texts() throws {
        let csv = "text,category\nHow do I locate my card?,card_arrival\n\"I still have not received my new card, I ordered \"\"ages\"\" ago.\",card_arrival\r\n"
        #expect(CSVText.firstColumn(of: csv) == ["How do I locate my card?", #"I still have not received my new card, I ordered "ages" ago."#])
        #expect(CAISText.utterances(in: "来 O\n张 B-singer\n\n我 O\n想 O\n") == ["来张", "我想"])
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-bench-\(UUID()).txt")
        try "  first line \n\nsecond\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try Utterances.lines(ofFiles: [file.path]) == ["first line", "second"])
        #expect(Utterances.Dataset.matching(model: "support-zh") == .cais)
        #expect(Utterances.Dataset.matching(model: nil) == .nlupp)
    }

    @Test(
        "every shared test set loads real utterances (skipped without ../shared/data)",
        .enabled(if: Utterances.dataDirectory() != nil))
    func sharedData() throws {
        let directory = try #require(Utterances.dataDirectory())
        for dataset in Utterances.Dataset.allCases {
            let texts = try Utterances.load(dataset, from: directory)
            #expect(texts.count > 500, "\(dataset): \(texts.count)")
            #expect(texts.allSatisfy { !$0.isEmpty && !$0.contains("\n") })
        }
        #expect(try Utterances.load(.banking77, from: directory).count == 3080)
        #expect(try Utterances.load(.snips, from: directory).count == 700)
    }
}
