import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Testing

@testable import KilnServe

/// Admin API authorization, reload under load, and roll-outs.
@Suite("admin API and roll-outs", .serialized, .timeLimit(.minutes(5)))
struct AdminAndRolloutTests {
    static let token = "test-token-1234"
    static var bearer: HTTPFields { [.authorization: "Bearer \(token)"] }

    @Test("admin calls without the token are refused; without a configured token the admin API is off")
    func authorization() async throws {
        try await withServer(ServeFixtures.configuration { $0.adminToken = Self.token }) { _, port in
            try await withClient(port: port) { client in
                #expect(try await client.post("/v2/repository/models/tiny-nlu/unload", body: ByteBuffer()).status == .unauthorized)
                #expect(try await client.post("/v2/repository/models/tiny-nlu/unload", headers: [.authorization: "Bearer wrong"],
                                              body: ByteBuffer()).status == .unauthorized)
                #expect(try await client.postJSON("/admin/models/tiny-nlu/rollout", #"{"candidate_version": 2}"#).status == .unauthorized)
                #expect(try await client.get("/v2/models/tiny-nlu/ready").status == .ok, "refused calls changed nothing")
                // With the token: unload, then load version 2.
                #expect(try await client.post("/v2/repository/models/tiny-nlu/unload", headers: Self.bearer, body: ByteBuffer()).status == .ok)
                #expect(try await client.get("/v2/models/tiny-nlu/ready").status == .notFound)
                #expect(try await client.postJSON("/v1/parse", #"{"text": "hi"}"#).status == .notFound)
                let load = try await client.postJSON("/v2/repository/models/tiny-nlu/load", #"{"parameters": {"version": 2}}"#, headers: Self.bearer)
                #expect(load.status == .ok, "\(load.text)")
                let parse = try await client.postJSON("/v1/parse", #"{"text": "hi"}"#)
                #expect(try parse.decode(ParseResult.self).version == "2")
            }
        }
        try await withServer { _, port in
            try await withClient(port: port) { client in
                let response = try await client.post("/v2/repository/models/tiny-nlu/unload", headers: Self.bearer, body: ByteBuffer())
                #expect(response.status == .forbidden)
                #expect((try response.json["error"] as? String ?? "").contains("KILN_ADMIN_TOKEN"))
            }
        }
    }

