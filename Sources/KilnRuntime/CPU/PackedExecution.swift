import KilnCore
import KilnKernels

/// Thrown inside a packed run when a step meets something the analysis could not rule out
/// (a too-short sequence for a first-token gather, an attention call the packed kernel cannot
/// take): the engine then runs the batch padded instead.
struct PackedFallback: Error {}

extension PackingPlan {
    /// The ragged sample the build-time check runs: two sequences of 6 and 3 tokens.
    static let sampleLengths = [6, 3]
    static let sampleSequence = 6

    /// Runs the engine padded on a small ragged sample and checks what the skipped subgraphs
    /// compute (see ``PackingPlan``): every attention mask is 0 for real keys and ≤ -1e4 for
    /// padding keys on real query rows; every position index is `c + k·s` on real tokens
    /// (k ∈ {0, 1}). Sets each position gather's `c` and `k`.
    mutating func verify(steps: [EngineStep], program: EngineProgram, graph: Graph, context: ExecutionContext) throws {
        let sample = PackedBatch(lengths: Self.sampleLengths, sequence: Self.sampleSequence)
        var feeds: [String: Tensor] = [:]
        for input in graph.inputs { feeds[input.name] = try Self.sampleInput(input, maskInput: maskInput, sample: sample) }
        var found: [Int: Tensor] = [:]
        _ = try program.run(feeds) { position, operands in
            switch roles[position] {
            case .attention: found[position] = operands.count > 3 ? operands[3] : nil
            case .positions: found[position] = operands[1]
            default: break
            }
            return try steps[position].run(operands, opset: graph.opset, context: context)
        } release: { _ in }
        for (position, role) in roles.enumerated() {
            let name = steps[position].node.name
            switch role {
            case .attention:
                guard case .attention(let heads, _, _, _) = steps[position].kernel, let mask = found[position],
                      Self.isKeyPaddingMask(mask, heads: heads, sample: sample)
                else { throw PackingRefusal(reason: "the mask of attention '\(name)' is not a key-padding mask (0 for tokens, <= -1e4 for padding)") }
            case .positions:
                guard let indices = found[position], let (offset, step) = Self.positionPattern(indices, sample: sample) else {
                    throw PackingRefusal(reason: "the indices of gather '\(name)' are not c + s (positions) or c (segment) per token")
                }
                roles[position] = .positions(offset: offset, step: step)
            default: break
            }
        }
    }

    /// Sample values: the ragged 0/1 mask, segment 0, positions `0..<S`, and word ids that are
    /// no arithmetic progression (so word-id gathers can't pass for positions).
    private static func sampleInput(_ input: ValueInfo, maskInput: String, sample: PackedBatch) throws -> Tensor {
        let shape = [sample.batch, sample.sequence]
        let name = input.name.lowercased()
        var values = [Int64](repeating: 0, count: sample.batch * sample.sequence)
        for row in 0..<sample.batch {
            for column in 0..<(sample.offsets[row + 1] - sample.offsets[row]) {
                let index = row * sample.sequence + column
                if input.name == maskInput {
                    values[index] = 1
                } else if name.contains("position") {
                    values[index] = Int64(column)
                } else if !name.contains("type") {
                    values[index] = [7, 12, 5, 19, 9, 14][(column + 2 * row) % 6]
                }
            }
        }
        return try Tensor(ints: values, shape: shape, dtype: input.dtype ?? .int64)
    }

    private static func isKeyPaddingMask(_ mask: Tensor, heads: Int, sample: PackedBatch) -> Bool {
        guard mask.dtype == .float32, let strides = FastKernels.maskStrides(mask.shape, batch: sample.batch, heads: heads, sequence: sample.sequence)
        else { return false }
        let values = mask.floats
        for row in 0..<sample.batch {
            let length = sample.offsets[row + 1] - sample.offsets[row]
            for head in 0..<heads {
                for query in 0..<length {
                    let base = row * strides.batch + head * strides.head + query * strides.row
                    for key in 0..<sample.sequence {
                        let value = values[base + key]
                        if key < length ? value != 0 : !(value <= -1e4) { return false }
                    }
                }
            }
        }
        return true
    }

    private static func positionPattern(_ indices: Tensor, sample: PackedBatch) -> (Int64, Int64)? {
        guard indices.dtype.isInteger, indices.rank == 2, indices.shape[1] == sample.sequence,
              indices.shape[0] == 1 || indices.shape[0] == sample.batch
        else { return nil }
        let values = indices.ints
        let offset = values[0]
        let step = values[1] - offset
        guard step == 0 || step == 1 else { return nil }
        for row in 0..<sample.batch {
            let base = indices.shape[0] == 1 ? 0 : row * sample.sequence
            for column in 0..<(sample.offsets[row + 1] - sample.offsets[row]) where values[base + column] != offset + step * Int64(column) {
                return nil
            }
        }
        return (offset, step)
    }

    /// Runs `inputs` (a padded batch) packed; nil when a step needs the padded run instead.
    /// Per-token outputs come back `[B, S, ...]` with zeros at padding positions.
    func run(
        _ inputs: [String: Tensor], batch: PackedBatch, steps: [EngineStep], program: EngineProgram, opset: Int,
        context: ExecutionContext
    ) throws -> [String: Tensor]? {
        var feeds: [String: Tensor] = [:]
        for (name, tensor) in inputs {
            feeds[name] = name == maskInput
                ? try Tensor(ints: [Int64](repeating: 1, count: batch.total), shape: [1, batch.total], dtype: tensor.dtype)
                : try batch.pack(tensor)
        }
        let outputs: [String: Tensor]
        do {
            outputs = try program.run(feeds) { position, operands in
                try runStep(position, operands, batch: batch, steps: steps, opset: opset, context: context)
            } release: { context.buffers.give($0) }
        } catch is PackedFallback {
            return nil
        }
        var results: [String: Tensor] = [:]
        for (name, tensor) in outputs { results[name] = tokenOutputs.contains(name) ? try batch.scatter(tensor) : tensor }
        return results
    }

    private func runStep(
        _ position: Int, _ operands: [Tensor?], batch: PackedBatch, steps: [EngineStep], opset: Int, context: ExecutionContext
    ) throws -> [Tensor] {
        let step = steps[position]
        switch roles[position] {
        case .normal: return try step.run(operands, opset: opset, context: context)
        case .skip: return []
        case .attention:
            guard case .attention(let heads, let scale, _, let packedQKV) = step.kernel,
                  let context = try FastKernels.packedAttention(
                    numHeads: heads, scale: scale, packedQKV: packedQKV, operands, sequenceOffsets: batch.offsets, context: context)
            else { throw PackedFallback() }
            return context
        case .firstToken(let index):
            guard let input = operands[0], let rows = try batch.token(index, of: input) else { throw PackedFallback() }
            return [rows]
        case .positions(let offset, let stride):
            var operands = operands
            operands[1] = batch.positions(offset: offset, step: stride)
            return try step.run(operands, opset: opset, context: context)
        }
    }
}
