/// The WordPiece model: greedy longest-match-first splitting of one word into vocabulary pieces,
/// exactly as HF `tokenizers`' `WordPiece::tokenize`.
///
/// Vocabulary entries are compared scalar by scalar (HF compares bytes), never with Swift `String`
/// equality, which would treat canonically equivalent spellings as the same entry.
struct WordPieceModel: Sendable {
    /// The vocabulary, by id: `tokens[id]` is the piece's text (with `##` for continuations).
    let tokens: [String]
    let unknownTokenID: Int32
    let unknownToken: String
    let continuingSubwordPrefix: String
    let maxInputCharsPerWord: Int
    private let trie: VocabularyTrie

    /// Builds the model from (token, id) pairs; a later duplicate token overrides an earlier one.
    init(
        vocabulary: [(token: String, id: Int)], unknownToken: String, continuingSubwordPrefix: String,
        maxInputCharsPerWord: Int
    ) throws(TokenizerError) {
        var trie = VocabularyTrie()
        let size = (vocabulary.map(\.id).max() ?? -1) + 1
        var tokens = [String](repeating: "", count: size)
        let prefix = Array(continuingSubwordPrefix.unicodeScalars)
        var unknownID: Int32?
        let unknownScalars = Array(unknownToken.unicodeScalars)
        for (token, id) in vocabulary {
            guard id >= 0, id <= Int(Int32.max) else {
                throw .invalidField(field: "model.vocab", reason: "has the negative or too large id \(id) for \"\(token)\"")
            }
            tokens[id] = token
            let scalars = Array(token.unicodeScalars)
            trie.insert(scalars[...], id: Int32(id), root: VocabularyTrie.wordStartRoot)
            if !prefix.isEmpty, scalars.count > prefix.count, scalars.starts(with: prefix) {
                trie.insert(scalars[prefix.count...], id: Int32(id), root: VocabularyTrie.continuationRoot)
            } else if prefix.isEmpty {
                trie.insert(scalars[...], id: Int32(id), root: VocabularyTrie.continuationRoot)
            }
            if scalars == unknownScalars { unknownID = Int32(id) }
        }
        guard let unknownID else { throw .missingToken(token: unknownToken, role: "unknown (unk_token)") }
        self.tokens = tokens
        self.trie = trie
        self.unknownTokenID = unknownID
        self.unknownToken = unknownToken
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.maxInputCharsPerWord = maxInputCharsPerWord
    }

    /// The id of a vocabulary entry spelled exactly `token`, if any.
    func id(of token: String) -> Int32? {
        trie.exactMatch(Array(token.unicodeScalars)[...], root: VocabularyTrie.wordStartRoot)
    }

    /// Splits one word into pieces.
    /// - Parameters:
    ///   - word: the word's normalized scalars.
    ///   - emit: called per piece with its id and its scalar range within `word`.
    @inline(__always)
    func tokenize(_ word: ArraySlice<Unicode.Scalar>, emit: (Int32, Range<Int>) -> Void) {
        let count = word.count
        let base = word.startIndex
        if count > maxInputCharsPerWord {
            emit(unknownTokenID, 0..<count)
            return
        }
        // Fast path: most words are a single vocabulary entry.
        if let (length, id) = trie.longestPrefix(word, root: VocabularyTrie.wordStartRoot), length == count {
            emit(id, 0..<count)
            return
        }
        var pieces: [(Int32, Range<Int>)] = []
        var start = 0
        while start < count {
            let root = start == 0 ? VocabularyTrie.wordStartRoot : VocabularyTrie.continuationRoot
            guard let (length, id) = trie.longestPrefix(word[(base + start)...], root: root) else {
                emit(unknownTokenID, 0..<count)
                return
            }
            pieces.append((id, start..<(start + length)))
            start += length
        }
        for (id, range) in pieces { emit(id, range) }
    }
}

/// A trie over Unicode scalars with two roots: whole vocabulary entries (for a word's first piece)
/// and entries after the continuing-subword prefix (for the following pieces).
struct VocabularyTrie: Sendable {
    static let wordStartRoot: Int32 = 0
    static let continuationRoot: Int32 = 1

    /// Child of (node, scalar), keyed as node << 21 | scalar.
    private var children: [UInt64: Int32] = [:]
    /// Vocabulary id that ends at each node, or -1.
    private var terminalIDs: [Int32] = [-1, -1]

    @inline(__always)
    private static func key(_ node: Int32, _ scalar: Unicode.Scalar) -> UInt64 {
        UInt64(UInt32(bitPattern: node)) << 21 | UInt64(scalar.value)
    }

    mutating func insert(_ scalars: ArraySlice<Unicode.Scalar>, id: Int32, root: Int32) {
        guard !scalars.isEmpty else { return }
        var node = root
        for scalar in scalars {
            let key = Self.key(node, scalar)
            if let child = children[key] {
                node = child
            } else {
                let child = Int32(terminalIDs.count)
                terminalIDs.append(-1)
                children[key] = child
                node = child
            }
        }
        terminalIDs[Int(node)] = id
    }

    /// The longest non-empty prefix of `scalars` that is an entry under `root`: (length, id).
    @inline(__always)
    func longestPrefix(_ scalars: ArraySlice<Unicode.Scalar>, root: Int32) -> (Int, Int32)? {
        var node = root
        var best: (Int, Int32)?
        var length = 0
        for scalar in scalars {
            guard let child = children[Self.key(node, scalar)] else { break }
            node = child
            length += 1
            let id = terminalIDs[Int(node)]
            if id >= 0 { best = (length, id) }
        }
        return best
    }

    func exactMatch(_ scalars: ArraySlice<Unicode.Scalar>, root: Int32) -> Int32? {
        guard !scalars.isEmpty else { return nil }
        var node = root
        for scalar in scalars {
            guard let child = children[Self.key(node, scalar)] else { return nil }
            node = child
        }
        let id = terminalIDs[Int(node)]
        return id >= 0 ? id : nil
    }
}
