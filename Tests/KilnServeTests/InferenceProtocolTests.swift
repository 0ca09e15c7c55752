import Foundation
import HTTPTypes
import HummingbirdTesting
import KilnCore
import NIOCore
import Testing

@testable import KilnServe

/// Open Inference Protocol v2 over HTTP: health, metadata, config, JSON and binary inference.
@Suite("Open Inference Protocol v2", .serialized, .timeLimit(.minutes(3)))
struct InferenceProtocolTests {
    static let headerLength = HTTPField.Name("Inference-Header-Content-Length")!

    @Test("health, server metadata, model metadata, readiness, config, repository index")
    func metadata() async throws {
        try await withServer { _, port in
            try await withClient(port: port) { client in
                #expect(try await client.get("/v2/health/live").status == .ok)
                #expect(try await client.get("/v2/health/ready").status == .ok)
                let server = try await client.get("/v2").json
                #expect(server["name"] as? String == "kiln")
                #expect((server["extensions"] as? [String])?.contains("binary_tensor_data") == true)

                let model = try await client.get("/v2/models/tiny-nlu").json
                #expect(model["name"] as? String == "tiny-nlu")
                #expect(model["versions"] as? [String] == ["1", "2", "3"])
                let inputs = model["inputs"] as? [[String: Any]] ?? []
                #expect(Set(inputs.compactMap { $0["name"] as? String }) == ["input_ids", "attention_mask", "token_type_ids"])
                #expect(inputs.allSatisfy { $0["datatype"] as? String == "INT64" && $0["shape"] as? [Int] == [-1, -1] })
                let outputs = model["outputs"] as? [[String: Any]] ?? []
                #expect(outputs.first { $0["name"] as? String == "intent_logits" }?["shape"] as? [Int] == [-1, 6])

                #expect(try await client.get("/v2/models/tiny-nlu/ready").status == .ok)
                #expect(try await client.get("/v2/models/tiny-nlu/versions/1/ready").status == .ok)
                #expect(try await client.get("/v2/models/tiny-nlu/versions/2/ready").status == .notFound)
                #expect(try await client.get("/v2/models/nope/ready").status == .notFound)

                let config = try await client.get("/v2/models/tiny-nlu/config").json
                #expect(config["max_batch_size"] as? Int == 16)
                #expect((config["input"] as? [[String: Any]])?.first?["data_type"] as? String == "TYPE_INT64")

                let index = try await client.post("/v2/repository/index", body: ByteBuffer()).bytes
                let entries = try JSONSerialization.jsonObject(with: Data(index)) as? [[String: Any]] ?? []
                #expect(entries.count == 3)
                #expect(entries.first { $0["version"] as? String == "1" }?["state"] as? String == "READY")
            }
        }
    }

    /// Token rows for a few texts, padded to the longest (as a v2 client would send them).
    static func rows(_ texts: [String], direct: DirectNLU) throws -> (ids: [Int64], mask: [Int64], types: [Int64], shape: [Int]) {
        let inputs = try texts.map { try direct.encoder.encode($0).engineInput }
        let length = inputs.map(\.length).max()!
        var ids: [Int64] = [], mask: [Int64] = [], types: [Int64] = []
        for input in inputs {
            let pad = length - input.length
            ids += input.inputIds + Array(repeating: 0, count: pad)
            mask += input.attentionMask + Array(repeating: 0, count: pad)
            types += input.tokenTypeIds + Array(repeating: 0, count: pad)
        }
        return (ids, mask, types, [texts.count, length])
    }

    static func directOutputs(_ rows: (ids: [Int64], mask: [Int64], types: [Int64], shape: [Int]), direct: DirectNLU) throws -> [String: Tensor] {
        try direct.engine.run([
            "input_ids": try Tensor(ints: rows.ids, shape: rows.shape),
            "attention_mask": try Tensor(ints: rows.mask, shape: rows.shape),
            "token_type_ids": try Tensor(ints: rows.types, shape: rows.shape),
        ])
    }

