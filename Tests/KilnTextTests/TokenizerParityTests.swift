import Foundation
import Testing

@testable import KilnText

/// Byte-for-byte parity with Hugging Face `tokenizers` on every utterance in ../shared/data and on
/// hand-written edge cases, for each fixture tokenizer. The expected output comes from
/// `tools/tokenizer_reference.py`; `scripts/test` runs it and sets KILN_REFERENCE_DIR. When the
/// variable is set, a missing reference file is a failure.
@Suite(
    "Tokenizer parity with HF tokenizers",
    .enabled(if: referenceDirectory != nil, "KILN_REFERENCE_DIR is unset (scripts/test sets it)"))
struct TokenizerParityTests {
    static let tokenizerNames = ["minilm-uncased", "bert-cased", "bert-chinese", "bert-options"]
    static let setNames = [
        "snips", "atis", "banking77", "nlupp_banking", "nlupp_hotels", "cais", "edge", "truncation", "fuzz",
    ]

    @Test("every utterance encodes identically", arguments: tokenizerNames)
    func utterancesMatch(tokenizerName: String) throws {
        let tokenizer = try fixtureTokenizer(tokenizerName)
        var failures: [String] = []
        for setName in Self.setNames {
            let records = try readReference(tokenizer: tokenizerName, set: setName)
            #expect(!records.isEmpty, "\(tokenizerName)/\(setName).jsonl is empty")
            var identical = 0
            for record in records {
                if let difference = record.difference(encodingWith: tokenizer) {
                    if failures.count < 20 { failures.append("\(setName): \(difference)") }
                } else {
                    identical += 1
                }
            }
            print("\(tokenizerName) \(setName): \(identical)/\(records.count) identical")
            #expect(identical == records.count, "\(tokenizerName) \(setName): \(records.count - identical) differ")
        }
        for failure in failures { Issue.record(Comment(rawValue: failure)) }
    }

    @Test("a batch pads like encode_batch", arguments: tokenizerNames)
    func batchMatches(tokenizerName: String) throws {
        let tokenizer = try fixtureTokenizer(tokenizerName)
        let records = try readReference(tokenizer: tokenizerName, set: "edge_batch")
        let encodings = try tokenizer.encodeBatch(records.map(\.text))
        var identical = 0
        for (record, encoding) in zip(records, encodings) {
            if let difference = record.difference(from: encoding) {
                Issue.record(Comment(rawValue: difference))
            } else {
                identical += 1
            }
        }
        print("\(tokenizerName) edge_batch: \(identical)/\(records.count) identical")
        #expect(identical == records.count)
    }
}
