import Foundation

/// The model repository on disk: a directory of `<name>/<version>/` folders, plus an optional
/// `repository.json` naming the default model. Read-only; ``ModelManager`` decides what is loaded.
public struct ModelRepository: Sendable {
    /// The repository's root directory.
    public let root: URL

    /// Opens a repository.
    /// - Parameter root: the directory holding one folder per model.
    /// - Throws: ``ServeError/modelLoadFailed(_:)`` when the directory does not exist.
    public init(root: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ServeError.modelLoadFailed(
                "model repository \(root.path) does not exist: pass --model-repository DIR (a directory of <name>/<version>/ folders)")
        }
        self.root = root
    }

    /// The models in the repository, sorted by name (folders holding at least one version).
    public func modelNames() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return entries.filter { !versions(of: $0).isEmpty }.sorted()
    }

    /// The versions of a model on disk (folders named by a positive integer with a `model.json`), ascending.
    public func versions(of name: String) -> [Int] {
        guard Self.isSafeName(name) else { return [] }
        let directory = root.appendingPathComponent(name)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return entries.compactMap { entry -> Int? in
            guard let version = Int(entry), version > 0 else { return nil }
            let card = directory.appendingPathComponent(entry).appendingPathComponent("model.json")
            return FileManager.default.fileExists(atPath: card.path) ? version : nil
        }.sorted()
    }

    /// The directory of one version.
    /// - Throws: ``ServeError/modelNotFound(_:)`` when the model or version is not on disk.
    public func directory(name: String, version: Int) throws -> ModelVersionDirectory {
        guard versions(of: name).contains(version) else {
            throw ServeError.modelNotFound("model '\(name)' version \(version) is not in the repository \(root.path)")
        }
        return ModelVersionDirectory(
            name: name, version: version, url: root.appendingPathComponent(name).appendingPathComponent(String(version)))
    }

    /// The default model: `repository.json`'s `default`, else the only model, else the first by name.
    public func defaultModelName() -> String? {
        struct Manifest: Decodable { var `default`: String? }
        let manifestURL = root.appendingPathComponent("repository.json")
        if let data = try? Data(contentsOf: manifestURL),
            let name = (try? JSONDecoder().decode(Manifest.self, from: data))?.default,
            !versions(of: name).isEmpty
        {
            return name
        }
        return modelNames().first
    }

    /// Whether a client-supplied model name can name a folder (no path separators or dot-dot).
    static func isSafeName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 128 && !name.contains("/") && !name.contains("\\") && name != "." && name != ".."
            && !name.hasPrefix(".")
    }
}
