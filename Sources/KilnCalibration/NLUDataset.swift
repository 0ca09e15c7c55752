import Foundation
import KilnCore

/// One utterance, with its gold labels when the file has them.
public struct NLUExample: Sendable, Equatable {
    public var text: String
    /// Gold intents (one for single-label sets, possibly several for NLU++); nil = unlabelled.
    public var intents: [String]?
    /// Gold slot spans `(label, start, end)` in Unicode-scalar offsets; nil = unlabelled.
    public var slots: [GoldSlot]?

    public init(text: String, intents: [String]? = nil, slots: [GoldSlot]? = nil) {
        self.text = text
        self.intents = intents
        self.slots = slots
    }
}

/// A gold entity: type and `[start, end)` in Unicode scalars of the text.
public struct GoldSlot: Sendable, Hashable {
    public var label: String
    public var start: Int
    public var end: Int

    public init(label: String, start: Int, end: Int) {
        self.label = label
        self.start = start
        self.end = end
    }
}

/// Reads utterances from the formats in `../shared/data` (see its README):
/// - a folder with `seq.in` (+ `seq.out`, `label`): SNIPS / ATIS splits, BIO tags per word;
/// - a folder with `ch.SPLIT` (a character and its BIOES tag a line, a blank line between utterances)
///   and `ch.SPLIT.intent`: CAIS (support-zh's data);
/// - a `.json` file holding a list of `{"text", "intents", "slots": {name: {"span": [s, e)}}}`: NLU++ folds;
/// - a `.csv` file with `text,category` columns: BANKING77;
/// - anything else: plain text, one utterance a line.
public enum NLUDataset {
    /// Loads and concatenates `paths`.
    public static func load(_ paths: [String]) throws -> [NLUExample] {
        try paths.flatMap { try load($0) }
    }

