import Foundation

/// Options for a BERT tokenizer built from a `vocab.txt` (what HF's `BertWordPieceTokenizer` takes).
public struct BertVocabularyOptions: Sendable, Equatable {
    /// Lowercase the text (uncased models).
    public var lowercase: Bool
    /// Strip accents; nil follows `lowercase`.
    public var stripAccents: Bool?
    /// Isolate CJK ideographs as one-character words.
    public var handleChineseChars: Bool
    /// Remove control characters and normalize whitespace.
    public var cleanText: Bool
    /// The unknown token.
    public var unknownToken: String
    /// The classification token put first.
    public var classToken: String
    /// The separator token.
    public var separatorToken: String
    /// The padding token.
    public var padToken: String
    /// The mask token.
    public var maskToken: String
    /// Words longer than this (in characters) become the unknown token.
    public var maxInputCharsPerWord: Int
    /// The prefix marking a word continuation.
    public var continuingSubwordPrefix: String

    /// Creates options; the defaults are bert-base-uncased's.
    /// - Parameters:
    ///   - lowercase: lowercase the text.
    ///   - stripAccents: strip accents (nil: same as `lowercase`).
    ///   - handleChineseChars: isolate CJK ideographs.
    ///   - cleanText: remove control characters, normalize whitespace.
    ///   - unknownToken: the unknown token.
    ///   - classToken: the classification token.
    ///   - separatorToken: the separator token.
    ///   - padToken: the padding token.
    ///   - maskToken: the mask token.
    ///   - maxInputCharsPerWord: longer words become the unknown token.
    ///   - continuingSubwordPrefix: the continuation prefix.
    public init(
        lowercase: Bool = true, stripAccents: Bool? = nil, handleChineseChars: Bool = true, cleanText: Bool = true,
        unknownToken: String = "[UNK]", classToken: String = "[CLS]", separatorToken: String = "[SEP]",
        padToken: String = "[PAD]", maskToken: String = "[MASK]", maxInputCharsPerWord: Int = 100,
        continuingSubwordPrefix: String = "##"
    ) {
        self.lowercase = lowercase
        self.stripAccents = stripAccents
        self.handleChineseChars = handleChineseChars
        self.cleanText = cleanText
        self.unknownToken = unknownToken
        self.classToken = classToken
        self.separatorToken = separatorToken
        self.padToken = padToken
        self.maskToken = maskToken
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.continuingSubwordPrefix = continuingSubwordPrefix
    }
}

