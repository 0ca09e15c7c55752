import Foundation
import Testing

@testable import KilnText

/// Every code point through each BERT normalizer step and the BERT pre-tokenizer's character
/// classes, against `unicode_classes.tsv` from `tools/tokenizer_reference.py` (set up by scripts/test).
@Suite(
    "Unicode character classes match HF",
    .enabled(if: referenceDirectory != nil, "KILN_REFERENCE_DIR is unset (scripts/test sets it)"))
struct UnicodeClassParityTests {
    @Test func everyCodePointMatches() throws {
        let path = "\(referenceDirectory!)/tokenizer/unicode_classes.tsv"
        guard let data = FileManager.default.contents(atPath: path) else { throw ReferenceError.missing(path) }
        var expected: [String: [UInt32: String]] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 3, let code = UInt32(fields[0], radix: 16) else { continue }
            expected[String(fields[1]), default: [:]][code] = String(fields[2])
        }
        let steps: [(String, BertNormalizer)] = [
            ("clean", BertNormalizer(cleanText: true, handleChineseChars: false, stripAccents: false, lowercase: false)),
            ("strip", BertNormalizer(cleanText: false, handleChineseChars: false, stripAccents: true, lowercase: false)),
            ("lower", BertNormalizer(cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: true)),
        ]
        func hex(_ scalars: [Unicode.Scalar]) -> String {
            scalars.map { String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")
        }
        var mismatches: [String] = []
        var checked = 0
        for value in UInt32(0)...0x10FFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            checked += 1
            for (kind, normalizer) in steps {
                let result = normalizer.normalizedScalars(String(scalar))
                let got: String? = result == [scalar] ? nil : hex(result)
                if got != expected[kind]?[value] {
                    mismatches.append("U+\(hex([scalar])) \(kind): \(got ?? "unchanged") != \(expected[kind]?[value] ?? "unchanged")")
                }
            }
            if BertCharacterClasses.isChineseCharacter(scalar) != (expected["cjk"]?[value] != nil) {
                mismatches.append("U+\(hex([scalar])) cjk")
            }
            let pre: String? =
                BertCharacterClasses.isRustWhitespace(scalar)
                ? "space" : BertCharacterClasses.isPunctuation(scalar) ? "punct" : nil
            if pre != expected["pre"]?[value] {
                mismatches.append("U+\(hex([scalar])) pre-tokenizer: \(pre ?? "letter") != \(expected["pre"]?[value] ?? "letter")")
            }
        }
        print("unicode classes: \(checked - Set(mismatches.map { $0.split(separator: " ")[0] }).count)/\(checked) code points identical")
        #expect(mismatches.isEmpty, Comment(rawValue: mismatches.prefix(30).joined(separator: "\n")))
    }
}
