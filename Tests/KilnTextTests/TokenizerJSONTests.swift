import Foundation
import Testing

@testable import KilnText

struct JSONReaderTests {
    @Test func readsEscapesAndSurrogatePairs() throws {
        let value = try JSONReader.parse(Array(#"{"a": "x\"\\\/\n\u00e9\ud83d\ude00", "b": [1, -2.5e1, true, null]}"#.utf8))
        #expect(value["a"]?.stringValue == "x\"\\/\n\u{E9}😀")
        let list = value["b"]?.arrayValue ?? []
        #expect(list.count == 4)
        #expect(list[0].intValue == 1)
        #expect(list[2].boolValue == true)
        #expect(list[3].isNull)
        if case .number(let number) = list[1] { #expect(number == -25) } else { Issue.record("not a number") }
    }

    @Test func keepsCanonicallyEquivalentKeysApart() throws {
        let value = try JSONReader.parse(Array("{\"\u{E9}\": 1, \"e\u{301}\": 2}".utf8))
        #expect(value.objectValue?.count == 2)
        #expect(value["e\u{301}"]?.intValue == 2)
        #expect(value["\u{E9}"]?.intValue == 1)
    }

    @Test func rejectsMalformedJSON() {
        for text in ["{", "[1,]", "{\"a\" 1}", "\"unterminated", "{} x", "tru"] {
            #expect(throws: JSONReaderError.self) { try JSONReader.parse(Array(text.utf8)) }
        }
    }
}

struct TokenizerJSONTests {
    static let minimalModel = #""model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "hi": 1}}"#

    @Test func minimalTokenizerJSONLoads() throws {
        let tokenizer = try WordPieceTokenizer(tokenizerJSON: Data("{\(Self.minimalModel)}".utf8))
        // No normalizer, pre-tokenizer or post-processor: the whole text is one word, no special tokens.
        #expect(try tokenizer.encode("hi").ids == [1])
        #expect(try tokenizer.encode("hi hi").ids == [0])
    }

    @Test func errorsSayWhatToDo() {
        let cases: [(String, String)] = [
            ("{\"model\": {", "not valid JSON"),
            ("{\"normalizer\": {\"type\": \"NFKC\"}, \(Self.minimalModel)}", "unsupported normalizer \"NFKC\""),
            ("{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \(Self.minimalModel)}", "unsupported pre-tokenizer"),
            ("{\"post_processor\": {\"type\": \"RobertaProcessing\"}, \(Self.minimalModel)}", "unsupported post-processor"),
            ("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Kiln supports WordPiece"),
            ("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "[UNK]"),
        ]
        for (json, message) in cases {
            #expect {
                try WordPieceTokenizer(tokenizerJSON: Data(json.utf8))
            } throws: { error in
                "\(error)".contains(message)
            }
        }
    }

    @Test func missingFileIsExplained() {
        #expect {
            try WordPieceTokenizer(contentsOf: URL(fileURLWithPath: "/nonexistent/tokenizer.json"))
        } throws: { error in
            "\(error)".contains("cannot read tokenizer file /nonexistent/tokenizer.json")
        }
    }
}
