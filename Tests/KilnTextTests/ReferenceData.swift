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
    var text = ""
    var pair: String?
    var maxLength: Int?
    var addSpecialTokens = true
    var ids: [Int32] = []
    var typeIds: [Int32] = []
    var attentionMask: [Int32] = []
    var offsets: [Range<Int>] = []
    var wordIds: [Int?] = []
    var tokens: [String]?
    /// HF refused this input (e.g. truncation that cannot fit); Kiln must throw too.
    var error: String?

    /// Restores a run of padding the reference script wrote compactly (see tools/tokenizer_reference.py).
    mutating func expandPadding(side: String, count: Int, id: Int32, typeId: Int32, token: String) {
        func insert<T>(_ list: inout [T], _ value: T) {
            let run = [T](repeating: value, count: count)
            list = side == "left" ? run + list : list + run
        }
        insert(&ids, id)
        insert(&typeIds, typeId)
        insert(&attentionMask, 0)
        insert(&offsets, 0..<0)
        insert(&wordIds, nil)
        if tokens != nil { insert(&tokens!, token) }
    }

    /// Encodes this record's input with `tokenizer` and describes any difference from HF, or nil.
    func difference(encodingWith tokenizer: WordPieceTokenizer) -> String? {
        let input = pair.map { "\(text.debugDescription) + \($0.debugDescription)" } ?? text.debugDescription
        do {
            let encoding = try tokenizer.encode(
                text, pair: pair, addSpecialTokens: addSpecialTokens, maxLength: maxLength)
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
            let got = encoding.offsets.map { [$0.lowerBound, $0.upperBound] }
            problems.append("offsets \(got) != \(offsets.map { [$0.lowerBound, $0.upperBound] })")
        }
        if encoding.wordIds != wordIds { problems.append("word_ids \(encoding.wordIds) != \(wordIds)") }
        if let tokens, encoding.tokens != tokens { problems.append("tokens \(encoding.tokens) != \(tokens)") }
        if problems.isEmpty { return nil }
        let input = pair.map { "\(text.debugDescription) + \($0.debugDescription)" } ?? text.debugDescription
        return "input \(input) max_length \(maxLength.map(String.init) ?? "-")"
            + (addSpecialTokens ? "" : " without special tokens") + ":\n  " + problems.joined(separator: "\n  ")
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
    return try data.withUnsafeBytes { raw in
        let bytes = raw.bindMemory(to: UInt8.self)
        var records: [ReferenceRecord] = []
        var lineStart = 0
        for index in 0...bytes.count where index == bytes.count || bytes[index] == 0x0A {
            if index > lineStart {
                var cursor = ReferenceLineReader(bytes: bytes, position: lineStart, end: index)
                records.append(try cursor.record())
            }
            lineStart = index + 1
        }
        return records
    }
}

