import Foundation
import HTTPTypes
import HummingbirdTesting
import Testing

@testable import KilnServe

/// `kiln serve --precision int8` end to end, through the `kiln` binary the test build produced:
/// `kiln calibrate` writes a calibration cache for the fixture model (40 utterances, percentile),
/// then a server on a copy of the fixture repository serves that model at int8 and a second model
/// without a cache at fp32, saying why (log, `/v2/models/{m}/config`, metrics). Answers of the int8
/// engine are compared with the fp32 reference executor called directly. Tolerance: the fixture
/// is a tiny random model (some intents near a tie), so int8 must keep the top intent on at least
/// 18 of 20 texts with a median top-intent confidence change <= 0.05, and must differ from fp32
/// somewhere (it really is quantized) (the int8 accuracy gate on real models is
/// KilnCalibrationTests' and `kiln verify`'s job, not this test's).
@Suite(.serialized) struct ServeInt8EndToEndTests {
    /// The `kiln` executable beside the test bundle (`swift test` builds every product).
    static var kilnBinary: URL? {
        if let path = ProcessInfo.processInfo.environment["KILN_BINARY"], !path.isEmpty { return URL(fileURLWithPath: path) }
        var folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<3 {
            let candidate = folder.appendingPathComponent("kiln")
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
            folder = folder.deletingLastPathComponent()
        }
        return nil
    }

    @Test("int8 for the model with a calibration cache, fp32 with the reason for the one without")
    func servesInt8AndReportsFallback() async throws {
        let kiln = try #require(Self.kilnBinary, "no kiln executable beside the test bundle (build it: swift build --product kiln, or set KILN_BINARY)")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-int8-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: work) }
        let repository = work.appendingPathComponent("models")
        let source = ServeFixtures.root.appendingPathComponent("\(ServeFixtures.model)/1")
        for name in ["tiny-nlu", "tiny-nocal"] {
            try FileManager.default.createDirectory(at: repository.appendingPathComponent(name), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: source, to: repository.appendingPathComponent("\(name)/1"))
        }
        let texts = ServeFixtures.texts(40)
        let textsFile = work.appendingPathComponent("calibration.txt")
        try texts.joined(separator: "\n").write(to: textsFile, atomically: true, encoding: .utf8)
        let calibration = repository.appendingPathComponent("tiny-nlu/1/calibration.json")
        let calibrate = try Self.run(kiln, ["calibrate", repository.appendingPathComponent("tiny-nlu/1/model.onnx").path, "--data", textsFile.path,
                                            "--samples", "40", "--method", "percentile", "-o", calibration.path])
        #expect(calibrate == 0)
        #expect(FileManager.default.fileExists(atPath: calibration.path))

        let cache = work.appendingPathComponent("plans")
        let server = try ServerProcess(kiln: kiln, arguments: [
            "serve", "--model-repository", repository.path, "--port", "0", "--precision", "int8", "--log-level", "info",
        ], environment: ["KILN_CACHE_DIR": cache.path])
        defer { server.stop() }
        let port = try server.waitForPort(seconds: 180)
        let direct = try DirectNLU()

        try await withClient(port: port) { client in
            let int8Config = try await client.get("/v2/models/tiny-nlu/config").json
            let int8Parameters = try #require(int8Config["parameters"] as? [String: Any])
            #expect((int8Parameters["precision"] as? [String: Any])?["string_value"] as? String == "int8")
            #expect(int8Parameters["precision_note"] == nil)

            let fallbackConfig = try await client.get("/v2/models/tiny-nocal/config").json
            let fallbackParameters = try #require(fallbackConfig["parameters"] as? [String: Any])
            #expect((fallbackParameters["precision"] as? [String: Any])?["string_value"] as? String == "fp32")
            #expect((fallbackParameters["requested_precision"] as? [String: Any])?["string_value"] as? String == "int8")
            let note = (fallbackParameters["precision_note"] as? [String: Any])?["string_value"] as? String ?? ""
            #expect(note.contains("no calibration cache"), "note: \(note)")

            let metrics = try await client.get("/metrics").text
            #expect(metrics.contains(#"kiln_model_loaded{model="tiny-nlu",version="1",precision="int8"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"kiln_model_loaded{model="tiny-nocal",version="1",precision="fp32"} 1"#))
            #expect(metrics.contains(#"kiln_model_precision_fallback{model="tiny-nocal",version="1",requested="int8",precision="fp32"} 1"#))

            var agree = 0
            var differences: [Float] = []
            for text in texts.prefix(20) {
                let response = try await client.postJSON("/v1/parse", #"{"text": \#(jsonString(text)), "model": "tiny-nlu"}"#)
                #expect(response.status == .ok)
                let served = try response.decode(ParseResult.self)
                let reference = try direct.parse(text)
                if let intent = served.intent, intent.name == reference.intents.first?.name {
                    agree += 1
                    differences.append(abs(intent.confidence - (reference.intents.first?.confidence ?? 0)))
                }
            }
            #expect(agree >= 18, "int8 kept the fp32 top intent on \(agree) of 20 texts")
            differences.sort()
            let median = differences.isEmpty ? 1 : differences[differences.count / 2]
            #expect(median <= 0.05, "median |int8 - fp32| top-intent confidence \(median) (all: \(differences))")
            #expect(differences.contains { $0 > 1e-5 }, "int8 answers equal fp32 to 1e-5: is the engine really int8?")
        }
        server.stop()
        #expect(server.exitStatus == 0)
        let log = server.output
        #expect(log.contains("tiny-nocal/1: serving fp32, not int8"), "\(log)")
        #expect(log.contains("tiny-nlu/1: int8 with calibration"))
        #expect(log.contains("warm-up"))
        // The int8 plan is cached in a folder keyed by the calibration cache, apart from fp32 plans.
        let folders = try FileManager.default.contentsOfDirectory(atPath: cache.path)
        let int8Folder = try #require(folders.first { $0.hasPrefix("int8-calibration-") }, "\(folders)")
        let plans = try FileManager.default.contentsOfDirectory(atPath: cache.appendingPathComponent(int8Folder).path)
        #expect(plans.contains { $0.contains("-int8-") && $0.hasSuffix(".kiln") }, "\(plans)")
        #expect(folders.contains { $0.contains("-fp32-") && $0.hasSuffix(".kiln") }, "\(folders)")
    }

    /// Runs the binary to completion; returns its exit status.
    static func run(_ executable: URL, _ arguments: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// A `kiln serve` child process whose log (stderr) is collected.
final class ServerProcess: @unchecked Sendable {
    private let process = Process()
    private let pipe = Pipe()
    private let lock = NSLock()
    private var collected = Data()

    init(kiln: URL, arguments: [String], environment: [String: String]) throws {
        process.executableURL = kiln
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardError = pipe
        process.standardOutput = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.collected.append(data) }
        }
        try process.run()
    }

    /// Everything the server logged so far.
    var output: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }

    /// The port from the "listening on http://127.0.0.1:PORT" line, once the server is ready.
    func waitForPort(seconds: Double) throws -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let range = output.range(of: "listening on http://127.0.0.1:") {
                let digits = output[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits) { return port }
            }
            guard process.isRunning else { throw TestFailure("kiln serve exited (\(process.terminationStatus)): \(output)") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TestFailure("kiln serve did not listen within \(seconds) s: \(output)")
    }

    /// Sends SIGTERM (graceful drain) and waits for the exit.
    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        pipe.fileHandleForReading.readabilityHandler = nil
    }

    /// The exit status after ``stop()``.
    var exitStatus: Int32 { process.isRunning ? -1 : process.terminationStatus }
}
