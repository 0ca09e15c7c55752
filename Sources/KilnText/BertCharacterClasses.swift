// The character classes of Hugging Face `tokenizers`' BERT normalizer and pre-tokenizer.
//
// HF classifies characters with two sources of Unicode data, and we must reproduce both:
//  - Rust's standard library (`char::is_whitespace`, `char::to_lowercase`): current Unicode data,
//    which Swift's `Unicode.Scalar.Properties` also carry.
//  - the `unicode_categories` crate (`is_other`, `is_punctuation`, `is_mark_nonspacing`): a frozen
//    Unicode 8.0 table. A character assigned after 8.0 is in none of its categories, and a handful of
//    characters have changed category since 8.0. We use the current general category, restricted to
//    characters whose `age` is at most 8.0, plus the short lists of changed characters below.
// `Tests/KilnTextTests/UnicodeClassParityTests.swift` checks every code point against HF.

/// Unicode classification helpers that match Hugging Face `tokenizers` (BERT normalizer and
/// BERT pre-tokenizer) character by character.
enum BertCharacterClasses {
    /// The Unicode version of the `unicode_categories` crate's tables that HF links.
    private static func isInUnicode8(_ scalar: Unicode.Scalar) -> Bool {
        guard let age = scalar.properties.age else { return false }
        return age.major < 8 || (age.major == 8 && age.minor == 0)
    }

    /// Characters whose general category differs between Unicode 8.0 and the Unicode data Swift has.
    /// Maps the scalar value to its Unicode 8.0 category group.
    private static let unicode8CategoryOverrides: [UInt32: Unicode8Category] = [
        0x111C9: .punctuation,  // SHARADA SANDHI MARK: Po in 8.0, Mn since 11.0
        0x166D: .punctuation,  // CANADIAN SYLLABICS CHI SIGN: Po in 8.0, So since 12.0
        0x1734: .nonspacingMark,  // HANUNOO SIGN PAMUDPOD: Mn in 8.0, Mc since 14.0
        0x1171E: .nonspacingMark,  // AHOM CONSONANT SIGN MEDIAL RA: Mn in 8.0, Mc since 14.0
        0x1885: .none,  // MONGOLIAN LETTER ALI GALI BALUDA: Lo in 8.0, Mn since 9.0
        0x1886: .none,  // MONGOLIAN LETTER ALI GALI THREE BALUDA: Lo in 8.0, Mn since 9.0
        0xA9BD: .none,  // JAVANESE CONSONANT SIGN KERET: Mc in 8.0, Mn since 12.0
    ]

    private enum Unicode8Category { case other, punctuation, nonspacingMark, none }

    private static func unicode8Category(_ scalar: Unicode.Scalar) -> Unicode8Category {
        if let overridden = unicode8CategoryOverrides[scalar.value] { return overridden }
        guard isInUnicode8(scalar) else { return .none }
        switch scalar.properties.generalCategory {
        // `unicode_categories`' "other" group has no effect on unassigned code points (Cn),
        // noncharacters such as U+FFFE included, so only Cc, Cf and Co count.
        case .control, .format, .privateUse:
            return .other
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
            .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return .punctuation
        case .nonspacingMark:
            return .nonspacingMark
        default:
            return .none
        }
    }

    /// HF `is_whitespace`: tab, newline, carriage return, or Unicode `White_Space`.
    @inline(__always)
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x80 {
            return value == 0x20 || (value >= 0x09 && value <= 0x0D)
        }
        return scalar.properties.isWhitespace
    }

    /// Rust's `char::is_whitespace` (the `White_Space` property), used by the pre-tokenizer.
    @inline(__always)
    static func isRustWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        isWhitespace(scalar)
    }

    /// HF `is_control`: the `unicode_categories` "other" group (Cc, Cf, Co in Unicode 8.0),
    /// except tab, newline and carriage return, which count as whitespace.
    @inline(__always)
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value == 0x09 || value == 0x0A || value == 0x0D { return false }
        if value < 0x80 { return value < 0x20 || value == 0x7F }
        return unicode8Category(scalar) == .other
    }

    /// Whether `clean_text` deletes the character: NUL, U+FFFD, or a control character.
    @inline(__always)
    static func isRemovedByCleanText(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value == 0 || scalar.value == 0xFFFD || isControl(scalar)
    }

    /// HF `is_bert_punc`: ASCII punctuation (which includes symbols such as `$`, `+`, `<`, `^`, `|`)
    /// or a Unicode 8.0 punctuation character (Pc, Pd, Ps, Pe, Pi, Pf, Po).
    @inline(__always)
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x80 {
            return (value >= 0x21 && value <= 0x2F) || (value >= 0x3A && value <= 0x40)
                || (value >= 0x5B && value <= 0x60) || (value >= 0x7B && value <= 0x7E)
        }
        return unicode8Category(scalar) == .punctuation
    }

    /// Whether `strip_accents` removes the character after NFD: a Unicode 8.0 nonspacing mark (Mn).
    @inline(__always)
    static func isNonspacingMark(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value < 0x300 { return false }
        return unicode8Category(scalar) == .nonspacingMark
    }

    /// HF `is_chinese_char`: the CJK ideograph blocks exactly as the BERT normalizer lists them
    /// (note the gap between U+2B81F and U+2B920, which HF leaves out).
    @inline(__always)
    static func isChineseCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
            0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }

    /// Rust's `char::to_lowercase`: the full (possibly multi-scalar) lowercase mapping, applied per
    /// scalar with no context (so `Σ` always becomes `σ`).
    /// - Parameters:
    ///   - scalar: the scalar to lowercase.
    ///   - output: receives the lowercase scalars, in order.
    @inline(__always)
    static func appendLowercase(of scalar: Unicode.Scalar, to output: inout [Unicode.Scalar]) {
        let value = scalar.value
        if value < 0x80 {
            if value >= 0x41 && value <= 0x5A {
                output.append(Unicode.Scalar(UInt8(value + 0x20)))
            } else {
                output.append(scalar)
            }
            return
        }
        let properties = scalar.properties
        guard properties.changesWhenLowercased else {
            output.append(scalar)
            return
        }
        output.append(contentsOf: properties.lowercaseMapping.unicodeScalars)
    }
}
