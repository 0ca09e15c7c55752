import Foundation

/// The texts a benchmark sends: real utterances, so request lengths are those of real traffic.
public enum Utterances {
    /// The labelled test sets in `../shared/data` that can serve as request texts.
    public enum Dataset: String, CaseIterable, Sendable {
        case snips, atis, banking77, nlupp, cais

        /// The test set that matches a shipped model's domain and language (support-en was trained on NLU++,
        /// support-zh on CAIS); NLU++ for anything else, as the default model is support-en.
        public static func matching(model: String?) -> Dataset {
            let name = (model ?? "").lowercased()
            if name.contains("zh") || name.contains("cais") { return .cais }
            if name.contains("snips") { return .snips }
            if name.contains("banking77") { return .banking77 }
            if name.contains("atis") { return .atis }
            return .nlupp
        }
    }

    /// Reads one utterance per non-empty line of each file, in order.
    /// - Parameter paths: text files.
    /// - Returns: the trimmed lines.
    /// - Throws: ``BenchError/noTexts(_:)`` when a file is unreadable or all files are empty.
    public static func lines(ofFiles paths: [String]) throws -> [String] {
        var texts: [String] = []
        for path in paths {
            guard let content = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw BenchError.noTexts("cannot read --texts file '\(path)' as UTF-8")
            }
            texts += content.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        guard !texts.isEmpty else { throw BenchError.noTexts("the --texts files hold no non-empty line") }
        return texts
    }

    /// Loads a dataset's test utterances.
    /// - Parameters:
    ///   - dataset: which test set.
    ///   - directory: the data directory (the one holding `snips/`, `banking77/`, ...).
    /// - Returns: the utterances in file order.
    /// - Throws: ``BenchError/noTexts(_:)`` when the files are missing or empty.
    public static func load(_ dataset: Dataset, from directory: URL) throws -> [String] {
        let texts: [String]
        switch dataset {
        case .snips, .atis: texts = try lines(ofFiles: [directory.appendingPathComponent("\(dataset.rawValue)/test/seq.in").path])
        case .banking77: texts = try CSVText.firstColumn(of: read(directory.appendingPathComponent("banking77/test.csv")))
        case .cais: texts = CAISText.utterances(in: try read(directory.appendingPathComponent("cais/test/ch.test")))
        case .nlupp: texts = try nluppTexts(directory.appendingPathComponent("nlupp"))
        }
        guard !texts.isEmpty else { throw BenchError.noTexts("no utterances found in \(dataset.rawValue) under \(directory.path)") }
        return texts
    }

    /// Finds `shared/data`: `$KILN_DATA_DIR`, else `../shared/data` next to the working directory or any of its
    /// parents (the layout of the project checkout), else next to the source tree this tool was built from.
    /// - Parameter sourceFile: a source path inside the repository (pass `#filePath`).
    /// - Returns: the directory, or nil when none exists.
    public static func dataDirectory(environment: [String: String] = ProcessInfo.processInfo.environment,
                                     currentDirectory: String = FileManager.default.currentDirectoryPath,
                                     sourceFile: String = #filePath) -> URL? {
        if let explicit = environment["KILN_DATA_DIR"], !explicit.isEmpty { return URL(fileURLWithPath: explicit) }
        var candidates: [URL] = []
        for start in [URL(fileURLWithPath: currentDirectory), URL(fileURLWithPath: sourceFile).deletingLastPathComponent()] {
            var directory = start.standardizedFileURL
            while directory.path != "/" {
                candidates.append(directory.appendingPathComponent("shared/data"))
                candidates.append(directory.deletingLastPathComponent().appendingPathComponent("shared/data"))
                directory = directory.deletingLastPathComponent()
            }
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("README.md").path) }
    }

    private static func read(_ url: URL) throws -> String {
        guard let content = try? String(contentsOf: url, encoding: .utf8) else {
            throw BenchError.noTexts("cannot read \(url.path); set KILN_DATA_DIR to the shared data directory or pass --texts FILE")
        }
        return content
    }

    /// NLU++ keeps utterances in `{banking,hotels}/foldN.json` as `[{"text": ...}]`.
    private static func nluppTexts(_ directory: URL) throws -> [String] {
        var texts: [String] = []
        for domain in ["banking", "hotels"] {
            for fold in 0..<20 {
                let url = directory.appendingPathComponent("\(domain)/fold\(fold).json")
                guard let data = FileManager.default.contents(atPath: url.path) else { continue }
                let items = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
                texts += items.compactMap { ($0["text"] as? String)?.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
            }
        }
        if texts.isEmpty { throw BenchError.noTexts("no NLU++ folds under \(directory.path)") }
        return texts
    }
}

/// The first column of a CSV file with a header row (RFC 4180 quoting), as banking77's `text,category`.
enum CSVText {
    static func firstColumn(of content: String) -> [String] {
        var rows: [String] = []
        var field = ""
        var inQuotes = false
        var column = 0
        var iterator = content.makeIterator()
        var pending: Character? = nil
        func endRow() {
            if column == 0, !field.isEmpty { rows.append(field) }
            field = ""; column = 0
        }
        while let character = pending ?? iterator.next() {
            pending = nil
            if inQuotes {
                if character == "\"" {
                    let next = iterator.next()
                    if next == "\"" { if column == 0 { field.append("\"") } } else { inQuotes = false; pending = next }
                } else if column == 0 {
                    field.append(character)
                }
                continue
            }
            switch character {
            case "\"": inQuotes = true
            case ",":
                if column == 0 { rows.append(field); field = "" }
                column += 1
            case "\n", "\r\n", "\r": endRow()
            default: if column == 0 { field.append(character) }
            }
        }
        endRow()
        // A few banking77 texts hold a line break inside their quotes; a load generator sends one
        // utterance per request and `--texts` files are one per line, so the break becomes a space.
        return Array(rows.dropFirst())
            .map { $0.components(separatedBy: .newlines).joined(separator: " ").trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
    }
}

/// CAIS stores one `character TAG` pair a line, utterances separated by blank lines.
enum CAISText {
    static func utterances(in content: String) -> [String] {
        var texts: [String] = []
        var current = ""
        for line in content.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty {
                if !current.isEmpty { texts.append(current) }
                current = ""
            } else if let character = trimmed.split(separator: " ").first {
                current += character
            }
        }
        if !current.isEmpty { texts.append(current) }
        return texts
    }
}
