import CKilnSIMD
import KilnCore

/// An additive attention mask for padded batches: `mask[b, h, i, j]` at
/// `values + b·batchStride + h·headStride + i·rowStride + j` (a stride of 0 broadcasts),
/// 0 where a key may be attended and a large negative number where it may not.
public struct AttentionMask: @unchecked Sendable {
    /// The first element.
    public let values: UnsafePointer<Float>
    /// Elements between batch entries.
    public let batchStride: Int
    /// Elements between heads (0: the same mask for every head).
    public let headStride: Int
    /// Elements between query rows (0: a per-key mask).
    public let rowStride: Int

    /// A mask with explicit strides.
    public init(values: UnsafePointer<Float>, batchStride: Int, headStride: Int, rowStride: Int) {
        self.values = values
        self.batchStride = batchStride
        self.headStride = headStride
        self.rowStride = rowStride
    }

    /// The usual BERT mask: one additive value per key, `[batch, sequenceLength]`
    /// (the `[B, 1, 1, S]` tensor exporters build from `attention_mask`).
    public static func perKey(_ values: UnsafePointer<Float>, sequenceLength: Int) -> AttentionMask {
        AttentionMask(values: values, batchStride: sequenceLength, headStride: 0, rowStride: 0)
    }
}

/// Multi-head self-attention, `softmax(Q·Kᵀ·scale + mask)·V` per sequence and head: the CPU
/// engine's ``KilnOperators/attention``.
///
/// Two layouts:
/// - **packed** (padding-free): the tokens of all sequences concatenated, `[totalTokens, ·]`,
///   with `sequenceOffsets` (`[0, len0, len0+len1, ...]`); attention never crosses a sequence
///   boundary and no work is spent on padding.
/// - **padded**: `[batch, sequenceLength, ·]` with an additive ``AttentionMask``.
///
/// Q, K and V are addressed by a row stride, so the `[tokens, 3·hiddenSize]` output of a fused
/// QKV GEMM is used in place (`key = query + hiddenSize`, `value = query + 2·hiddenSize`,
/// `inputRowStride = 3·hiddenSize`). Heads are interleaved within a row:
/// head `h` is columns `h·headSize ..< (h+1)·headSize`. (sequence, head) pairs are spread over
/// workers round-robin; each worker uses its own `maxSequenceLength²` slice of `scratch`.
public struct AttentionKernel: Sendable {
    /// Number of heads.
    public let numHeads: Int
    /// `H`, the width of Q/K/V and of the output.
    public let hiddenSize: Int
    /// Multiplies `Q·Kᵀ` (usually `1/sqrt(headSize)`).
    public let scale: Float
    /// Baseline Swift or AVX2 kernels.
    public let isa: KernelISA

    /// `hiddenSize / numHeads`.
    public var headSize: Int { hiddenSize / numHeads }

    /// - Parameters:
    ///   - numHeads: heads; must divide `hiddenSize`.
    ///   - hiddenSize: `H`.
    ///   - scale: score scale; nil for `1/sqrt(headSize)`.
    ///   - isa: baseline Swift or AVX2 kernels (default: the best this CPU runs).
    public init(numHeads: Int, hiddenSize: Int, scale: Float? = nil, isa: KernelISA = .detected) throws {
        guard numHeads > 0, hiddenSize > 0, hiddenSize % numHeads == 0 else {
            throw KilnError.invalidInput("numHeads \(numHeads) must divide hiddenSize \(hiddenSize)")
        }
        self.numHeads = numHeads
        self.hiddenSize = hiddenSize
        self.scale = scale ?? 1 / Float(hiddenSize / numHeads).squareRoot()
        self.isa = isa
    }

    /// Floats of scratch ``runPacked(query:key:value:inputRowStride:sequenceOffsets:output:outputRowStride:scratch:width:)``
    /// and ``runPadded(query:key:value:inputRowStride:batchSize:sequenceLength:mask:output:outputRowStride:scratch:width:)`` need.
    public static func scratchCount(maxSequenceLength: Int, width: Int = CPUThreading.threadCount) -> Int {
        max(1, width) * maxSequenceLength * maxSequenceLength
    }

