// `String._nfd` (the standard library's own canonical decomposition, SPI since Swift 5.7) gives NFD
// scalar by scalar without Foundation's NSString bridging; we need it per scalar to keep alignments.
@_spi(_Unicode) import Swift

/// The BERT text normalizer (HF `BertNormalizer`): cleans control characters, spaces out CJK
/// ideographs, strips accents and lowercases, in that order, keeping character alignments.
public struct BertNormalizer: Sendable, Equatable {
    /// Remove control characters and turn every kind of whitespace into a plain space.
    public var cleanText: Bool
    /// Put spaces around CJK ideographs so each becomes its own word.
    public var handleChineseChars: Bool
    /// Decompose (NFD) and drop nonspacing marks; `nil` means "strip when lowercasing", as in HF.
    public var stripAccents: Bool?
    /// Lowercase every character (Rust `char::to_lowercase` semantics; may expand one to several).
    public var lowercase: Bool

    /// Creates a BERT normalizer.
    /// - Parameters:
    ///   - cleanText: remove control characters and normalize whitespace to spaces.
    ///   - handleChineseChars: isolate CJK ideographs as single-character words.
    ///   - stripAccents: strip accents; `nil` follows `lowercase` (HF's default).
    ///   - lowercase: lowercase the text.
    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    /// Whether accents are stripped once `nil` has been resolved.
    public var stripsAccents: Bool { stripAccents ?? lowercase }

    /// Normalizes text in place, updating alignments exactly as HF does.
    func normalize(_ text: inout NormalizedText) {
        if cleanText { Self.cleanText(&text) }
        if handleChineseChars { Self.spaceOutChineseCharacters(&text) }
        if stripsAccents { Self.stripAccents(&text) }
        if lowercase { Self.lowercase(&text) }
    }

    /// Normalizes a string the way the tokenizer does before splitting it into words.
    /// - Parameter text: the original text.
    /// - Returns: the normalized text (e.g. "Crème Brûlée" becomes "creme brulee" with the defaults).
    public func normalize(_ text: String) -> String {
        String(String.UnicodeScalarView(normalizedScalars(text)))
    }

    /// The normalized form of a string (for added tokens that are matched after normalization).
    func normalizedScalars(_ string: String) -> [Unicode.Scalar] {
        var text = NormalizedText(original: string.unicodeScalars)
        normalize(&text)
        return text.scalars
    }

    private static func cleanText(_ text: inout NormalizedText) {
        var needsWork = false
        for scalar in text.scalars where scalar.value < 0x20 || scalar.value >= 0x7F {
            needsWork = true
            break
        }
        guard needsWork else { return }
        text.filter { !BertCharacterClasses.isRemovedByCleanText($0) }
        for index in text.scalars.indices where BertCharacterClasses.isWhitespace(text.scalars[index]) {
            text.scalars[index] = " "
        }
    }

    private static func spaceOutChineseCharacters(_ text: inout NormalizedText) {
        guard text.scalars.contains(where: BertCharacterClasses.isChineseCharacter) else { return }
        var changes: [NormalizedText.Change] = []
        changes.reserveCapacity(text.scalars.count * 3)
        for scalar in text.scalars {
            if BertCharacterClasses.isChineseCharacter(scalar) {
                changes.append(.init(scalar: " ", change: 1))
                changes.append(.init(scalar: scalar, change: 0))
                changes.append(.init(scalar: " ", change: 1))
            } else {
                changes.append(.init(scalar: scalar, change: 0))
            }
        }
        text.transform(changes, initialOffset: 0)
    }

    private static func stripAccents(_ text: inout NormalizedText) {
        guard text.scalars.contains(where: { $0.value >= 0xC0 }) else { return }
        text.transform(CanonicalDecomposition.nfdChanges(text.scalars), initialOffset: 0)
        text.filter { !BertCharacterClasses.isNonspacingMark($0) }
    }

