import Foundation

/// The validate stage for the NLU API: the body of `POST /v1/parse` and `/v1/parse/batch`,
/// decoded and checked before anything is queued.
public struct ParseRequest: Sendable, Equatable {
    /// The texts to parse (one for `/v1/parse`).
    public var texts: [String]
    /// The model to use; nil for the default model.
    public var model: String?
    /// How many intents to return.
    public var topK: Int
    /// Higher runs first when the queue is busy.
    public var priority: Int
    /// Seconds the request may wait in the queue; nil for the model's setting.
    public var timeout: Double?

    private struct Single: Decodable {
        var text: String
        var model: String?
        var top_k: Int?
        var priority: Int?
        var timeout_ms: Double?
    }

    private struct Batch: Decodable {
        var texts: [String]
        var model: String?
        var top_k: Int?
        var priority: Int?
        var timeout_ms: Double?
    }

    /// Decodes and validates a request body.
    /// - Parameters:
    ///   - body: the raw body.
    ///   - batch: whether this is `/v1/parse/batch` (`texts`) rather than `/v1/parse` (`text`).
    ///   - limits: the server's limits.
    /// - Returns: the validated request.
    /// - Throws: ``ServeError/badRequest(_:)`` or ``ServeError/payloadTooLarge(_:)`` with a message for the client.
    public static func decode(_ body: [UInt8], batch: Bool, limits: RequestLimits) throws -> ParseRequest {
        let data = try JSONBody.validated(body, limits: limits)
        let decoder = JSONDecoder()
        var request: ParseRequest
        do {
            if batch {
                let decoded = try decoder.decode(Batch.self, from: data)
                request = ParseRequest(
                    texts: decoded.texts, model: decoded.model, topK: decoded.top_k ?? 5, priority: decoded.priority ?? 0,
                    timeout: decoded.timeout_ms.map { $0 / 1000 })
            } else {
                let decoded = try decoder.decode(Single.self, from: data)
                request = ParseRequest(
                    texts: [decoded.text], model: decoded.model, topK: decoded.top_k ?? 5, priority: decoded.priority ?? 0,
                    timeout: decoded.timeout_ms.map { $0 / 1000 })
            }
        } catch {
            let expected = batch ? #"{"texts": ["...", ...], "model"?: "name", "top_k"?: N}"# : #"{"text": "...", "model"?: "name", "top_k"?: N}"#
            throw ServeError.badRequest("\(DecodingErrorText.describe(error)); expected \(expected)")
        }
        try request.check(batch: batch, limits: limits)
        return request
    }

    private func check(batch: Bool, limits: RequestLimits) throws {
        if batch && texts.isEmpty { throw ServeError.badRequest("'texts' is empty; send at least one text") }
        if texts.count > limits.maxBatchTexts {
            throw ServeError.payloadTooLarge("'texts' has \(texts.count) texts; the limit is \(limits.maxBatchTexts) per request")
        }
        for (index, text) in texts.enumerated() {
            let field = batch ? "texts[\(index)]" : "text"
            if text.unicodeScalars.allSatisfy({ $0.properties.isWhitespace }) {
                throw ServeError.badRequest("'\(field)' is empty; send the customer's utterance")
            }
            let characters = text.unicodeScalars.count
            if characters > limits.maxTextCharacters {
                throw ServeError.payloadTooLarge(
                    "'\(field)' is \(characters) characters; the limit is \(limits.maxTextCharacters) (longer texts are truncated to the model's max_seq_length anyway, so send the relevant part)")
            }
        }
        if topK < 1 || topK > 1000 { throw ServeError.badRequest("'top_k' must be between 1 and 1000 (got \(topK))") }
        if let timeout, !(timeout > 0) || timeout > 600 {
            throw ServeError.badRequest("'timeout_ms' must be between 0 and 600000")
        }
        if let model, !ModelRepository.isSafeName(model) {
            throw ServeError.badRequest("'model' is not a valid model name")
        }
    }
}

/// Limits every request is held to.
public struct RequestLimits: Sendable, Equatable {
    /// The largest body in bytes.
    public var maxBodyBytes: Int
    /// The longest text in characters.
    public var maxTextCharacters: Int
    /// The most texts per batch request.
    public var maxBatchTexts: Int
    /// The deepest JSON nesting.
    public var maxJSONDepth: Int

    /// The limits a configuration sets.
    public init(_ configuration: ServeConfiguration) {
        maxBodyBytes = configuration.maxBodyBytes
        maxTextCharacters = configuration.maxTextCharacters
        maxBatchTexts = configuration.maxBatchTexts
        maxJSONDepth = configuration.maxJSONDepth
    }
}

/// Checks on raw JSON bodies before they reach a decoder.
enum JSONBody {
    /// Checks that a body is non-empty UTF-8 JSON no deeper than the limit.
    /// - Returns: the body as `Data`, ready to decode.
    static func validated(_ body: [UInt8], limits: RequestLimits) throws -> Data {
        guard !body.isEmpty else { throw ServeError.badRequest("the request body is empty; send a JSON object") }
        guard String(validating: body, as: UTF8.self) != nil else {
            throw ServeError.badRequest("the request body is not valid UTF-8; send JSON encoded as UTF-8")
        }
        try checkDepth(body, limit: limits.maxJSONDepth)
        return Data(body)
    }

    /// Rejects JSON nested deeper than `limit` (a cheap scan that skips strings), so no decoder
    /// recurses on hostile input.
    static func checkDepth(_ body: [UInt8], limit: Int) throws {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in body {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > limit { throw ServeError.badRequest("the JSON body is nested deeper than \(limit) levels") }
            case UInt8(ascii: "}"), UInt8(ascii: "]"): depth -= 1
            default: break
            }
        }
    }
}