extension WordPieceTokenizer {
    /// Loads a Hugging Face `tokenizer.json`.
    /// - Parameter url: the file's location.
    /// - Throws: `TokenizerError` if the file is unreadable, not JSON, or describes a tokenizer Kiln
    ///   does not implement (the error says which part and what to do).
    public init(contentsOf url: URL) throws(TokenizerError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .unreadableFile(path: url.path, reason: Self.reason(error))
        }
        try self.init(tokenizerJSON: data, source: url.path)
    }

    /// Loads a Hugging Face `tokenizer.json` from its bytes.
    /// - Parameters:
    ///   - data: the JSON text.
    ///   - source: a name for the data in error messages.
    /// - Throws: `TokenizerError` if the JSON is invalid or describes a tokenizer Kiln does not implement.
    public init(tokenizerJSON data: Data, source: String = "tokenizer.json") throws(TokenizerError) {
        let root: JSONValue
        do {
            root = try JSONReader.parse([UInt8](data))
        } catch {
            throw .invalidJSON(path: source, reason: error.message, byteOffset: error.byteOffset)
        }
        try self.init(configuration: root)
    }

    /// Builds a BERT tokenizer from a `vocab.txt` (one token per line, the line number is its id),
    /// like HF's `BertWordPieceTokenizer`: BERT normalizer and pre-tokenizer, `[CLS] A [SEP]`
    /// template, no truncation or padding.
    /// - Parameters:
    ///   - url: the vocabulary file.
    ///   - options: normalization options and special tokens.
    /// - Throws: `TokenizerError` if the file is unreadable or lacks the unknown, class or separator token.
    public init(vocabularyFile url: URL, options: BertVocabularyOptions = BertVocabularyOptions()) throws(TokenizerError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw .unreadableFile(path: url.path, reason: Self.reason(error))
        }
        let text = String(decoding: data, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        try self.init(vocabulary: lines, options: options)
    }

    /// Builds a BERT tokenizer from a vocabulary list (index = id); see `init(vocabularyFile:options:)`.
    /// - Parameters:
    ///   - vocabulary: the tokens, in id order. Trailing whitespace of each is ignored, as HF does.
    ///   - options: normalization options and special tokens.
    /// - Throws: `TokenizerError.missingToken` if the unknown, class or separator token is missing.
    public init(vocabulary: [String], options: BertVocabularyOptions = BertVocabularyOptions()) throws(TokenizerError) {
        let entries = vocabulary.enumerated().map { (token: Self.trimmingTrailingWhitespace($0.element), id: $0.offset) }
        let model = try WordPieceModel(
            vocabulary: entries, unknownToken: options.unknownToken,
            continuingSubwordPrefix: options.continuingSubwordPrefix,
            maxInputCharsPerWord: options.maxInputCharsPerWord)
        let specialNames = [options.padToken, options.unknownToken, options.classToken, options.separatorToken, options.maskToken]
        var specials: [AddedToken] = []
        for name in specialNames {
            guard let id = model.id(of: name), !specials.contains(where: { $0.id == id }) else { continue }
            specials.append(AddedToken(content: name, id: id, special: true))
        }
        guard let classID = model.id(of: options.classToken) else {
            throw .missingToken(token: options.classToken, role: "classification (cls)")
        }
        guard let separatorID = model.id(of: options.separatorToken) else {
            throw .missingToken(token: options.separatorToken, role: "separator (sep)")
        }
        self.init(
            model: model,
            normalizer: BertNormalizer(
                cleanText: options.cleanText, handleChineseChars: options.handleChineseChars,
                stripAccents: options.stripAccents, lowercase: options.lowercase),
            splitsWords: true, addedTokens: specials.sorted { $0.id < $1.id },
            postProcessor: .bert(cls: (options.classToken, classID), sep: (options.separatorToken, separatorID)),
            truncation: nil, padding: nil)
    }

    private static func reason(_ error: any Error) -> String {
        var text = error.localizedDescription
        while text.hasSuffix(".") { text.removeLast() }
        return text
    }

    private static func trimmingTrailingWhitespace(_ line: String) -> String {
        var scalars = Substring(line).unicodeScalars
        while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() }
        return String(scalars)
    }

    /// Builds the tokenizer a parsed tokenizer.json describes.
    init(configuration root: JSONValue) throws(TokenizerError) {
        guard root.objectValue != nil else { throw .invalidField(field: "(root)", reason: "is not a JSON object") }
        let model = try Self.parseModel(root["model"])
        let addedTokens = try Self.parseAddedTokens(root["added_tokens"])
        self.init(
            model: model,
            normalizer: try Self.parseNormalizer(root["normalizer"]),
            splitsWords: try Self.parsePreTokenizer(root["pre_tokenizer"]),
            addedTokens: addedTokens,
            postProcessor: try Self.parsePostProcessor(root["post_processor"]),
            truncation: try Self.parseTruncation(root["truncation"]),
            padding: try Self.parsePadding(root["padding"]))
    }

    private static func parseModel(_ value: JSONValue?) throws(TokenizerError) -> WordPieceModel {
        guard let value, value.objectValue != nil else { throw .invalidField(field: "model", reason: "is missing") }
        let type = value["type"]?.stringValue
        // Old files have no "type"; HF then recognizes WordPiece by its continuing_subword_prefix.
        guard type == "WordPiece" || (type == nil && value["continuing_subword_prefix"] != nil) else {
            throw .unsupportedModel(type: type ?? "unknown")
        }
        guard let vocab = value["vocab"]?.objectValue else {
            throw .invalidField(field: "model.vocab", reason: "is missing or not an object of token: id")
        }
        var entries: [(token: String, id: Int)] = []
        entries.reserveCapacity(vocab.count)
        for member in vocab {
            guard let id = member.value.intValue else {
                throw .invalidField(field: "model.vocab", reason: "has a non-integer id for \"\(member.key)\"")
            }
            entries.append((member.key, id))
        }
        return try WordPieceModel(
            vocabulary: entries,
            unknownToken: value["unk_token"]?.stringValue ?? "[UNK]",
            continuingSubwordPrefix: value["continuing_subword_prefix"]?.stringValue ?? "##",
            maxInputCharsPerWord: value["max_input_chars_per_word"]?.intValue ?? 100)
    }

    private static func parseAddedTokens(_ value: JSONValue?) throws(TokenizerError) -> [AddedToken] {
        guard let value, !value.isNull else { return [] }
        guard let list = value.arrayValue else { throw .invalidField(field: "added_tokens", reason: "is not a list") }
        var tokens: [AddedToken] = []
        for entry in list {
            guard let content = entry["content"]?.stringValue, let id = entry["id"]?.intValue else {
                throw .invalidField(field: "added_tokens", reason: "has an entry without `content` and `id`")
            }
            let special = entry["special"]?.boolValue ?? false
            tokens.append(
                AddedToken(
                    content: content, id: Int32(id), special: special,
                    singleWord: entry["single_word"]?.boolValue ?? false,
                    leftStrip: entry["lstrip"]?.boolValue ?? false,
                    rightStrip: entry["rstrip"]?.boolValue ?? false,
                    normalized: entry["normalized"]?.boolValue ?? !special))
        }
        return tokens
    }

    private static func parseNormalizer(_ value: JSONValue?) throws(TokenizerError) -> BertNormalizer? {
        guard let value, !value.isNull else { return nil }
        let type = value["type"]?.stringValue ?? "unknown"
        if type == "Sequence", let list = value["normalizers"]?.arrayValue {
            // A sequence of exactly one BertNormalizer is the same normalizer.
            if list.isEmpty { return nil }
            if list.count == 1 { return try parseNormalizer(list[0]) }
            throw .unsupportedNormalizer(type: "Sequence of \(list.count) normalizers")
        }
        guard type == "BertNormalizer" else { throw .unsupportedNormalizer(type: type) }
        let stripAccents: Bool?
        if let strip = value["strip_accents"], !strip.isNull {
            guard let flag = strip.boolValue else {
                throw .invalidField(field: "normalizer.strip_accents", reason: "is not true, false or null")
            }
            stripAccents = flag
        } else {
            stripAccents = nil
        }
        return BertNormalizer(
            cleanText: value["clean_text"]?.boolValue ?? true,
            handleChineseChars: value["handle_chinese_chars"]?.boolValue ?? true,
            stripAccents: stripAccents,
            lowercase: value["lowercase"]?.boolValue ?? true)
    }

    private static func parsePreTokenizer(_ value: JSONValue?) throws(TokenizerError) -> Bool {
        guard let value, !value.isNull else { return false }
        let type = value["type"]?.stringValue ?? "unknown"
        if type == "Sequence", let list = value["pretokenizers"]?.arrayValue {
            if list.isEmpty { return false }
            if list.count == 1 { return try parsePreTokenizer(list[0]) }
            throw .unsupportedPreTokenizer(type: "Sequence of \(list.count) pre-tokenizers")
        }
        guard type == "BertPreTokenizer" else { throw .unsupportedPreTokenizer(type: type) }
        return true
    }

    private static func parsePostProcessor(_ value: JSONValue?) throws(TokenizerError) -> PostProcessor? {
        guard let value, !value.isNull else { return nil }
        let type = value["type"]?.stringValue ?? "unknown"
        switch type {
        case "BertProcessing":
            guard let sep = value["sep"]?.arrayValue, sep.count == 2, let sepToken = sep[0].stringValue,
                let sepID = sep[1].intValue, let cls = value["cls"]?.arrayValue, cls.count == 2,
                let clsToken = cls[0].stringValue, let clsID = cls[1].intValue
            else {
                throw .invalidField(field: "post_processor", reason: "needs `sep` and `cls` as [token, id]")
            }
            return .bert(cls: (clsToken, Int32(clsID)), sep: (sepToken, Int32(sepID)))
        case "TemplateProcessing":
            var specials: [String: PostProcessor.SpecialToken] = [:]
            for member in value["special_tokens"]?.objectValue ?? [] {
                let ids = (member.value["ids"]?.arrayValue ?? []).compactMap(\.intValue).map(Int32.init)
                let tokens = (member.value["tokens"]?.arrayValue ?? []).compactMap(\.stringValue)
                guard ids.count == tokens.count else {
                    throw .invalidField(
                        field: "post_processor.special_tokens", reason: "has different numbers of ids and tokens for \(member.key)")
                }
                specials[member.value["id"]?.stringValue ?? member.key] = .init(ids: ids, tokens: tokens)
            }
            return PostProcessor(
                single: try parseTemplate(value["single"], field: "post_processor.single"),
                pair: try parseTemplate(value["pair"], field: "post_processor.pair"),
                specialTokens: specials)
        default:
            throw .unsupportedPostProcessor(type: type)
        }
    }

    private static func parseTemplate(_ value: JSONValue?, field: String) throws(TokenizerError) -> [PostProcessor.Piece] {
        guard let list = value?.arrayValue else { throw .invalidField(field: field, reason: "is missing") }
        var pieces: [PostProcessor.Piece] = []
        for entry in list {
            if let sequence = entry["Sequence"] {
                let index = sequence["id"]?.stringValue == "B" ? 1 : 0
                pieces.append(.sequence(index: index, typeId: Int32(sequence["type_id"]?.intValue ?? 0)))
            } else if let special = entry["SpecialToken"], let name = special["id"]?.stringValue {
                pieces.append(.specialToken(name: name, typeId: Int32(special["type_id"]?.intValue ?? 0)))
            } else {
                throw .invalidField(field: field, reason: "has an entry that is neither Sequence nor SpecialToken")
            }
        }
        return pieces
    }

    private static func parseTruncation(_ value: JSONValue?) throws(TokenizerError) -> TruncationConfiguration? {
        guard let value, !value.isNull else { return nil }
        guard let maxLength = value["max_length"]?.intValue else {
            throw .invalidField(field: "truncation.max_length", reason: "is missing")
        }
        let strategyName = value["strategy"]?.stringValue ?? "LongestFirst"
        guard let strategy = TruncationStrategy(rawValue: strategyName) else {
            throw .invalidField(field: "truncation.strategy", reason: "is \"\(strategyName)\", not LongestFirst, OnlyFirst or OnlySecond")
        }
        let directionName = value["direction"]?.stringValue ?? "Right"
        guard let direction = TruncationDirection(rawValue: directionName) else {
            throw .invalidField(field: "truncation.direction", reason: "is \"\(directionName)\", not Left or Right")
        }
        return TruncationConfiguration(
            maxLength: maxLength, strategy: strategy, direction: direction, stride: value["stride"]?.intValue ?? 0)
    }

    private static func parsePadding(_ value: JSONValue?) throws(TokenizerError) -> PaddingConfiguration? {
        guard let value, !value.isNull else { return nil }
        let strategy: PaddingStrategy
        if let fixed = value["strategy"]?["Fixed"]?.intValue {
            strategy = .fixed(fixed)
        } else if value["strategy"]?.stringValue == "BatchLongest" || value["strategy"] == nil {
            strategy = .batchLongest
        } else {
            throw .invalidField(field: "padding.strategy", reason: "is neither \"BatchLongest\" nor {\"Fixed\": n}")
        }
        let directionName = value["direction"]?.stringValue ?? "Right"
        guard let direction = PaddingDirection(rawValue: directionName) else {
            throw .invalidField(field: "padding.direction", reason: "is \"\(directionName)\", not Left or Right")
        }
        return PaddingConfiguration(
            strategy: strategy, direction: direction, padToMultipleOf: value["pad_to_multiple_of"]?.intValue,
            padId: Int32(value["pad_id"]?.intValue ?? 0), padTypeId: Int32(value["pad_type_id"]?.intValue ?? 0),
            padToken: value["pad_token"]?.stringValue ?? "[PAD]")
    }
}
