import ArgumentParser
import Foundation
import KilnText

/// `kiln tokenize`: encodes lines of standard input with a Hugging Face `tokenizer.json`, one JSON
/// object per line, field for field what Python `tokenizers` gives (for checking parity by hand or
/// from scripts).
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Tokenize lines of standard input with a WordPiece tokenizer.json.",
        discussion: """
            Reads one text per line from standard input and writes one JSON object per line: \
            {"ids": [...], "type_ids": [...], "attention_mask": [...], "offsets": [[start, end], ...]}.

            Offsets are character (Unicode scalar) offsets into the line, [0, 0] for special and \
            padding tokens, exactly as Python `tokenizers` reports Encoding.offsets. Truncation and \
            padding follow the tokenizer.json unless --max-length is given.
            """)

    @Option(name: .long, help: "Path to a Hugging Face tokenizer.json (WordPiece/BERT).")
    var tokenizer: String

    @Option(name: .long, help: "Truncate to this many tokens, special tokens included (overrides the file's max_length).")
    var maxLength: Int?

    @Option(
        name: .long,
        help: "Split each line at the first occurrence of this string into a pair of texts (second text gets type id 1).")
    var pairSeparator: String?

    @Flag(name: .long, help: "Also write \"tokens\" and \"word_ids\" for each line.")
    var verbose = false

    func validate() throws {
        if let maxLength, maxLength < 0 { throw ValidationError("--max-length must be 0 or more, got \(maxLength)") }
        if let pairSeparator, pairSeparator.isEmpty { throw ValidationError("--pair-separator must not be empty") }
    }

    func run() throws {
        let wordPiece = try WordPieceTokenizer(contentsOf: URL(fileURLWithPath: tokenizer))
        var output = ""
        output.reserveCapacity(1 << 16)
        while let line = readLine(strippingNewline: true) {
            var text = line
            var pair: String?
            if let pairSeparator, let range = line.range(of: pairSeparator) {
                text = String(line[..<range.lowerBound])
                pair = String(line[range.upperBound...])
            }
            let encoding = try wordPiece.encode(text, pair: pair, maxLength: maxLength)
            Self.appendJSON(encoding, verbose: verbose, to: &output)
            if output.utf8.count >= 1 << 16 {
                FileHandle.standardOutput.write(Data(output.utf8))
                output.removeAll(keepingCapacity: true)
            }
        }
        FileHandle.standardOutput.write(Data(output.utf8))
    }

    /// Appends one encoding as a JSON line.
    static func appendJSON(_ encoding: Encoding, verbose: Bool, to output: inout String) {
        func list(_ values: [Int32]) -> String { "[" + values.map(String.init).joined(separator: ",") + "]" }
        output += "{\"ids\":" + list(encoding.ids)
        output += ",\"type_ids\":" + list(encoding.typeIds)
        output += ",\"attention_mask\":" + list(encoding.attentionMask)
        output += ",\"offsets\":[" + encoding.offsets.map { "[\($0.lowerBound),\($0.upperBound)]" }.joined(separator: ",") + "]"
        if verbose {
            output += ",\"tokens\":[" + encoding.tokens.map(jsonString).joined(separator: ",") + "]"
            output += ",\"word_ids\":[" + encoding.wordIds.map { $0.map(String.init) ?? "null" }.joined(separator: ",") + "]"
        }
        output += "}\n"
    }

    /// A JSON string literal for `text`.
    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    result.unicodeScalars.append(scalar)
                }
            }
        }
        return result + "\""
    }
}
