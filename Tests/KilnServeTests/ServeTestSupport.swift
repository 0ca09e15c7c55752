import Foundation
import HTTPTypes
import HummingbirdTesting
import KilnCore
import KilnONNX
import KilnRuntime
import KilnText
import Logging
import NIOCore
import Testing

@testable import KilnServe

/// The fixture repository (tools/make_serve_fixtures.py): `tiny-nlu` versions 1, 2 (same weights)
/// and 3 (shuffled labels).
enum ServeFixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/serve/models")
    static let model = "tiny-nlu"

    /// The reference executor, as `kiln serve` builds it.
    static let engineFactory: EngineFactory = { directory in
        try ReferenceExecutor(graph: ONNXImporter().load(directory.modelURL))
    }

    /// Utterances with different lengths and characters (offsets in Unicode scalars matter).
    static func texts(_ count: Int) -> [String] {
        let words = ["transfer", "50", "dollars", "to", "savings", "book", "a", "hotel", "in", "new", "york", "friday",
                     "cancel", "paris", "hello", "balance", "café", "zürich", "thanks", "bye", "room", "london", "june"]
        return (0..<count).map { index in
            var generator = SplitMix(seed: UInt64(index) &* 7919 &+ 17)
            let length = 2 + Int(generator.next() % 12)
            let sentence = (0..<length).map { _ in words[Int(generator.next() % UInt64(words.count))] }.joined(separator: " ")
            return "\(sentence) #\(index)"
        }
    }

    /// A configuration for tests: loopback, a free port, version 1 serving.
    static func configuration(_ adjust: (inout ServeConfiguration) -> Void = { _ in }) -> ServeConfiguration {
        var configuration = ServeConfiguration(modelRepository: root)
        configuration.port = 0
        configuration.defaultModelSettings.version = 1
        configuration.defaultModelSettings.maxQueueDelayMs = 2
        // The shared CI cores can be very busy: don't let queue timeouts fail parity tests.
        configuration.defaultModelSettings.queueTimeoutMs = 120_000
        // The fixtures serve on the reference executor, which has no first-call costs to warm away;
        // several tests also wrap it in engines that block on a gate or break on purpose, which a
        // warm-up run would trip over before the test starts. EngineWarmUpTests turn it on.
        configuration.defaultModelSettings.warmUp = false
        adjust(&configuration)
        return configuration
    }

    static var logger: Logger {
        var logger = Logger(label: "kiln.serve.test")
        logger.logLevel = .warning
        return logger
    }
}

/// A deterministic random sequence for test inputs.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Starts a server on a free loopback port, runs `body` with it, and always stops it.
func withServer<T: Sendable>(
    _ configuration: ServeConfiguration = ServeFixtures.configuration(),
    engineFactory: @escaping EngineFactory = ServeFixtures.engineFactory,
    _ body: @Sendable (KilnServer, Int) async throws -> T
) async throws -> T {
    let server = try KilnServer(configuration: configuration, engineFactory: engineFactory, logger: ServeFixtures.logger)
    let handle = try await server.start()
    do {
        let value = try await body(server, handle.port)
        try await handle.stop()
        return value
    } catch {
        try? await handle.stop()
        throw error
    }
}

/// An HTTP/1.1 client on one loopback connection.
func withClient<T: Sendable>(port: Int, _ body: @escaping @Sendable (TestClient) async throws -> T) async throws -> T {
    try await TestClient.withClient(host: "127.0.0.1", port: port, configuration: .init(timeout: .seconds(60)), operation: body)
}

extension TestClient {
    /// POSTs a JSON value (or raw string) and returns the response.
    func postJSON(_ path: String, _ json: String, headers: HTTPFields = [:]) async throws -> TestClient.Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return try await post(path, headers: fields, body: ByteBuffer(string: json))
    }
}

extension TestClient.Response {
    /// The body's bytes.
    var bytes: [UInt8] { body.map { Array($0.readableBytesView) } ?? [] }

    /// The body as a JSON object.
    var json: [String: Any] {
        get throws {
            let data = Data(bytes)
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw TestFailure("response is not a JSON object: \(String(decoding: data, as: UTF8.self))")
            }
            return object
        }
    }

    /// The body as text.
    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// Decodes the body.
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// JSON string literal for a text.
func jsonString(_ text: String) -> String {
    String(decoding: try! JSONEncoder().encode(text), as: UTF8.self)
}

/// The answer the server should give: the engine, tokenizer and decoders called directly, batch 1.
struct DirectNLU: Sendable {
    let engine: any InferenceEngine
    let encoder: TextEncoder
    let decoder: NLUResultDecoder

    init(version: Int = 1) throws {
        let directory = try ModelRepository(root: ServeFixtures.root).directory(name: ServeFixtures.model, version: version)
        engine = try ServeFixtures.engineFactory(directory)
        let card = try ModelCard.load(from: directory.cardURL)
        encoder = TextEncoder(tokenizer: try WordPieceTokenizer(contentsOf: directory.tokenizerURL), maxLength: card.maxSeqLength)
        decoder = NLUResultDecoder(card: card)
    }

    func parse(_ text: String, topK: Int = 5) throws -> NLUResultDecoder.Decoded {
        let encoded = try encoder.encode(text)
        let input = encoded.engineInput
        let outputs = try engine.run([
            "input_ids": try Tensor(ints: input.inputIds, shape: [1, input.length]),
            "attention_mask": try Tensor(ints: input.attentionMask, shape: [1, input.length]),
            "token_type_ids": try Tensor(ints: input.tokenTypeIds, shape: [1, input.length]),
        ])
        return try decoder.decode(outputs, encoded: encoded, topK: topK)
    }
}

/// Checks a served answer against the direct one: same intents and slots, probabilities within 1e-4
/// (padding in a batch may change float summation order, not the answer).
func expectSameAnswer(_ served: ParseResult, _ direct: NLUResultDecoder.Decoded, text: String,
                      sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(served.intents.map(\.name) == direct.intents.map(\.name), "intents for \(text)", sourceLocation: sourceLocation)
    for (a, b) in zip(served.intents, direct.intents) {
        #expect(abs(a.confidence - b.confidence) <= 1e-4, "intent confidence for \(text)", sourceLocation: sourceLocation)
    }
    #expect(served.slots.map { "\($0.name)|\($0.value)|\($0.start)|\($0.end)" }
            == direct.slots.map { "\($0.name)|\($0.value)|\($0.start)|\($0.end)" }, "slots for \(text)", sourceLocation: sourceLocation)
    for (a, b) in zip(served.slots, direct.slots) {
        #expect(abs(a.confidence - b.confidence) <= 1e-4, "slot confidence for \(text)", sourceLocation: sourceLocation)
    }
}
