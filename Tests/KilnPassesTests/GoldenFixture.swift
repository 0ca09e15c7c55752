import Foundation
import KilnCore

/// A golden fixture written by `tools/make_fixtures.py`: a model, its inputs, and the outputs
/// ONNX Runtime computed for them.
struct GoldenFixture: CustomStringConvertible, Sendable {
    let directory: URL
    /// The max-abs tolerance the manifest states (1e-4 unless it says otherwise).
    let tolerance: Float

    var name: String { directory.lastPathComponent }
    var description: String { name }
    var modelURL: URL { directory.appendingPathComponent("model.onnx") }

    /// Every fixture folder under `Tests/Fixtures/<group>`, sorted by name.
    static func all(in group: String) -> [GoldenFixture] {
        let root = fixturesRoot.appendingPathComponent(group)
        let folders = (try? FileManager.default.contentsOfDirectory(at: root, includingPropertiesForKeys: nil)) ?? []
        return folders.sorted { $0.lastPathComponent < $1.lastPathComponent }.compactMap { folder in
            let manifestURL = folder.appendingPathComponent("manifest.json")
            guard let data = try? Data(contentsOf: manifestURL),
                let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { return nil }
            return GoldenFixture(directory: folder, tolerance: (manifest["tolerance"] as? Double).map(Float.init) ?? 1e-4)
        }
    }

    static var fixturesRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    }

    /// Tensors in `inputs/` or `outputs/` (or a numbered set such as `inputs_1/`), by file name.
    func tensors(_ folder: String) throws -> [String: Tensor] {
        let url = directory.appendingPathComponent(folder)
        let files = try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
        var tensors: [String: Tensor] = [:]
        for file in files where file.pathExtension == "npy" {
            tensors[file.deletingPathExtension().lastPathComponent] = try NPYFile.read(file)
        }
        return tensors
    }

    /// Names of the input sets present (`inputs`, `inputs_1`, ...), each paired with its outputs folder.
    var inputSets: [(inputs: String, outputs: String)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return entries.filter { $0.hasPrefix("inputs") }.sorted().map { ($0, $0.replacingOccurrences(of: "inputs", with: "outputs")) }
    }
}

/// Largest absolute difference between two tensors' elements (infinity if shapes differ;
/// NaN in the same place counts as equal).
func maxAbsDifference(_ actual: Tensor, _ expected: Tensor) -> Float {
    guard actual.shape == expected.shape else { return .infinity }
    var worst: Float = 0
    for (a, e) in zip(actual.floats, expected.floats) {
        if a.isNaN && e.isNaN { continue }
        if a == e { continue }  // Same infinities.
        let difference = abs(a - e)
        if difference.isNaN { return .infinity }
        worst = max(worst, difference)
    }
    return worst
}
