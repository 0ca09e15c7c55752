import Foundation

/// One version of one model on disk: `<repository>/<name>/<version>/` holding `model.onnx`,
/// `tokenizer.json` and `model.json`. Engine factories receive this and nothing else.
public struct ModelVersionDirectory: Sendable, Equatable {
    /// The model's name (its directory name).
    public var name: String
    /// The version number (its directory name).
    public var version: Int
    /// The version directory.
    public var url: URL

    /// Creates a handle on a version directory.
    public init(name: String, version: Int, url: URL) {
        self.name = name
        self.version = version
        self.url = url
    }

    /// `model.onnx`.
    public var modelURL: URL { url.appendingPathComponent("model.onnx") }
    /// `tokenizer.json`.
    public var tokenizerURL: URL { url.appendingPathComponent("tokenizer.json") }
    /// `model.json`, the model card.
    public var cardURL: URL { url.appendingPathComponent("model.json") }
}
