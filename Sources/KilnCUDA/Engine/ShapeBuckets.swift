// ShapeBuckets: pads a request's [batch, sequence] inputs up to a bucket and slices the outputs
// back, so a CUDA engine captures one graph per bucket instead of one per exact request shape.
// Why safe: only graphs whose inputs are all [batch, sequence] integer tensors including an
// attention mask are bucketed; padded tokens get mask 0 (masked out of every attention row, as a
// tokenizer's own padding is) and id 0, padded rows are whole masked rows, and every output row
// or token that padding added is sliced off. Outputs of the real tokens are therefore the same
// function of the real inputs; only fp16 rounding order may differ.
import KilnCore

/// The bucket policy and the pad / slice steps of one graph's signature.
public struct ShapeBuckets: Sendable {
    /// Input names, all [batch, sequence] integer tensors; `maskInput` is the attention mask.
    let inputNames: [String]
    let maskInput: String
    /// Per output: whether axis 1 is the sequence axis (sliced back like axis 0, the batch).
    let outputSequenceAxis: [String: Bool]

    /// nil when the graph's inputs are not all rank-2 integer tensors with one mask among them.
    public init?(graph: Graph) {
        guard !graph.inputs.isEmpty,
              graph.inputs.allSatisfy({ ($0.dtype?.isInteger ?? false) && $0.shape?.count == 2 }),
              let mask = graph.inputs.first(where: { $0.name.lowercased().contains("mask") })
        else { return nil }
        inputNames = graph.inputs.map(\.name)
        maskInput = mask.name
        let sequenceDimension = mask.shape?[1]
        var axes: [String: Bool] = [:]
        for output in graph.outputs {
            let shape = output.shape ?? []
            guard shape.count >= 1, shape[0].fixedSize == nil else { return nil }
            // Axis 1 follows the sequence when it is declared with the mask's symbolic dimension
            // (or any symbolic one when the mask's is fixed).
            let second = shape.count >= 2 ? shape[1] : nil
            axes[output.name] = second.map { $0.fixedSize == nil && ($0 == sequenceDimension || sequenceDimension?.fixedSize != nil) } ?? false
        }
        outputSequenceAxis = axes
    }

    /// Batch buckets: 1, 2, 4, 8, then multiples of 8 (at most 12.5% padding past 8 rows).
    public static func batchBucket(_ batch: Int, max maximum: Int) -> Int {
        let bucket = batch <= 8 ? (batch <= 1 ? 1 : 1 << (Int.bitWidth - (batch - 1).leadingZeroBitCount)) : (batch + 7) / 8 * 8
        return Swift.max(batch, Swift.min(bucket, maximum))
    }

    /// Sequence buckets: multiples of 16, never past `maximum` (and never below the request).
    public static func sequenceBucket(_ sequence: Int, max maximum: Int) -> Int {
        Swift.max(sequence, Swift.min((sequence + 15) / 16 * 16, maximum))
    }

    /// Every batch bucket up to `batch` (inclusive of the bucket `batch` falls in).
    public static func batchBuckets(upTo batch: Int) -> [Int] {
        var result: [Int] = [], b = 1
        while b <= batch {
            let bucket = batchBucket(b, max: batch)
            if result.last != bucket { result.append(bucket) }
            b = bucket + 1
        }
        return result
    }

    /// Every sequence bucket up to `sequence`.
    public static func sequenceBuckets(upTo sequence: Int) -> [Int] {
        var result: [Int] = [], s = 1
        while s <= sequence {
            let bucket = sequenceBucket(s, max: sequence)
            result.append(bucket)
            s = bucket + 1
        }
        return result
    }

    /// `inputs` padded to their bucket, and the request's own (batch, sequence).
    public func pad(_ inputs: [String: Tensor], maxBatch: Int, maxSequence: Int) throws -> (padded: [String: Tensor], original: (batch: Int, sequence: Int)) {
        guard let mask = inputs[maskInput], mask.rank == 2 else { return (inputs, (0, 0)) }
        let (batch, sequence) = (mask.shape[0], mask.shape[1])
        let target = (Self.batchBucket(batch, max: maxBatch), Self.sequenceBucket(sequence, max: maxSequence))
        guard target != (batch, sequence) else { return (inputs, (batch, sequence)) }
        var padded = inputs
        for name in inputNames {
            guard let tensor = inputs[name] else { continue }
            guard tensor.shape == [batch, sequence] else {
                throw KilnError.invalidInput("input \(name) has shape \(tensor.shape); expected [\(batch), \(sequence)] like \(maskInput)")
            }
            var values = [Int64](repeating: 0, count: target.0 * target.1)
            let source = tensor.ints
            for row in 0..<batch {
                for column in 0..<sequence { values[row * target.1 + column] = source[row * sequence + column] }
            }
            padded[name] = try Tensor(ints: values, shape: [target.0, target.1], dtype: tensor.dtype)
        }
        return (padded, (batch, sequence))
    }

    /// `outputs` with the padded rows (axis 0) and tokens (axis 1 of sequence outputs) removed.
    public func slice(_ outputs: [String: Tensor], to original: (batch: Int, sequence: Int)) throws -> [String: Tensor] {
        guard original.batch > 0 else { return outputs }
        var result = outputs
        for (name, tensor) in outputs {
            let keepSequence = outputSequenceAxis[name] ?? false
            var shape = tensor.shape
            guard shape.count >= 1, shape[0] >= original.batch else { continue }
            shape[0] = original.batch
            if keepSequence, shape.count >= 2, shape[1] >= original.sequence { shape[1] = original.sequence }
            guard shape != tensor.shape else { continue }
            let inner = shape.count > 2 ? shape[2...].reduce(1, *) : 1
            let fullSequence = tensor.shape.count >= 2 ? tensor.shape[1] : 1
            let keptSequence = shape.count >= 2 ? shape[1] : 1
            let source = tensor.floats
            var values = [Float]()
            values.reserveCapacity(Tensor.elementCount(of: shape))
            for row in 0..<shape[0] {
                let start = row * fullSequence * inner
                values.append(contentsOf: source[start..<(start + keptSequence * inner)])
            }
            result[name] = try Tensor(floats: values, shape: shape)
        }
        return result
    }
}
