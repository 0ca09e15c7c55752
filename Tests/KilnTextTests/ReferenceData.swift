import Foundation

@testable import KilnText

/// Where `tools/tokenizer_reference.py` wrote the Hugging Face reference output, if anywhere.
/// `scripts/test` generates it and sets `KILN_REFERENCE_DIR`; unset, the parity tests are disabled.
let referenceDirectory: String? = ProcessInfo.processInfo.environment["KILN_REFERENCE_DIR"]

/// The repository's `Tests/Fixtures/tokenizers` folder.
let tokenizerFixtures = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/tokenizers")

/// Loads a fixture tokenizer by name (e.g. "minilm-uncased").
func fixtureTokenizer(_ name: String) throws -> WordPieceTokenizer {
    try WordPieceTokenizer(contentsOf: tokenizerFixtures.appendingPathComponent("\(name).json"))
}

/// One expected encoding from the reference JSONL.
struct ReferenceRecord {
    var text: String
    var pair: String?
    var maxLength: Int?
    var ids: [Int32]
    var typeIds: [Int32]
    var attentionMask: [Int32]
    var offsets: [Range<Int>]
    var wordIds: [Int?]
    var tokens: [String]?
    /// HF refused this input (e.g. truncation that cannot fit); Kiln must throw too.
    var error: String?

    init(_ json: JSONValue) throws {
        guard let text = json["text"]?.stringValue else { throw ReferenceError.malformed("no text") }
        self.text = text
        pair = json["pair"]?.stringValue
        maxLength = json["max_length"]?.intValue
        error = json["error"]?.stringValue
        func ints(_ key: String) throws -> [Int32] {
            guard let list = json[key]?.arrayValue else { throw ReferenceError.malformed("no \(key)") }
            return list.map { Int32($0.intValue ?? -1) }
        }
        if error != nil {
            (ids, typeIds, attentionMask, offsets, wordIds) = ([], [], [], [], [])
            return
        }
        ids = try ints("ids")
        typeIds = try ints("type_ids")
        attentionMask = try ints("attention_mask")
        offsets = (json["offsets"]?.arrayValue ?? []).map { pair in
            let bounds = pair.arrayValue ?? []
            return (bounds[0].intValue ?? -1)..<(bounds[1].intValue ?? -1)
        }
        wordIds = (json["word_ids"]?.arrayValue ?? []).map { $0.intValue }
        tokens = json["tokens"]?.arrayValue?.map { $0.stringValue ?? "" }
    }

    /// Encodes this record's input with `tokenizer` and describes any difference from HF, or nil.
    func difference(encodingWith tokenizer: WordPieceTokenizer) -> String? {
        let input = pair.map { "\(text.debugDescription) + \($0.debugDescription)" } ?? text.debugDescription
        do {
            let encoding = try tokenizer.encode(text, pair: pair, maxLength: maxLength)
            if let error { return "input \(input): HF refused it (\(error)) but Kiln encoded it" }
            return difference(from: encoding)
        } catch {
            if self.error != nil { return nil }
            return "input \(input): Kiln threw \(error)"
        }
    }

    /// A description of how `encoding` differs from this record, or nil if identical.
    func difference(from encoding: Encoding) -> String? {
        var problems: [String] = []
        if encoding.ids != ids { problems.append("ids \(encoding.ids) != \(ids)") }
        if encoding.typeIds != typeIds { problems.append("type_ids \(encoding.typeIds) != \(typeIds)") }
        if encoding.attentionMask != attentionMask {
            problems.append("attention_mask \(encoding.attentionMask) != \(attentionMask)")
        }
        if encoding.offsets != offsets {
            problems.append("offsets \(encoding.offsets.map { [$0.lowerBound, $0.upperBound] }) != \(offsets.map { [$0.lowerBound, $0.upperBound] })")
        }
        if encoding.wordIds != wordIds { problems.append("word_ids \(encoding.wordIds) != \(wordIds)") }
        if let tokens, encoding.tokens != tokens { problems.append("tokens \(encoding.tokens) != \(tokens)") }
        if problems.isEmpty { return nil }
        let input = pair.map { "\(text.debugDescription) + \($0.debugDescription)" } ?? text.debugDescription
        return "input \(input) max_length \(maxLength.map(String.init) ?? "-"):\n  " + problems.joined(separator: "\n  ")
    }
}

enum ReferenceError: Error, CustomStringConvertible {
    case missing(String)
    case malformed(String)

    var description: String {
        switch self {
        case .missing(let path):
            return "reference file \(path) is missing: run `python tools/tokenizer_reference.py --out $KILN_REFERENCE_DIR`"
        case .malformed(let reason): return "malformed reference line: \(reason)"
        }
    }
}

/// Reads `KILN_REFERENCE_DIR/tokenizer/<tokenizer>/<set>.jsonl`; a missing file is an error.
func readReference(tokenizer: String, set: String) throws -> [ReferenceRecord] {
    guard let referenceDirectory else { throw ReferenceError.missing("(KILN_REFERENCE_DIR unset)") }
    let path = "\(referenceDirectory)/tokenizer/\(tokenizer)/\(set).jsonl"
    guard let data = FileManager.default.contents(atPath: path) else { throw ReferenceError.missing(path) }
    let bytes = [UInt8](data)
    var records: [ReferenceRecord] = []
    var lineStart = 0
    for index in bytes.indices where bytes[index] == 0x0A {
        if index > lineStart {
            records.append(try ReferenceRecord(try JSONReader.parse(Array(bytes[lineStart..<index]))))
        }
        lineStart = index + 1
    }
    if lineStart < bytes.count {
        records.append(try ReferenceRecord(try JSONReader.parse(Array(bytes[lineStart...]))))
    }
    return records
}