    @Test("reloading under load fails no request")
    func reloadUnderLoad() async throws {
        let direct = try DirectNLU()
        let texts = ServeFixtures.texts(16)
        let expected = try texts.map { try direct.parse($0) }
        try await withServer(ServeFixtures.configuration { $0.adminToken = Self.token }) { _, port in
            let deadline = ContinuousClock.now + .seconds(4)
            async let load: [String] = withThrowingTaskGroup(of: [String].self) { group in
                for clientIndex in 0..<8 {
                    group.addTask {
                        try await withClient(port: port) { client in
                            var failures: [String] = []
                            var index = clientIndex
                            while ContinuousClock.now < deadline {
                                let text = texts[index % texts.count]
                                let response = try await client.postJSON("/v1/parse", #"{"text": \#(jsonString(text))}"#)
                                if response.status != .ok {
                                    failures.append("\(response.status): \(response.text)")
                                } else {
                                    let result = try response.decode(ParseResult.self)
                                    if result.intents.map(\.name) != expected[index % texts.count].intents.map(\.name) {
                                        failures.append("wrong answer for \(text)")
                                    }
                                }
                                index += 8
                            }
                            return failures
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            let reloads = try await withClient(port: port) { client in
                var reloads = 0
                while ContinuousClock.now < deadline - .milliseconds(500) {
                    // Version 2 has the same weights and labels as 1: answers must not change.
                    let version = reloads % 2 == 0 ? 2 : 1
                    let response = try await client.postJSON(
                        "/v2/repository/models/tiny-nlu/load", #"{"parameters": {"version": \#(version)}}"#, headers: Self.bearer)
                    #expect(response.status == .ok, "\(response.text)")
                    reloads += 1
                    try await Task.sleep(for: .milliseconds(200))
                }
                return reloads
            }
            let failures = try await load
            #expect(reloads >= 3)
            #expect(failures.isEmpty, "\(failures.prefix(5))")
        }
    }

    /// Sends `count` parse requests (8 clients) and returns how many failed.
    static func drive(port: Int, count: Int) async throws -> Int {
        let texts = ServeFixtures.texts(count)
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for clientIndex in 0..<8 {
                group.addTask {
                    try await withClient(port: port) { client in
                        var failed = 0
                        for index in stride(from: clientIndex, to: count, by: 8) {
                            let response = try await client.postJSON("/v1/parse", #"{"text": \#(jsonString(texts[index]))}"#)
                            if response.status != .ok { failed += 1 }
                        }
                        return failed
                    }
                }
            }
            return try await group.reduce(0, +)
        }
    }

    @Test("a bad candidate (shuffled labels) is rolled back automatically")
    func badCandidateRolledBack() async throws {
        try await withServer(ServeFixtures.configuration { $0.adminToken = Self.token }) { server, port in
            try await withClient(port: port) { client in
                let start = try await client.postJSON(
                    "/admin/models/tiny-nlu/rollout", #"{"candidate_version": 3, "percent": 50, "window_requests": 20}"#, headers: Self.bearer)
                #expect(start.status == .ok, "\(start.text)")
                #expect(try start.json["state"] as? String == "running")
            }
            #expect(try await Self.drive(port: port, count: 120) == 0, "no client sees a failure during the roll-out")
            try await withClient(port: port) { client in
                let status = try await client.get("/admin/models/tiny-nlu/rollout", headers: Self.bearer).json
                #expect(status["state"] as? String == "rolled_back", "\(status)")
                #expect((status["reason"] as? String ?? "").contains("agrees"))
                let parse = try await client.postJSON("/v1/parse", #"{"text": "hello"}"#)
                #expect(try parse.decode(ParseResult.self).version == "1")
                let metrics = try await client.get("/metrics").text
                #expect(metrics.contains(#"kiln_rollout_state{model="tiny-nlu",candidate="3"} 3"#))
            }
            #expect(try server.models.resolve("tiny-nlu").version == 1)
        }
    }

    @Test("a good candidate is promoted automatically; manual rollback works")
    func goodCandidatePromoted() async throws {
        try await withServer(ServeFixtures.configuration { $0.adminToken = Self.token }) { server, port in
            try await withClient(port: port) { client in
                let start = try await client.postJSON(
                    "/admin/models/tiny-nlu/rollout", #"{"candidate_version": 2, "percent": 50, "window_requests": 20, "max_latency_ratio": 100}"#,
                    headers: Self.bearer)
                #expect(start.status == .ok, "\(start.text)")
            }
            #expect(try await Self.drive(port: port, count: 120) == 0)
            #expect(try server.models.resolve("tiny-nlu").version == 2)
            try await withClient(port: port) { client in
                let status = try await client.get("/admin/models/tiny-nlu/rollout", headers: Self.bearer).json
                #expect(status["state"] as? String == "promoted", "\(status)")
                // Manual control: start another roll-out (back to 1) and roll it back by hand.
                let again = try await client.postJSON("/admin/models/tiny-nlu/rollout", #"{"candidate_version": 1, "auto_promote": false}"#,
                                                      headers: Self.bearer)
                #expect(again.status == .ok, "\(again.text)")
                let conflict = try await client.postJSON("/admin/models/tiny-nlu/rollout", #"{"candidate_version": 3}"#, headers: Self.bearer)
                #expect(conflict.status == .conflict)
                let rollback = try await client.post("/admin/models/tiny-nlu/rollout/rollback", headers: Self.bearer, body: ByteBuffer())
                #expect(try rollback.json["state"] as? String == "rolled_back")
            }
            #expect(try server.models.resolve("tiny-nlu").version == 2)
        }
    }

    /// Sends `count` v2 JSON infer requests (4 clients, one text each) to `path`; returns the
    /// failures and the versions that answered.
    static func driveV2(port: Int, path: String, count: Int) async throws -> (failed: Int, versions: Set<String>) {
        let direct = try DirectNLU()
        let texts = ServeFixtures.texts(count)
        let bodies = try texts.map { text -> String in
            let rows = try InferenceProtocolTests.rows([text], direct: direct)
            func tensor(_ name: String, _ values: [Int64]) -> String {
                #"{"name": "\#(name)", "shape": \#(rows.shape), "datatype": "INT64", "data": \#(values)}"#
            }
            return #"{"inputs": [\#(tensor("input_ids", rows.ids)), \#(tensor("attention_mask", rows.mask)), \#(tensor("token_type_ids", rows.types))]}"#
        }
        return try await withThrowingTaskGroup(of: (Int, Set<String>).self) { group in
            for clientIndex in 0..<4 {
                group.addTask {
                    try await withClient(port: port) { client in
                        var failed = 0
                        var versions: Set<String> = []
                        for index in stride(from: clientIndex, to: count, by: 4) {
                            let response = try await client.postJSON(path, bodies[index])
                            if response.status != .ok { failed += 1; continue }
                            if let version = try response.json["model_version"] as? String { versions.insert(version) }
                        }
                        return (failed, versions)
                    }
                }
            }
            return try await group.reduce(into: (0, [])) { $0.0 += $1.0; $0.1.formUnion($1.1) }
        }
    }

    @Test("v2 infer takes part in roll-outs: a bad candidate (shuffled labels, same logits) is rolled back; pinned versions are not mirrored")
    func v2RolloutRollsBackBadCandidate() async throws {
        try await withServer(ServeFixtures.configuration { $0.adminToken = Self.token }) { server, port in
            try await withClient(port: port) { client in
                let start = try await client.postJSON(
                    "/admin/models/tiny-nlu/rollout", #"{"candidate_version": 3, "percent": 50, "window_requests": 20}"#, headers: Self.bearer)
                #expect(start.status == .ok, "\(start.text)")
            }
            // A pinned version answers itself and feeds nothing to the roll-out.
            let pinned = try await Self.driveV2(port: port, path: "/v2/models/tiny-nlu/versions/1/infer", count: 40)
            #expect(pinned.failed == 0 && pinned.versions == ["1"])
            try await withClient(port: port) { client in
                let status = try await client.get("/admin/models/tiny-nlu/rollout", headers: Self.bearer).json
                #expect(status["state"] as? String == "running" && status["compared"] as? Int == 0, "\(status)")
            }
            let routed = try await Self.driveV2(port: port, path: "/v2/models/tiny-nlu/infer", count: 160)
            #expect(routed.failed == 0, "no client sees a failure during the roll-out")
            #expect(routed.versions.contains("3"), "the candidate answered part of the traffic before the roll-back")
            try await withClient(port: port) { client in
                let status = try await client.get("/admin/models/tiny-nlu/rollout", headers: Self.bearer).json
                #expect(status["state"] as? String == "rolled_back", "\(status)")
                #expect((status["reason"] as? String ?? "").contains("agrees"))
            }
            #expect(try server.models.resolve("tiny-nlu").version == 1)
        }
    }

    @Test("v2 infer: a good candidate (same weights and labels) is promoted automatically")
    func v2RolloutPromotesGoodCandidate() async throws {
        try await withServer(ServeFixtures.configuration { $0.adminToken = Self.token }) { server, port in
            try await withClient(port: port) { client in
                let start = try await client.postJSON(
                    "/admin/models/tiny-nlu/rollout",
                    #"{"candidate_version": 2, "percent": 50, "window_requests": 20, "max_latency_ratio": 100}"#, headers: Self.bearer)
                #expect(start.status == .ok, "\(start.text)")
            }
            let routed = try await Self.driveV2(port: port, path: "/v2/models/tiny-nlu/infer", count: 160)
            #expect(routed.failed == 0)
            #expect(try server.models.resolve("tiny-nlu").version == 2)
        }
    }
}