    /// Padding-free attention over a packed batch.
    /// - Parameters:
    ///   - query: row 0 of Q; token `t`'s row starts at `query + t·inputRowStride`.
    ///   - key: row 0 of K.
    ///   - value: row 0 of V.
    ///   - inputRowStride: floats between consecutive tokens' rows in Q/K/V.
    ///   - sequenceOffsets: `numSequences + 1` nondecreasing token offsets, starting at 0.
    ///   - output: row 0 of the context, `[totalTokens, hiddenSize]` at `outputRowStride`.
    ///   - outputRowStride: floats between output rows (usually `hiddenSize`).
    ///   - scratch: at least ``scratchCount(maxSequenceLength:width:)`` floats.
    ///   - width: parallel workers.
    /// - Throws: ``KilnError/invalidInput(_:)`` for bad offsets or too little scratch.
    public func runPacked(
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>, inputRowStride: Int,
        sequenceOffsets: UnsafeBufferPointer<Int>, output: UnsafeMutablePointer<Float>, outputRowStride: Int,
        scratch: UnsafeMutableBufferPointer<Float>, width: Int = CPUThreading.threadCount
    ) throws {
        let sequences = sequenceOffsets.count - 1
        guard sequences >= 0, sequenceOffsets.first == 0 || sequences == 0 else {
            throw KilnError.invalidInput("sequenceOffsets must start at 0 and hold numSequences + 1 entries")
        }
        var longest = 0
        var work = 0
        for sequence in 0..<max(sequences, 0) {
            let length = sequenceOffsets[sequence + 1] - sequenceOffsets[sequence]
            guard length >= 0 else { throw KilnError.invalidInput("sequenceOffsets must be nondecreasing") }
            longest = max(longest, length)
            work += length * length
        }
        let workers = workerCount(tasks: sequences * numHeads, work: work, width: width)
        try checkScratch(scratch, longest: longest, workers: workers)
        let layout = Layout(query: query, key: key, value: value, inputRowStride: inputRowStride, output: output, outputRowStride: outputRowStride)
        CPUThreading.parallelChunks(workers) { worker, workers in
            let scores = scratch.baseAddress! + worker * longest * longest
            var task = worker
            while task < sequences * numHeads {
                let sequence = task / numHeads
                let start = sequenceOffsets[sequence]
                attendHead(layout, firstToken: start, length: sequenceOffsets[sequence + 1] - start, head: task % numHeads,
                           mask: nil, maskRowStride: 0, scores: scores)
                task += workers
            }
        }
    }

    /// Attention over a padded batch `[batchSize, sequenceLength, ·]` with an additive mask;
    /// padding rows are computed too (as the unfused graph does).
    /// - Parameters:
    ///   - query: Q, `batchSize·sequenceLength` rows at `inputRowStride`.
    ///   - key: K, same layout.
    ///   - value: V, same layout.
    ///   - inputRowStride: floats between rows.
    ///   - batchSize: `B`.
    ///   - sequenceLength: `S`.
    ///   - mask: the additive mask, or nil.
    ///   - output: context rows at `outputRowStride`.
    ///   - outputRowStride: floats between output rows.
    ///   - scratch: at least ``scratchCount(maxSequenceLength:width:)`` floats for `S`.
    ///   - width: parallel workers.
    public func runPadded(
        query: UnsafePointer<Float>, key: UnsafePointer<Float>, value: UnsafePointer<Float>, inputRowStride: Int,
        batchSize: Int, sequenceLength: Int, mask: AttentionMask?, output: UnsafeMutablePointer<Float>,
        outputRowStride: Int, scratch: UnsafeMutableBufferPointer<Float>, width: Int = CPUThreading.threadCount
    ) throws {
        let tasks = batchSize * numHeads
        let workers = workerCount(tasks: tasks, work: batchSize * sequenceLength * sequenceLength, width: width)
        try checkScratch(scratch, longest: sequenceLength, workers: workers)
        let layout = Layout(query: query, key: key, value: value, inputRowStride: inputRowStride, output: output, outputRowStride: outputRowStride)
        CPUThreading.parallelChunks(workers) { worker, workers in
            let scores = scratch.baseAddress! + worker * sequenceLength * sequenceLength
            var task = worker
            while task < tasks {
                let batch = task / numHeads
                let head = task % numHeads
                let headMask = mask.map { $0.values + batch * $0.batchStride + head * $0.headStride }
                attendHead(layout, firstToken: batch * sequenceLength, length: sequenceLength, head: head,
                           mask: headMask, maskRowStride: mask?.rowStride ?? 0, scores: scores)
                task += workers
            }
        }
    }

