// Text under normalization, with the alignment of every normalized scalar to the original text.
//
// This mirrors `NormalizedString` in Hugging Face `tokenizers`, but counts Unicode scalars where HF
// counts UTF-8 bytes. HF gives every byte of a character the same alignment and the Python API
// converts byte offsets to character offsets at the end, so the two agree on every offset.

/// The original-text range (in Unicode scalars) that one normalized scalar came from.
struct Alignment: Equatable, Sendable {
    var start: Int32
    var end: Int32
}

/// A piece of text being normalized: the current scalars and, for each one, where it came from.
struct NormalizedText {
    /// The normalized scalars.
    var scalars: [Unicode.Scalar]
    /// One alignment per normalized scalar, relative to the start of this piece's original text.
    var alignments: [Alignment]

    /// Starts normalizing `original`: every scalar is aligned to itself.
    init<S: Collection>(original: S) where S.Element == Unicode.Scalar {
        scalars = Array(original)
        alignments = (0..<scalars.count).map { Alignment(start: Int32($0), end: Int32($0 + 1)) }
    }

    /// A change to apply to the normalized text, in HF's `transform` convention.
    struct Change {
        var scalar: Unicode.Scalar
        /// `1`: a new scalar inserted here; `0`: replaces the current scalar;
        /// `-n`: replaces the current scalar and deletes the `n` scalars after it.
        var change: Int
    }

    /// Rewrites the text like HF's `NormalizedString::transform`: replaced scalars keep the alignment
    /// of the scalar they replace; inserted scalars take the alignment of the scalar before them.
    /// - Parameters:
    ///   - changes: the new text, scalar by scalar, with how each relates to the old text.
    ///   - initialOffset: how many scalars at the very beginning are deleted.
    mutating func transform(_ changes: [Change], initialOffset: Int) {
        var offset = initialOffset
        var newAlignments: [Alignment] = []
        newAlignments.reserveCapacity(changes.count)
        var newScalars: [Unicode.Scalar] = []
        newScalars.reserveCapacity(changes.count)
        for change in changes {
            if change.change > 0 {
                newAlignments.append(offset < 1 ? Alignment(start: 0, end: 0) : alignments[offset - 1])
            } else {
                newAlignments.append(alignments[offset])
                offset += 1 - change.change
            }
            newScalars.append(change.scalar)
        }
        scalars = newScalars
        alignments = newAlignments
    }

    /// Keeps only the scalars for which `keep` is true. Kept scalars keep their alignment
    /// (HF's `filter`).
    mutating func filter(_ keep: (Unicode.Scalar) -> Bool) {
        var write = 0
        for read in 0..<scalars.count where keep(scalars[read]) {
            scalars[write] = scalars[read]
            alignments[write] = alignments[read]
            write += 1
        }
        scalars.removeSubrange(write...)
        alignments.removeSubrange(write...)
    }

    /// The original range covered by the normalized scalars `range` (HF's `convert_offsets` from the
    /// normalized referential): from the first one's start to the last one's end.
    func originalRange(of range: Range<Int>) -> Range<Int> {
        if range.isEmpty { return range }
        let start = Int(alignments[range.lowerBound].start)
        let end = Int(alignments[range.upperBound - 1].end)
        return start..<max(start, end)
    }
}
