import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import KilnServe

/// Bad input gets a clear 4xx JSON error, never a crash, and the server keeps answering correctly.
@Suite("malformed input", .serialized, .timeLimit(.minutes(5)))
struct MalformedInputTests {
    struct Case: Sendable, CustomStringConvertible {
        var description: String
        var path: String
        var body: [UInt8]
        var status: HTTPResponse.Status
        var messageContains: String
        var headers: HTTPFields = [:]
    }

    static func utf8(_ text: String) -> [UInt8] { Array(text.utf8) }

    static let ids = #"{"name": "input_ids", "shape": [1, 3], "datatype": "INT64", "data": [2, 10, 3]}"#
    static let mask = #"{"name": "attention_mask", "shape": [1, 3], "datatype": "INT64", "data": [1, 1, 1]}"#
    static let types = #"{"name": "token_type_ids", "shape": [1, 3], "datatype": "INT64", "data": [0, 0, 0]}"#

    static let cases: [Case] = [
        Case(description: "invalid JSON", path: "/v1/parse", body: utf8(#"{"text": "hi""#), status: .badRequest, messageContains: "JSON"),
        Case(description: "empty body", path: "/v1/parse", body: [], status: .badRequest, messageContains: "empty"),
        Case(description: "not an object", path: "/v1/parse", body: utf8("[1, 2]"), status: .badRequest, messageContains: "expected"),
        Case(description: "text is a number", path: "/v1/parse", body: utf8(#"{"text": 42}"#), status: .badRequest, messageContains: "'text'"),
        Case(description: "text missing", path: "/v1/parse", body: utf8(#"{"txt": "hi"}"#), status: .badRequest, messageContains: "text"),
        Case(description: "top_k is a string", path: "/v1/parse", body: utf8(#"{"text": "hi", "top_k": "3"}"#), status: .badRequest, messageContains: "top_k"),
        Case(description: "top_k zero", path: "/v1/parse", body: utf8(#"{"text": "hi", "top_k": 0}"#), status: .badRequest, messageContains: "top_k"),
        Case(description: "empty text", path: "/v1/parse", body: utf8(#"{"text": ""}"#), status: .badRequest, messageContains: "empty"),
        Case(description: "blank text", path: "/v1/parse", body: utf8(#"{"text": "  \n\t "}"#), status: .badRequest, messageContains: "empty"),
        Case(description: "1 MB text", path: "/v1/parse", body: utf8(#"{"text": ""# + String(repeating: "a", count: 1 << 20) + #""}"#),
             status: .contentTooLarge, messageContains: "characters"),
        Case(description: "invalid UTF-8", path: "/v1/parse", body: utf8(#"{"text": "ab"#) + [0xFF, 0xFE, 0xC3] + utf8(#""}"#),
             status: .badRequest, messageContains: "UTF-8"),
        Case(description: "deep nesting", path: "/v1/parse", body: utf8(String(repeating: "[", count: 100_000)),
             status: .badRequest, messageContains: "nested"),
        Case(description: "huge body", path: "/v1/parse", body: [UInt8](repeating: UInt8(ascii: " "), count: 3 << 20),
             status: .contentTooLarge, messageContains: "limit"),
        Case(description: "unknown model", path: "/v1/parse", body: utf8(#"{"text": "hi", "model": "nope"}"#),
             status: .notFound, messageContains: "not loaded"),
        Case(description: "path-like model", path: "/v1/parse", body: utf8(#"{"text": "hi", "model": "../etc"}"#),
             status: .badRequest, messageContains: "model"),
        Case(description: "batch: texts empty", path: "/v1/parse/batch", body: utf8(#"{"texts": []}"#), status: .badRequest, messageContains: "empty"),
        Case(description: "batch: texts wrong type", path: "/v1/parse/batch", body: utf8(#"{"texts": ["a", 3]}"#),
             status: .badRequest, messageContains: "texts[1]"),
        Case(description: "v2: unknown model", path: "/v2/models/nope/infer", body: utf8(#"{"inputs": []}"#), status: .notFound, messageContains: "not loaded"),
        Case(description: "v2: no inputs", path: "/v2/models/tiny-nlu/infer", body: utf8(#"{"inputs": []}"#), status: .badRequest, messageContains: "inputs"),
        Case(description: "v2: wrong dtype", path: "/v2/models/tiny-nlu/infer",
             body: utf8(#"{"inputs": [{"name": "input_ids", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}, \#(mask), \#(types)]}"#),
             status: .badRequest, messageContains: "INT64"),
        Case(description: "v2: shape/data mismatch", path: "/v2/models/tiny-nlu/infer",
             body: utf8(#"{"inputs": [{"name": "input_ids", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3]}, \#(mask), \#(types)]}"#),
             status: .badRequest, messageContains: "needs 4"),
        Case(description: "v2: wrong rank", path: "/v2/models/tiny-nlu/infer",
             body: utf8(#"{"inputs": [{"name": "input_ids", "shape": [3], "datatype": "INT64", "data": [1, 2, 3]}, \#(mask), \#(types)]}"#),
             status: .badRequest, messageContains: "[batch, sequence]"),
        Case(description: "v2: shapes disagree", path: "/v2/models/tiny-nlu/infer",
             body: utf8(#"{"inputs": [\#(ids), {"name": "attention_mask", "shape": [3, 1], "datatype": "INT64", "data": [1, 1, 1]}, \#(types)]}"#),
             status: .badRequest, messageContains: "must agree"),
        Case(description: "v2: missing input", path: "/v2/models/tiny-nlu/infer", body: utf8(#"{"inputs": [\#(ids), \#(mask)]}"#),
             status: .badRequest, messageContains: "token_type_ids"),
        Case(description: "v2: id outside vocabulary", path: "/v2/models/tiny-nlu/infer",
             body: utf8(#"{"inputs": [{"name": "input_ids", "shape": [1, 3], "datatype": "INT64", "data": [2, 999999, 3]}, \#(mask), \#(types)]}"#),
             status: .badRequest, messageContains: "vocabulary"),
        Case(description: "v2: fractional INT64", path: "/v2/models/tiny-nlu/infer",
             body: utf8(#"{"inputs": [{"name": "input_ids", "shape": [1, 3], "datatype": "INT64", "data": [2, 1.5, 3]}, \#(mask), \#(types)]}"#),
             status: .badRequest, messageContains: "INT64"),
        Case(description: "v2: sequence too long", path: "/v2/models/tiny-nlu/infer",
             body: utf8(#"{"inputs": [{"name": "input_ids", "shape": [1, 65], "datatype": "INT64", "data": [\#(Array(repeating: "2", count: 65).joined(separator: ","))]}, {"name": "attention_mask", "shape": [1, 65], "datatype": "INT64", "data": [\#(Array(repeating: "1", count: 65).joined(separator: ","))]}, {"name": "token_type_ids", "shape": [1, 65], "datatype": "INT64", "data": [\#(Array(repeating: "0", count: 65).joined(separator: ","))]}]}"#),
             status: .badRequest, messageContains: "max_seq_length"),
        Case(description: "v2: binary header longer than body", path: "/v2/models/tiny-nlu/infer", body: utf8(#"{"inputs": []}"#),
             status: .badRequest, messageContains: "Inference-Header-Content-Length",
             headers: [HTTPField.Name("Inference-Header-Content-Length")!: "5000"]),
    ]

    @Test("each malformed request gets a clear 4xx, and the server stays healthy and correct", arguments: cases)
    func malformed(_ testCase: Case) async throws {
        let direct = try DirectNLU()
        try await withServer(ServeFixtures.configuration { $0.maxBodyBytes = 2 << 20 }) { _, port in
            try await withClient(port: port) { client in
                var headers = testCase.headers
                headers[.contentType] = "application/json"
                let response = try await client.post(testCase.path, headers: headers, body: ByteBuffer(bytes: testCase.body))
                #expect(response.status == testCase.status, "\(testCase): \(response.text.prefix(300))")
                let message = try response.json["error"] as? String ?? ""
                #expect(message.contains(testCase.messageContains), "\(testCase): '\(message)'")
                #expect(!message.contains("Swift/") && !message.contains(".swift:"), "no internals in \(message)")
            }
            // The server still answers, and answers right, on fresh connections.
            try await withClient(port: port) { client in
                #expect(try await client.get("/v2/health/ready").status == .ok)
                let response = try await client.postJSON("/v1/parse", #"{"text": "transfer 50 dollars"}"#)
                #expect(response.status == .ok)
                expectSameAnswer(try response.decode(ParseResult.self), try direct.parse("transfer 50 dollars"), text: "transfer")
            }
        }
    }
}
