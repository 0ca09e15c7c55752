/// A JSON text built by appending bytes, for the responses the server writes on every request.
///
/// Why by hand: Foundation's `JSONEncoder` goes through `Encoder` containers, boxes every value
/// and builds an intermediate tree before it writes; for a `/v1/parse` answer that was 1.6% of
/// the server's CPU under load (perf, 1 core), as much as the whole HTTP parsing. The encoded
/// bytes are the same JSON as `JSONEncoder` with `.withoutEscapingSlashes` gives (tested field by
/// field against it): RFC 8259 escaping, UTF-8 as is, numbers in Swift's shortest round-trip form.
struct JSONBytes {
    /// The text so far.
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// Appends `{`, the members `body` writes, and `}`.
    mutating func object(_ body: (inout ObjectWriter) -> Void) {
        bytes.append(UInt8(ascii: "{"))
        var writer = ObjectWriter(json: self)
        self = JSONBytes()  // hand the buffer to the writer without copying it
        body(&writer)
        self = writer.json
        bytes.append(UInt8(ascii: "}"))
    }

    /// Appends `[`, one element per item, and `]`.
    mutating func array<Items: Sequence>(_ items: Items, _ element: (inout JSONBytes, Items.Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        var first = true
        for item in items {
            if !first { bytes.append(UInt8(ascii: ",")) }
            first = false
            element(&self, item)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// Appends a string literal, escaped.
    mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20:
                // Other control characters: \u00XX (JSON allows no raw control characters).
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                          hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            default: bytes.append(byte)  // Swift strings are valid Unicode: their UTF-8 goes out as is
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends a number; `null` for NaN and infinities, which JSON cannot carry.
    mutating func number<Value: BinaryFloatingPoint & LosslessStringConvertible>(_ value: Value) {
        guard value.isFinite else { return raw("null") }
        // Swift's description is the shortest text that reads back as the same value; like
        // JSONEncoder, whole numbers drop their ".0".
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        raw(text)
    }

    /// Appends an integer.
    mutating func number(_ value: Int) {
        raw(String(value))
    }

    /// Appends `true` or `false`.
    mutating func bool(_ value: Bool) {
        raw(value ? "true" : "false")
    }

    /// Appends `null`.
    mutating func null() {
        raw("null")
    }

    private mutating func raw(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    /// Writes the members of one object: `"key":value` pairs separated by commas.
    struct ObjectWriter {
        fileprivate var json: JSONBytes
        private var first = true

        fileprivate init(json: JSONBytes) {
            self.json = json
        }

        /// Appends `"key":` and the value `value` writes.
        mutating func member(_ key: String, _ value: (inout JSONBytes) -> Void) {
            if !first { json.bytes.append(UInt8(ascii: ",")) }
            first = false
            json.string(key)
            json.bytes.append(UInt8(ascii: ":"))
            value(&json)
        }
    }
}