    private static func lowercase(_ text: inout NormalizedText) {
        var index = 0
        // ASCII-only text lowercases in place with unchanged alignments.
        while index < text.scalars.count, text.scalars[index].value < 0x80 {
            let value = text.scalars[index].value
            if value >= 0x41 && value <= 0x5A { text.scalars[index] = Unicode.Scalar(UInt8(value + 0x20)) }
            index += 1
        }
        guard index < text.scalars.count else { return }
        var lowered: [Unicode.Scalar] = []
        var newAlignments: [Alignment] = []
        lowered.reserveCapacity(text.scalars.count + 4)
        newAlignments.reserveCapacity(text.scalars.count + 4)
        lowered.append(contentsOf: text.scalars[..<index])
        newAlignments.append(contentsOf: text.alignments[..<index])
        // Every scalar of a (possibly expanded) lowercase mapping keeps its source's alignment:
        // HF inserts the extra scalars with change 1, right after consuming the source.
        for position in index..<text.scalars.count {
            let before = lowered.count
            BertCharacterClasses.appendLowercase(of: text.scalars[position], to: &lowered)
            for _ in before..<lowered.count { newAlignments.append(text.alignments[position]) }
        }
        text.scalars = lowered
        text.alignments = newAlignments
    }
}

/// Canonical decomposition (NFD) with HF's alignment bookkeeping (`unicode-normalization-alignments`).
enum CanonicalDecomposition {
    /// The Unicode version of the decomposition tables in the crate HF links (0.1.x): characters
    /// assigned later have no decomposition and combining class 0 there.
    private static func isKnownToHF(_ scalar: Unicode.Scalar) -> Bool {
        guard let age = scalar.properties.age else { return false }
        return age.major < 12 || (age.major == 12 && age.minor <= 1)
    }

    /// The canonical combining class HF uses for a scalar.
    @inline(__always)
    static func combiningClass(_ scalar: Unicode.Scalar) -> UInt8 {
        if scalar.value < 0x300 { return 0 }
        let value = scalar.properties.canonicalCombiningClass.rawValue
        if value == 0 { return 0 }
        return isKnownToHF(scalar) ? value : 0
    }

    /// Appends the full canonical decomposition of one scalar.
    @inline(__always)
    static func appendDecomposition(of scalar: Unicode.Scalar, to output: inout [Unicode.Scalar]) {
        if scalar.value < 0xC0 || !isKnownToHF(scalar) {
            output.append(scalar)
            return
        }
        for decomposed in String(scalar)._nfd {
            output.append(decomposed)
        }
    }

    /// The NFD of `scalars` as HF's transform input: the first scalar of each decomposition replaces
    /// its source (change 0), the others are inserted (change 1); then each run of combining marks is
    /// stably sorted by combining class, changes travelling with their scalars.
    static func nfdChanges(_ scalars: [Unicode.Scalar]) -> [NormalizedText.Change] {
        var changes: [NormalizedText.Change] = []
        var classes: [UInt8] = []
        changes.reserveCapacity(scalars.count + 8)
        classes.reserveCapacity(scalars.count + 8)
        var decomposition: [Unicode.Scalar] = []
        var pendingStart = 0
        for scalar in scalars {
            decomposition.removeAll(keepingCapacity: true)
            appendDecomposition(of: scalar, to: &decomposition)
            for (index, part) in decomposition.enumerated() {
                let combiningClass = combiningClass(part)
                if combiningClass == 0 {
                    sortPending(&changes, &classes, from: pendingStart)
                    pendingStart = changes.count
                }
                changes.append(.init(scalar: part, change: index == 0 ? 0 : 1))
                classes.append(combiningClass)
            }
        }
        sortPending(&changes, &classes, from: pendingStart)
        return changes
    }

    private static func sortPending(_ changes: inout [NormalizedText.Change], _ classes: inout [UInt8], from start: Int) {
        guard changes.count - start > 1 else { return }
        // Stable insertion sort by combining class; runs of marks are short.
        for i in (start + 1)..<changes.count {
            let change = changes[i]
            let key = classes[i]
            var j = i
            while j > start && classes[j - 1] > key {
                changes[j] = changes[j - 1]
                classes[j] = classes[j - 1]
                j -= 1
            }
            changes[j] = change
            classes[j] = key
        }
    }
}
