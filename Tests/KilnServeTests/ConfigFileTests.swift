import Foundation
import Testing

@testable import KilnServe

/// `kiln serve --config`: JSON and YAML files with the same keys give the same configuration and the
/// same validation errors.
@Suite("serve config file")
struct ConfigFileTests {
    /// Writes `text` to a temporary file with `fileExtension` and returns its URL.
    private func write(_ text: String, fileExtension: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("kiln-serve-config-\(UUID().uuidString).\(fileExtension)")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    private func applied(_ text: String, fileExtension: String) throws -> ServeConfiguration {
        var configuration = ServeConfiguration(modelRepository: URL(fileURLWithPath: "/tmp"))
        let url = try write(text, fileExtension: fileExtension)
        defer { try? FileManager.default.removeItem(at: url) }
        try configuration.apply(configFile: url)
        return configuration
    }

    /// The error message `apply` throws for a file, with the temporary path replaced by FILE.
    private func failure(_ text: String, fileExtension: String) throws -> String? {
        var configuration = ServeConfiguration(modelRepository: URL(fileURLWithPath: "/tmp"))
        let url = try write(text, fileExtension: fileExtension)
        defer { try? FileManager.default.removeItem(at: url) }
        do { try configuration.apply(configFile: url) } catch let error as ServeError {
            return "\(error)".replacingOccurrences(of: url.path, with: "FILE")
        }
        return nil
    }

    @Test("the YAML fixture and the JSON fixture configure the same thing")
    func fixturesAgree() throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/serve")
        var fromJSON = ServeConfiguration(modelRepository: URL(fileURLWithPath: "/tmp"))
        try fromJSON.apply(configFile: fixtures.appendingPathComponent("kiln-serve.json"))
        var fromYAML = ServeConfiguration(modelRepository: URL(fileURLWithPath: "/tmp"))
        try fromYAML.apply(configFile: fixtures.appendingPathComponent("kiln-serve.yaml"))
        #expect(fromYAML.modelSettings == fromJSON.modelSettings)
        #expect(fromYAML.settings(for: "tiny-nlu").version == 1)
    }

    @Test("every key decodes from YAML")
    func allKeysFromYAML() throws {
        let configuration = try applied("""
            defaults:
              max_batch_size: 32
              max_queue_delay_ms: 2.5
              batch_wait: always
            models:
              support-en:
                max_batch_size: 8
                max_batch_tokens: 512
                preferred_batch_sizes: [4, 8]
                max_queue_size: 64
                queue_timeout_ms: 500
                instances: 2
                version: 3
            admin_token: secret
            max_body_bytes: 1048576
            max_text_characters: 1000
            load: [support-en, snips]
            """, fileExtension: "yaml")
        #expect(configuration.defaultModelSettings.maxBatchSize == 32)
        #expect(configuration.defaultModelSettings.maxQueueDelayMs == 2.5)
        #expect(configuration.defaultModelSettings.batchWait == .always)
        let model = configuration.settings(for: "support-en")
        #expect(model.maxBatchSize == 8 && model.maxQueueSize == 64 && model.queueTimeoutMs == 500)
        #expect(model.maxBatchTokens == 512 && configuration.defaultModelSettings.maxBatchTokens == nil)
        #expect(model.preferredBatchSizes == [4, 8] && configuration.defaultModelSettings.preferredBatchSizes.isEmpty)
        #expect(model.instances == 2 && model.version == 3 && model.batchWait == .whenBusy)
        #expect(configuration.adminToken == "secret")
        #expect(configuration.maxBodyBytes == 1_048_576 && configuration.maxTextCharacters == 1000)
        #expect(configuration.models == ["support-en", "snips"])
    }

    @Test("a wrong type is the same error in JSON and YAML")
    func wrongTypeSameMessage() throws {
        let json = try failure(#"{"models": {"m": {"max_batch_size": "many"}}}"#, fileExtension: "json")
        let yaml = try failure("models:\n  m:\n    max_batch_size: many\n", fileExtension: "yml")
        #expect(json != nil)
        #expect(json?.contains("max_batch_size") == true)
        #expect(yaml == json)
    }

    @Test("out-of-range values are refused with the field named, in JSON and YAML")
    func rangeValidation() throws {
        let json = try failure(#"{"models": {"m": {"instances": 0}}}"#, fileExtension: "json")
        let yaml = try failure("models:\n  m:\n    instances: 0\n", fileExtension: "yaml")
        #expect(json?.contains("models.m.instances must be at least 1") == true)
        #expect(yaml == json)
        let delay = try failure("defaults:\n  max_queue_delay_ms: -1\n", fileExtension: "yaml")
        #expect(delay?.contains("defaults.max_queue_delay_ms must not be negative") == true)
        let wait = try failure("defaults:\n  batch_wait: sometimes\n", fileExtension: "yaml")
        #expect(wait?.contains("batch_wait") == true, "\(wait ?? "no error")")
        let preferred = try failure("defaults:\n  max_batch_size: 8\n  preferred_batch_sizes: [4, 16]\n", fileExtension: "yaml")
        #expect(preferred?.contains("preferred_batch_sizes must be between 1 and max_batch_size (8); got 16") == true, "\(preferred ?? "no error")")
    }

    @Test("broken YAML syntax is a clear error, and an empty YAML file is an empty config")
    func syntax() throws {
        let broken = try failure("models: [unclosed\n", fileExtension: "yaml")
        #expect(broken?.contains("invalid YAML") == true)
        let empty = try applied("# nothing here\n", fileExtension: "yaml")
        #expect(empty.modelSettings.isEmpty)
    }
}