    @Test("JSON tensors in and out match the engine called directly")
    func inferJSON() async throws {
        let direct = try DirectNLU()
        let rows = try Self.rows(["transfer 50 dollars to savings", "hello", "book a hotel in paris"], direct: direct)
        let expected = try Self.directOutputs(rows, direct: direct)
        func tensor(_ name: String, _ values: [Int64]) -> String {
            #"{"name": "\#(name)", "shape": \#(rows.shape), "datatype": "INT64", "data": \#(values)}"#
        }
        let body = #"{"id": "r1", "inputs": [\#(tensor("input_ids", rows.ids)), \#(tensor("attention_mask", rows.mask)), \#(tensor("token_type_ids", rows.types))]}"#
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let response = try await client.postJSON("/v2/models/tiny-nlu/infer", body)
                #expect(response.status == .ok, "\(response.text)")
                let json = try response.json
                #expect(json["model_name"] as? String == "tiny-nlu")
                #expect(json["model_version"] as? String == "1")
                #expect(json["id"] as? String == "r1")
                let outputs = json["outputs"] as? [[String: Any]] ?? []
                for name in ["intent_logits", "slot_logits"] {
                    let output = try #require(outputs.first { $0["name"] as? String == name })
                    #expect(output["datatype"] as? String == "FP32")
                    #expect(output["shape"] as? [Int] == expected[name]!.shape)
                    let data = (output["data"] as? [NSNumber] ?? []).map(\.floatValue)
                    #expect(data.count == expected[name]!.count)
                    #expect(zip(data, expected[name]!.floats).allSatisfy { abs($0 - $1) <= 1e-4 })
                }
            }
        }
    }

    @Test("binary tensor data extension: binary inputs, binary outputs")
    func inferBinary() async throws {
        let direct = try DirectNLU()
        let rows = try Self.rows(["cancel my booking in london", "thanks bye"], direct: direct)
        let expected = try Self.directOutputs(rows, direct: direct)
        func bytes(_ values: [Int64]) -> [UInt8] { values.flatMap { withUnsafeBytes(of: $0.littleEndian, Array.init) } }
        let size = rows.ids.count * 8
        func tensor(_ name: String) -> String {
            #"{"name": "\#(name)", "shape": \#(rows.shape), "datatype": "INT64", "parameters": {"binary_data_size": \#(size)}}"#
        }
        let header = #"{"inputs": [\#(tensor("input_ids")), \#(tensor("attention_mask")), \#(tensor("token_type_ids"))], "outputs": [{"name": "intent_logits", "parameters": {"binary_data": true}}]}"#
        let body = Array(header.utf8) + bytes(rows.ids) + bytes(rows.mask) + bytes(rows.types)
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let response = try await client.post(
                    "/v2/models/tiny-nlu/versions/1/infer",
                    headers: [Self.headerLength: String(header.utf8.count), .contentType: "application/octet-stream"],
                    body: ByteBuffer(bytes: body))
                #expect(response.status == .ok, "\(response.text)")
                let jsonLength = try #require(response.headers[Self.headerLength].flatMap { Int($0) })
                let all = response.bytes
                let json = try JSONSerialization.jsonObject(with: Data(all[0..<jsonLength])) as? [String: Any] ?? [:]
                let outputs = json["outputs"] as? [[String: Any]] ?? []
                #expect(outputs.count == 1)
                let parameters = outputs.first?["parameters"] as? [String: Any]
                #expect(parameters?["binary_data_size"] as? Int == expected["intent_logits"]!.count * 4)
                let floats = stride(from: jsonLength, to: all.count, by: 4).map { offset in
                    Float(bitPattern: UInt32(all[offset]) | UInt32(all[offset + 1]) << 8 | UInt32(all[offset + 2]) << 16 | UInt32(all[offset + 3]) << 24)
                }
                #expect(floats.count == expected["intent_logits"]!.count)
                #expect(zip(floats, expected["intent_logits"]!.floats).allSatisfy { abs($0 - $1) <= 1e-4 })
            }
        }
    }
}