/// Reads one reference line. The files are large, so this reads their known shape directly
/// (strings go through the library's `JSONReader` for escapes; numbers are parsed in place).
struct ReferenceLineReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var position: Int
    let end: Int

    mutating func record() throws -> ReferenceRecord {
        var record = ReferenceRecord()
        var padding: (side: String, count: Int, id: Int32, typeId: Int32, token: String)?
        try expect(UInt8(ascii: "{"))
        try forEachMember { reader, key in
            switch key {
            case "text": record.text = try reader.string()
            case "pair": record.pair = try reader.string()
            case "error": record.error = try reader.string()
            case "max_length": record.maxLength = try reader.optionalInt()
            case "add_special_tokens": record.addSpecialTokens = try reader.bool()
            case "ids": record.ids = try reader.intList().map { Int32($0 ?? -1) }
            case "type_ids": record.typeIds = try reader.intList().map { Int32($0 ?? -1) }
            case "attention_mask": record.attentionMask = try reader.intList().map { Int32($0 ?? -1) }
            case "word_ids": record.wordIds = try reader.intList()
            case "offsets": record.offsets = try reader.offsetList()
            case "tokens": record.tokens = try reader.stringList()
            case "padding":
                var run: (side: String, count: Int, id: Int32, typeId: Int32, token: String) = ("right", 0, 0, 0, "")
                try reader.expect(UInt8(ascii: "{"))
                try reader.forEachMember { reader, key in
                    switch key {
                    case "side": run.side = try reader.string()
                    case "count": run.count = try reader.optionalInt() ?? 0
                    case "id": run.id = Int32(try reader.optionalInt() ?? -1)
                    case "type_id": run.typeId = Int32(try reader.optionalInt() ?? -1)
                    case "token": run.token = try reader.string()
                    default: throw ReferenceError.malformed("unknown padding key \(key)")
                    }
                }
                padding = run
            default: throw ReferenceError.malformed("unknown key \(key)")
            }
        }
        if let padding {
            record.expandPadding(
                side: padding.side, count: padding.count, id: padding.id, typeId: padding.typeId, token: padding.token)
        }
        return record
    }

    /// Calls `body` for each `"key": value` of the object whose `{` was just read; `body` reads the value.
    mutating func forEachMember(_ body: (inout ReferenceLineReader, String) throws -> Void) throws {
        while true {
            skipSpaces()
            if peek() == UInt8(ascii: "}") {
                position += 1
                return
            }
            let key = try string()
            skipSpaces()
            try expect(UInt8(ascii: ":"))
            skipSpaces()
            try body(&self, key)
            skipSpaces()
            if peek() == UInt8(ascii: ",") { position += 1 }
        }
    }

    func peek() -> UInt8 { position < end ? bytes[position] : 0 }

    mutating func skipSpaces() {
        while position < end, bytes[position] == 0x20 { position += 1 }
    }

    mutating func expect(_ byte: UInt8) throws {
        guard peek() == byte else {
            throw ReferenceError.malformed("expected \(Character(Unicode.Scalar(byte))) at byte \(position)")
        }
        position += 1
    }

    /// A JSON string, escapes included.
    mutating func string() throws -> String {
        let start = position
        try expect(UInt8(ascii: "\""))
        var escaped = false
        while position < end {
            let byte = bytes[position]
            position += 1
            if escaped {
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "\"") {
                guard let value = try JSONReader.parse(Array(bytes[start..<position])).stringValue else {
                    throw ReferenceError.malformed("bad string")
                }
                return value
            }
        }
        throw ReferenceError.malformed("unterminated string")
    }

    mutating func bool() throws -> Bool {
        if peek() == UInt8(ascii: "t") {
            position += 4
            return true
        }
        try expect(UInt8(ascii: "f"))
        position += 4
        return false
    }

    mutating func optionalInt() throws -> Int? {
        if peek() == UInt8(ascii: "n") {
            position += 4
            return nil
        }
        var negative = false
        if peek() == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        var value = 0
        let start = position
        while position < end {
            let digit = bytes[position] &- 0x30
            if digit > 9 { break }
            value = value &* 10 &+ Int(digit)
            position += 1
        }
        guard position > start else { throw ReferenceError.malformed("expected a number at byte \(position)") }
        return negative ? -value : value
    }

    mutating func list<T>(_ element: (inout ReferenceLineReader) throws -> T) throws -> [T] {
        try expect(UInt8(ascii: "["))
        var values: [T] = []
        skipSpaces()
        if peek() == UInt8(ascii: "]") {
            position += 1
            return values
        }
        while true {
            skipSpaces()
            values.append(try element(&self))
            skipSpaces()
            if peek() == UInt8(ascii: ",") {
                position += 1
            } else {
                try expect(UInt8(ascii: "]"))
                return values
            }
        }
    }

    mutating func intList() throws -> [Int?] { try list { try $0.optionalInt() } }
    mutating func stringList() throws -> [String] { try list { try $0.string() } }

    mutating func offsetList() throws -> [Range<Int>] {
        try list { reader in
            let bounds = try reader.intList()
            guard bounds.count == 2, let start = bounds[0], let end = bounds[1] else {
                throw ReferenceError.malformed("offsets must be [start, end]")
            }
            return start..<end
        }
    }
}