    /// Loads one path (see the type's documentation for the formats).
    public static func load(_ path: String) throws -> [NLUExample] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw KilnError.io("no data at \(path)")
        }
        if isDirectory.boolValue {
            if let cais = try caisFiles(in: path) { return try loadCAIS(characters: cais.characters, intents: cais.intents) }
            return try loadSplitFolder(path)
        }
        if path.hasSuffix(".json") { return try loadNLUPlusPlus(path) }
        if path.hasSuffix(".csv") { return try loadCSV(path) }
        return try lines(path).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }.map { NLUExample(text: $0) }
    }

    static func lines(_ path: String) throws -> [String] {
        do {
            var text = try String(contentsOfFile: path, encoding: .utf8)
            if text.hasSuffix("\n") { text.removeLast() }
            return text.isEmpty ? [] : text.components(separatedBy: "\n").map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
        } catch {
            throw KilnError.io("cannot read \(path): \(error.localizedDescription)")
        }
    }

    /// SNIPS/ATIS: `seq.in` words, `seq.out` BIO tags per word, `label` intents (`#`-joined for ATIS multi-intent).
    static func loadSplitFolder(_ path: String) throws -> [NLUExample] {
        let folder = URL(fileURLWithPath: path)
        let utterances = try lines(folder.appendingPathComponent("seq.in").path)
        let manager = FileManager.default
        let tagsPath = folder.appendingPathComponent("seq.out").path, labelPath = folder.appendingPathComponent("label").path
        let tags = manager.fileExists(atPath: tagsPath) ? try lines(tagsPath) : nil
        let labels = manager.fileExists(atPath: labelPath) ? try lines(labelPath) : nil
        if let tags, tags.count != utterances.count { throw KilnError.invalidInput("\(tagsPath) has \(tags.count) lines, seq.in has \(utterances.count)") }
        if let labels, labels.count != utterances.count { throw KilnError.invalidInput("\(labelPath) has \(labels.count) lines, seq.in has \(utterances.count)") }
        return utterances.indices.map { index in
            let words = utterances[index].split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            let text = words.joined(separator: " ")
            let slots = tags.map { spans(words: words, tags: $0[index].split(separator: " ").map(String.init)) }
            return NLUExample(text: text, intents: labels.map { $0[index].split(separator: "#").map(String.init) }, slots: slots)
        }
    }

    /// The CAIS files of a split folder (`ch.SPLIT`, `ch.SPLIT.intent`), nil when it is not one.
    static func caisFiles(in path: String) throws -> (characters: String, intents: String)? {
        let folder = URL(fileURLWithPath: path)
        guard !FileManager.default.fileExists(atPath: folder.appendingPathComponent("seq.in").path),
            let names = try? FileManager.default.contentsOfDirectory(atPath: path),
            let intents = names.sorted().first(where: { $0.hasPrefix("ch.") && $0.hasSuffix(".intent") })
        else { return nil }
        let characters = String(intents.dropLast(".intent".count))
        guard names.contains(characters) else { throw KilnError.invalidInput("\(path) has \(intents) but no \(characters)") }
        return (folder.appendingPathComponent(characters).path, folder.appendingPathComponent(intents).path)
    }

    /// CAIS: one character and its BIOES tag a line, utterances separated by blank lines, one
    /// intent a line in the `.intent` file (the rules of training/common.py `load_cais`).
    static func loadCAIS(characters: String, intents intentsPath: String) throws -> [NLUExample] {
        var sentences: [[(character: String, tag: String)]] = [], current: [(character: String, tag: String)] = []
        for line in try lines(characters) {
            if line.trimmingCharacters(in: .whitespaces).isEmpty {
                if !current.isEmpty { sentences.append(current) }
                current = []
                continue
            }
            if line.trimmingCharacters(in: .whitespaces).contains(" "), let space = line.lastIndex(of: " ") {
                let character = String(line[..<space])
                current.append((character.isEmpty ? " " : character, String(line[line.index(after: space)...])))
            } else {
                current.append((String(line.prefix(1)), "O"))
            }
        }
        if !current.isEmpty { sentences.append(current) }
        let intents = try lines(intentsPath).filter { !$0.isEmpty }
        guard intents.count == sentences.count else {
            throw KilnError.invalidInput("\(intentsPath) has \(intents.count) intents for \(sentences.count) utterances in \(characters)")
        }
        return zip(sentences, intents).map { sentence, intent in
            NLUExample(
                text: sentence.map(\.character).joined(), intents: [intent.trimmingCharacters(in: .whitespaces)],
                slots: bioesSpans(sentence))
        }
    }

    /// Entity spans from per-character BIOES tags: `E-`/`S-` close a span, `S-` is one character.
    static func bioesSpans(_ characters: [(character: String, tag: String)]) -> [GoldSlot] {
        var result: [GoldSlot] = [], open: GoldSlot?, offset = 0
        for (character, tag) in characters {
            let end = offset + character.unicodeScalars.count
            let marker = tag.prefix(1), type = tag.count > 2 ? String(tag.dropFirst(2)) : ""
            let inside = marker == "I" || marker == "E"
            if marker == "B" || marker == "S" || (inside && open?.label != type) {
                if let current = open { result.append(current) }
                open = GoldSlot(label: type, start: offset, end: end)
            } else if inside {
                open?.end = end
            } else {
                if let current = open { result.append(current) }
                open = nil
            }
            if marker == "E" || marker == "S", let current = open {
                result.append(current)
                open = nil
            }
            offset = end
        }
        if let current = open { result.append(current) }
        return result
    }

    /// Entity spans from per-word BIO tags (conlleval rules: an `I-x` not continuing an `x` starts one).
    static func spans(words: [String], tags: [String]) -> [GoldSlot] {
        var result: [GoldSlot] = []
        var offset = 0
        var open: GoldSlot?
        for (index, word) in words.enumerated() {
            let length = word.unicodeScalars.count
            let tag = index < tags.count ? tags[index] : "O"
            let type = tag.count > 2 ? String(tag.dropFirst(2)) : ""
            if tag.hasPrefix("I-"), var current = open, current.label == type {
                current.end = offset + length
                open = current
            } else {
                if let current = open { result.append(current) }
                open = (tag.hasPrefix("B-") || tag.hasPrefix("I-")) ? GoldSlot(label: type, start: offset, end: offset + length) : nil
            }
            offset += length + 1
        }
        if let current = open { result.append(current) }
        return result
    }

    /// NLU++ folds: multi-label intents, slots with character spans (Python string offsets = scalars).
    static func loadNLUPlusPlus(_ path: String) throws -> [NLUExample] {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch { throw KilnError.io("cannot read \(path): \(error.localizedDescription)") }
        guard let items = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw KilnError.invalidInput("\(path) is not a JSON list of utterances")
        }
        return items.compactMap { item in
            guard let text = item["text"] as? String else { return nil }
            var slots: [GoldSlot] = []
            for (name, value) in (item["slots"] as? [String: Any]) ?? [:] {
                guard let span = (value as? [String: Any])?["span"] as? [Int], span.count == 2 else { continue }
                slots.append(GoldSlot(label: name, start: span[0], end: span[1]))
            }
            return NLUExample(text: text, intents: (item["intents"] as? [String]) ?? [], slots: slots.sorted { $0.start < $1.start })
        }
    }

    /// BANKING77: `text,category` with a header row; quoted fields may hold commas and `""`.
    static func loadCSV(_ path: String) throws -> [NLUExample] {
        let rows = try lines(path).dropFirst()
        return rows.compactMap { line in
            let fields = csvFields(line)
            guard fields.count >= 2 else { return nil }
            return NLUExample(text: fields[0], intents: [fields[1]], slots: nil)
        }
    }

    static func csvFields(_ line: String) -> [String] {
        var fields: [String] = [], current = "", quoted = false
        var characters = Array(line)[...]
        while let character = characters.popFirst() {
            if quoted {
                if character == "\"" {
                    if characters.first == "\"" { current.append("\""); characters.removeFirst() } else { quoted = false }
                } else { current.append(character) }
            } else if character == "\"" {
                quoted = true
            } else if character == "," {
                fields.append(current)
                current = ""
            } else { current.append(character) }
        }
        fields.append(current)
        return fields
    }

    /// At most `count` examples spread evenly over `examples` (deterministic).
    public static func sample(_ examples: [NLUExample], count: Int) -> [NLUExample] {
        guard count < examples.count, count > 0 else { return examples }
        return (0..<count).map { examples[$0 * examples.count / count] }
    }
}
