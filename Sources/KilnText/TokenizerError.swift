/// Why a tokenizer could not be loaded or could not encode an input. Every message says what
/// happened and what to do about it.
public enum TokenizerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The tokenizer file could not be read.
    case unreadableFile(path: String, reason: String)
    /// The file is not valid JSON.
    case invalidJSON(path: String, reason: String, byteOffset: Int)
    /// A required field is missing or has the wrong type.
    case invalidField(field: String, reason: String)
    /// The tokenizer uses a model Kiln does not implement.
    case unsupportedModel(type: String)
    /// The tokenizer uses a normalizer Kiln does not implement.
    case unsupportedNormalizer(type: String)
    /// The tokenizer uses a pre-tokenizer Kiln does not implement.
    case unsupportedPreTokenizer(type: String)
    /// The tokenizer uses a post-processor Kiln does not implement.
    case unsupportedPostProcessor(type: String)
    /// A token the configuration refers to is not in the vocabulary.
    case missingToken(token: String, role: String)
    /// Truncation cannot satisfy the requested length.
    case truncationImpossible(reason: String)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "cannot read tokenizer file \(path): \(reason). Check the path and the file's permissions."
        case .invalidJSON(let path, let reason, let offset):
            return "\(path) is not valid JSON (\(reason) at byte \(offset)). Re-export it with "
                + "`tokenizer.save(path)` from the Python `tokenizers` package."
        case .invalidField(let field, let reason):
            return "tokenizer.json field `\(field)` \(reason). Re-export the tokenizer with the Python "
                + "`tokenizers` package, or fix the field by hand."
        case .unsupportedModel(let type):
            return "unsupported tokenizer model type \"\(type)\": Kiln supports WordPiece (BERT-family) "
                + "tokenizers only. Use a BERT/DistilBERT/MiniLM-style tokenizer.json, or build one from "
                + "vocab.txt with `WordPieceTokenizer(vocabularyFile:options:)`."
        case .unsupportedNormalizer(let type):
            return "unsupported normalizer \"\(type)\": Kiln supports BertNormalizer (or none). Replace the "
                + "`normalizer` section with a BertNormalizer that does the same thing."
        case .unsupportedPreTokenizer(let type):
            return "unsupported pre-tokenizer \"\(type)\": Kiln supports BertPreTokenizer (or none). Replace "
                + "the `pre_tokenizer` section with {\"type\": \"BertPreTokenizer\"}."
        case .unsupportedPostProcessor(let type):
            return "unsupported post-processor \"\(type)\": Kiln supports TemplateProcessing, BertProcessing "
                + "or none. Re-export the tokenizer with one of those."
        case .missingToken(let token, let role):
            return "the \(role) token \"\(token)\" is not in the vocabulary. Add it to the vocabulary or "
                + "set the \(role) token to one that is."
        case .truncationImpossible(let reason):
            return "cannot truncate: \(reason). Raise the maximum length or use the longest_first strategy."
        }
    }
}
