// GemmTimingCache: which of cuBLASLt's candidate algorithms autotuning found fastest per GEMM
// shape, kept so that timing runs once per shape: in a process (every engine instance of a
// `kiln serve --device cuda` after the first, every bucket of every version) and across builds
// (`kiln build --target cuda --timing-cache FILE` reads and extends a file).
// Why an index is enough: cuBLASLt's heuristic returns the same candidate list, in the same
// order, for the same descriptors on the same GPU model and library version; the cache is keyed
// by exactly those (GPU name, architecture, cuBLASLt version, candidates asked for) and a
// recorded index outside the list a later query returns is ignored (timed again).
import Foundation
import Synchronization

/// Autotuning choices for one GPU model and cuBLASLt version.
public struct GemmTimingCache: Codable, Sendable, Equatable {
    /// The GPU name (e.g. `NVIDIA H100 80GB HBM3`), its architecture (`sm_90`) and cuBLASLt's
    /// version: choices are only reused where all three match.
    public var device: String
    public var architecture: String
    public var cublasLt: Int
    /// How many heuristic candidates were timed (an index means nothing for another count).
    public var candidates: Int
    /// Shape key (CuBLASLtGemm.key) -> index of the fastest candidate.
    public var choices: [String: Int]

    /// Candidates autotuning times per shape today (CuBLASLtGemm.autotuneCandidates).
    public static let currentCandidates = 32

    public init(device: String, architecture: String, cublasLt: Int, candidates: Int = GemmTimingCache.currentCandidates,
                choices: [String: Int] = [:]) {
        self.device = device
        self.architecture = architecture
        self.cublasLt = cublasLt
        self.candidates = candidates
        self.choices = choices
    }

    /// What the cache's choices are valid for.
    var scope: String { "\(device)|\(architecture)|\(cublasLt)|\(candidates)" }

    /// Whether the choices apply to `other`'s GPU model and library.
    public func sameScope(as other: GemmTimingCache) -> Bool { scope == other.scope }

    /// Reads a cache file.
    public static func load(from url: URL) throws -> GemmTimingCache {
        try JSONDecoder().decode(GemmTimingCache.self, from: Data(contentsOf: url))
    }

    /// Writes the cache as JSON (sorted keys, so files diff cleanly).
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encoder.encode(self).write(to: url, options: .atomic)
    }

    /// The process-wide store every engine consults before timing and records into after.
    static let shared = Store()

    /// Choices by scope, shared by the engines of one process.
    final class Store: Sendable {
        private let scopes = Mutex<[String: [String: Int]]>([:])

        func choice(scope: String, key: String) -> Int? {
            scopes.withLock { $0[scope]?[key] }
        }

        func record(scope: String, key: String, choice: Int) {
            scopes.withLock { $0[scope, default: [:]][key] = choice }
        }

        /// Adds a loaded cache's choices (existing entries of this process win: they were timed here).
        func merge(_ cache: GemmTimingCache) {
            scopes.withLock { $0[cache.scope, default: [:]].merge(cache.choices) { mine, _ in mine } }
        }

        /// Every choice recorded for `cache`'s scope, as a cache of that scope.
        func snapshot(like cache: GemmTimingCache) -> GemmTimingCache {
            var copy = cache
            copy.choices = scopes.withLock { $0[cache.scope] ?? [:] }
            return copy
        }
    }
}