    private struct Layout {
        let query: UnsafePointer<Float>
        let key: UnsafePointer<Float>
        let value: UnsafePointer<Float>
        let inputRowStride: Int
        let output: UnsafeMutablePointer<Float>
        let outputRowStride: Int
    }

    private func workerCount(tasks: Int, work: Int, width: Int) -> Int {
        // Below ~32k multiply-adds a second worker costs more than it saves.
        let multiplyAdds = work * headSize * numHeads * 2
        return multiplyAdds < 32_768 ? 1 : max(1, min(width, tasks))
    }

    private func checkScratch(_ scratch: UnsafeMutableBufferPointer<Float>, longest: Int, workers: Int) throws {
        let needed = workers * longest * longest
        guard scratch.count >= needed else {
            throw KilnError.invalidInput("attention scratch holds \(scratch.count) floats, \(needed) needed (see AttentionKernel.scratchCount)")
        }
    }

    /// One (sequence, head): scores = Q·Kᵀ·scale (+ mask), softmax per row, context = P·V.
    private func attendHead(
        _ layout: Layout, firstToken: Int, length: Int, head: Int, mask: UnsafePointer<Float>?, maskRowStride: Int,
        scores: UnsafeMutablePointer<Float>
    ) {
        guard length > 0 else { return }
        let headSize = self.headSize
        let column = head * headSize
        let stride = layout.inputRowStride
        let query = layout.query + firstToken * stride + column
        let key = layout.key + firstToken * stride + column
        let value = layout.value + firstToken * stride + column
        if isa == .avx2 {
            kiln_avx2_attention_head(
                query, key, value, stride, layout.output + firstToken * layout.outputRowStride + column, layout.outputRowStride,
                length, headSize, scale, mask, maskRowStride, scores)
            return
        }
        for row in 0..<length {
            let scoreRow = scores + row * length
            let queryRow = query + row * stride
            for keyIndex in 0..<length {
                scoreRow[keyIndex] = AttentionKernel.dot(queryRow, key + keyIndex * stride, headSize) * scale
            }
            if let mask {
                let maskRow = mask + row * maskRowStride
                for keyIndex in 0..<length { scoreRow[keyIndex] += maskRow[keyIndex] }
            }
            SoftmaxKernel.softmaxRow(scoreRow, scoreRow, length)
        }
        let output = layout.output + firstToken * layout.outputRowStride + column
        var chunk = 0
        while chunk < headSize {
            let lanes = min(16, headSize - chunk)
            for row in 0..<length {
                let probabilities = scores + row * length
                var accumulator = VectorMath.Vector()
                if lanes == 16 {
                    for keyIndex in 0..<length {
                        accumulator += probabilities[keyIndex] * VectorMath.load(value + keyIndex * stride + chunk)
                    }
                    VectorMath.store(accumulator, output + row * layout.outputRowStride + chunk)
                } else {
                    for keyIndex in 0..<length {
                        accumulator += probabilities[keyIndex] * VectorMath.loadPartial(value + keyIndex * stride + chunk, count: lanes, fill: 0)
                    }
                    VectorMath.storePartial(accumulator, output + row * layout.outputRowStride + chunk, count: lanes)
                }
            }
            chunk += 16
        }
    }

    @inline(__always)
    static func dot(_ first: UnsafePointer<Float>, _ second: UnsafePointer<Float>, _ count: Int) -> Float {
        var accumulator = VectorMath.Vector()
        var index = 0
        while index + 16 <= count {
            accumulator += VectorMath.load(first + index) * VectorMath.load(second + index)
            index += 16
        }
        var sum = accumulator.sum()
        while index < count {
            sum += first[index] * second[index]
            index += 1
        }
        return sum
    }
}
