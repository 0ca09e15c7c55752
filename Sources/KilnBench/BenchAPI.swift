import Foundation

/// The request shapes `kiln bench` can speak, so one load generator drives Kiln and its peers alike.
public enum BenchAPI: String, CaseIterable, Codable, Sendable {
    /// Kiln's NLU API: `POST {URL}/v1/parse` with `{"text": "...", "model"?: "..."}`.
    case kiln
    /// Open Inference Protocol v2: `POST {URL}/v2/models/{model}/infer` with one BYTES tensor holding the text.
    case v2
    /// A generic text endpoint (TorchServe-style handlers): `POST {URL}` as given with `{"text": "..."}`.
    case text
}

/// Where and what to POST for one utterance: the endpoint URL and a ready-made JSON body per text.
///
/// Bodies are built once before the run so the client spends its time sending, not encoding.
public struct RequestTemplate: Sendable {
    /// The endpoint every request goes to.
    public let endpoint: String
    /// The API spoken.
    public let api: BenchAPI

    /// Builds the endpoint for an API.
    /// - Parameters:
    ///   - baseURL: the server's base URL (e.g. `http://127.0.0.1:8080`); for `.text` the full endpoint.
    ///   - api: the API to speak.
    ///   - model: the model name (required by `.v2`, optional for `.kiln`).
    /// - Throws: ``BenchError/invalidArgument(_:)`` when `.v2` has no model or the URL is not http(s).
    public init(baseURL: String, api: BenchAPI, model: String?) throws {
        guard let url = URL(string: baseURL), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw BenchError.invalidArgument("'\(baseURL)' is not an http(s) URL such as http://127.0.0.1:8080")
        }
        let base = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        switch api {
        case .kiln: endpoint = base + "/v1/parse"
        case .text: endpoint = baseURL
        case .v2:
            guard let model, !model.isEmpty else {
                throw BenchError.invalidArgument("--api v2 needs --model NAME (the path is /v2/models/NAME/infer)")
            }
            let escaped = model.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? model
            endpoint = base + "/v2/models/\(escaped)/infer"
        }
        self.api = api
    }
}

/// JSON request bodies for each API.
public enum BenchRequestBody {
    /// The body for one utterance.
    /// - Parameters:
    ///   - text: the utterance.
    ///   - api: the API spoken.
    ///   - model: the model name, sent in the body for `.kiln` when given.
    ///   - v2Input: the name of the v2 BYTES input tensor.
    /// - Returns: UTF-8 JSON bytes.
    public static func make(text: String, api: BenchAPI, model: String?, v2Input: String = "text") -> [UInt8] {
        let object: [String: Any]
        switch api {
        case .kiln:
            var fields: [String: Any] = ["text": text]
            if let model { fields["model"] = model }
            object = fields
        case .text:
            object = ["text": text]
        case .v2:
            object = ["inputs": [["name": v2Input, "shape": [1], "datatype": "BYTES", "data": [text]]]]
        }
        // Sorted keys keep bodies byte-for-byte reproducible across runs.
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return [UInt8](data)
    }
}

/// Errors that stop a benchmark before or between runs (errors during a run are counted, never thrown).
public enum BenchError: Error, CustomStringConvertible, Equatable {
    /// A command-line value is unusable.
    case invalidArgument(String)
    /// The server could not be reached at all.
    case serverUnreachable(url: String, detail: String)
    /// The server answered the first request with a client error, so every request would fail the same way.
    case requestRejected(url: String, status: Int, body: String)
    /// No utterances to send.
    case noTexts(String)

    public var description: String {
        switch self {
        case .invalidArgument(let message): return message
        case .serverUnreachable(let url, let detail):
            return "cannot reach \(url): \(detail). Is the server running and listening on that address?"
        case .requestRejected(let url, let status, let body):
            return "\(url) answered HTTP \(status) to the first request: \(body)\nCheck --api, --model and --v2-input for this server."
        case .noTexts(let message): return message
        }
    }
}
