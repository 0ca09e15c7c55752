import Foundation
import Testing

@testable import KilnText

/// The repository's sibling `../shared/data` folder (see its README), if present.
let sharedDataDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("shared/data")

/// Round trip over every labelled utterance: gold word tags are put on each word's first sub-token
/// (and a wrong tag on every other sub-token, which the decoder must ignore), decoded, and the
/// spans compared with the gold spans computed from the words directly.
@Suite(
    "Slot decoding round-trips the labelled data",
    .enabled(
        if: FileManager.default.fileExists(atPath: sharedDataDirectory.appendingPathComponent("snips").path),
        "../shared/data is not beside the repository"))
struct SlotDecodingDataTests {
    /// One labelled utterance: its words (with their scalar ranges in `text`) and one tag per word.
    struct Utterance {
        var text: String
        var words: [Range<Int>]
        var tags: [String]
    }

    static func spaceSeparated(_ dataset: String) throws -> [Utterance] {
        var utterances: [Utterance] = []
        for split in ["train", "dev", "test"] {
            let folder = sharedDataDirectory.appendingPathComponent("\(dataset)/\(split)")
            let texts = try String(contentsOf: folder.appendingPathComponent("seq.in"), encoding: .utf8)
                .split(separator: "\n", omittingEmptySubsequences: false)
            let tags = try String(contentsOf: folder.appendingPathComponent("seq.out"), encoding: .utf8)
                .split(separator: "\n", omittingEmptySubsequences: false)
            for (text, line) in zip(texts, tags) where !text.isEmpty {
                var words: [Range<Int>] = []
                var wordStart: Int?
                for (index, scalar) in text.unicodeScalars.enumerated() {
                    if scalar == " " {
                        if let start = wordStart { words.append(start..<index) }
                        wordStart = nil
                    } else if wordStart == nil {
                        wordStart = index
                    }
                }
                if let start = wordStart { words.append(start..<text.unicodeScalars.count) }
                let wordTags = line.split(separator: " ").map(String.init)
                guard wordTags.count == words.count else { continue }
                utterances.append(Utterance(text: String(text), words: words, tags: wordTags))
            }
        }
        return utterances
    }

    static func characterTagged() throws -> [Utterance] {
        var utterances: [Utterance] = []
        for split in ["train", "valid", "test"] {
            let file = sharedDataDirectory.appendingPathComponent("cais/\(split)/ch.\(split)")
            var scalars: [Unicode.Scalar] = []
            var words: [Range<Int>] = []
            var tags: [String] = []
            func finish() {
                if !words.isEmpty {
                    utterances.append(Utterance(text: String(String.UnicodeScalarView(scalars)), words: words, tags: tags))
                }
                (scalars, words, tags) = ([], [], [])
            }
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
                guard let space = line.lastIndex(of: " ") else {
                    finish()
                    continue
                }
                let character = line[..<space].unicodeScalars
                words.append(scalars.count..<(scalars.count + character.count))
                scalars.append(contentsOf: character)
                tags.append(String(line[line.index(after: space)...]))
            }
            finish()
        }
        return utterances
    }

    /// Gold spans straight from the word tags, with the decoder's lenient reading. Words listed in
    /// `untokenized` produced no token at all (e.g. a word of U+FFFD, which BERT's clean_text deletes),
    /// so no model can tag them: they are left out.
    static func goldSpans(_ utterance: Utterance, scheme: SlotDecoder.Scheme, untokenized: Set<Int>) -> [SlotSpan] {
        let scalars = Array(utterance.text.unicodeScalars)
        var spans: [SlotSpan] = []
        var open: (type: String, first: Int, last: Int)?
        func close() {
            guard let current = open else { return }
            open = nil
            let range = utterance.words[current.first].lowerBound..<utterance.words[current.last].upperBound
            spans.append(
                SlotSpan(
                    label: current.type, start: range.lowerBound, end: range.upperBound,
                    value: String(String.UnicodeScalarView(scalars[range]))))
        }
        for (index, name) in utterance.tags.enumerated() where !untokenized.contains(index) {
            let tag = SlotDecoder.Tag(name)
            var marker = tag.marker
            if scheme == .bio, marker == .end { marker = .inside }
            if scheme == .bio, marker == .single { marker = .begin }
            switch marker {
            case .outside: close()
            case .begin, .single:
                close()
                open = (tag.type, index, index)
                if marker == .single { close() }
            case .inside, .end:
                if let current = open, current.type == tag.type {
                    open = (current.type, current.first, index)
                } else {
                    close()
                    open = (tag.type, index, index)
                }
                if marker == .end { close() }
            }
        }
        close()
        return spans
    }

    func check(
        _ utterances: [Utterance], tokenizer: WordPieceTokenizer, scheme: SlotDecoder.Scheme,
        segmentation: SlotDecoder.WordSegmentation, name: String
    ) throws {
        let decoder = SlotDecoder(labels: [], scheme: scheme, segmentation: segmentation)
        var identical = 0
        var failures: [String] = []
        for utterance in utterances {
            let encoding = try tokenizer.encode(utterance.text, maxLength: 512)
            var tags = [String](repeating: "O", count: encoding.count)
            var hasTokens = [Bool](repeating: false, count: utterance.words.count)
            for token in 0..<encoding.count where encoding.wordIds[token] != nil {
                let start = encoding.offsets[token].lowerBound
                guard let word = utterance.words.firstIndex(where: { $0.contains(start) }) else { continue }
                // Word labelling: the word's first sub-token carries its tag, the others get a tag the
                // decoder must ignore. Character labelling: every token gets its first character's tag.
                if segmentation == .everyToken {
                    tags[token] = utterance.tags[word]
                } else {
                    tags[token] = hasTokens[word] ? "B-ignored" : utterance.tags[word]
                }
                hasTokens[word] = true
            }
            let decoded = try decoder.decode(tags: tags, encoding: encoding, text: utterance.text)
            // Under word labelling every word should have a token; under character labelling most
            // characters inside a token (the "f" of "tf") have none, and that's expected.
            let untokenized = segmentation == .everyToken ? [] : Set(hasTokens.indices.filter { !hasTokens[$0] })
            let expected = Self.goldSpans(utterance, scheme: scheme, untokenized: untokenized)
            if decoded == expected {
                identical += 1
            } else if failures.count < 10 {
                failures.append("\(utterance.text.debugDescription): \(decoded) != \(expected)")
            }
        }
        print("slot round trip \(name): \(identical)/\(utterances.count) identical")
        for failure in failures { Issue.record(Comment(rawValue: failure)) }
        #expect(identical == utterances.count)
    }

    @Test func snipsAndAtis() throws {
        let tokenizer = try fixtureTokenizer("bert-cased")
        try check(try Self.spaceSeparated("snips"), tokenizer: tokenizer, scheme: .bio, segmentation: .whitespace, name: "snips")
        try check(try Self.spaceSeparated("atis"), tokenizer: tokenizer, scheme: .bio, segmentation: .whitespace, name: "atis")
    }

    @Test func cais() throws {
        try check(
            try Self.characterTagged(), tokenizer: try fixtureTokenizer("bert-chinese"), scheme: .bioes,
            segmentation: .everyToken, name: "cais")
    }
}
