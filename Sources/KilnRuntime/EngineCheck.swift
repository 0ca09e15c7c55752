import KilnCore

/// Compares two engines on the same synthetic batch: what `kiln build` uses to prove an
/// optimized plan still computes what the model computes.
public enum EngineCheck {
    /// Max-abs difference over every floating output for a deterministic batch of `batch`
    /// sequences of `sequence` tokens (one row padded), with token ids below `vocabularyLimit`.
    public static func maxAbsDifference(
        engine: any InferenceEngine, reference: any InferenceEngine, batch: Int = 2, sequence: Int = 9,
        vocabularyLimit: Int64 = 100
    ) throws -> Float {
        let inputs = try sampleInputs(for: reference.inputSignature, batch: batch, sequence: sequence, vocabularyLimit: vocabularyLimit)
        let expected = try reference.run(inputs)
        let actual = try engine.run(inputs)
        var worst: Float = 0
        for (name, reference) in expected where reference.dtype.isFloatingPoint {
            guard let tensor = actual[name], tensor.shape == reference.shape else { return .infinity }
            for (a, b) in zip(tensor.floats, reference.floats) where !(a.isNaN && b.isNaN) {
                let difference = abs(a - b)
                worst = difference.isNaN ? .infinity : max(worst, difference)
            }
        }
        return worst
    }

    /// BERT-style inputs: `*_ids` get deterministic token ids (type ids 0), `*mask*` gets ones
    /// with the last row padded after half its length; other int inputs get zeros.
    public static func sampleInputs(for signature: [ValueInfo], batch: Int, sequence: Int, vocabularyLimit: Int64) throws -> [String: Tensor] {
        var inputs: [String: Tensor] = [:]
        for info in signature {
            let shape = (info.shape ?? [.symbolic("batch"), .symbolic("seq")]).enumerated().map { axis, dimension in
                dimension.fixedSize ?? (axis == 0 ? batch : sequence)
            }
            let count = Tensor.elementCount(of: shape)
            let columns = shape.last ?? 1
            let values: [Int64]
            if info.name.contains("mask") {
                values = (0..<count).map { index in
                    let row = index / columns, column = index % columns
                    return row == batch - 1 && column > columns / 2 ? 0 : 1
                }
            } else if info.name.contains("type") {
                values = [Int64](repeating: 0, count: count)
            } else {
                values = (0..<count).map { Int64(($0 * 7 + 3) % Int(max(vocabularyLimit, 1))) }
            }
            switch info.dtype ?? .int64 {
            case let dtype where dtype.isFloatingPoint:
                inputs[info.name] = try Tensor(floats: values.map { Float($0) / Float(vocabularyLimit) }, shape: shape, dtype: dtype)
            case .bool:
                inputs[info.name] = try Tensor(bools: values.map { $0 != 0 }, shape: shape)
            case let dtype:
                inputs[info.name] = try Tensor(ints: values, shape: shape, dtype: dtype)
            }
        }
        return inputs
    }
}
