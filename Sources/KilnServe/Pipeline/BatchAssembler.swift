import KilnCore
import KilnRuntime

/// The infer stage: turns a batch of ``EngineInput``s into one engine call and the call's outputs
/// back into one result per input.
///
/// Rows are padded to the longest sequence in the batch (`input_ids` with the pad id, masks with
/// 0), so short utterances only pay for the longest one they share a batch with. Outputs are split
/// by row; outputs with a sequence axis (declared like `input_ids`' second axis) are cut back to
/// each request's own length, so a caller never sees another request's padding.
public struct BatchAssembler: Sendable {
    /// The id used to pad `input_ids`.
    public var padId: Int64
    /// Names of outputs whose axis 1 is the sequence axis.
    public var sequenceOutputs: Set<String>

    /// Creates an assembler for a model.
    /// - Parameters:
    ///   - padId: the tokenizer's pad id.
    ///   - inputSignature: the engine's inputs (to find the sequence axis' symbol).
    ///   - outputSignature: the engine's outputs.
    public init(padId: Int64, inputSignature: [ValueInfo], outputSignature: [ValueInfo]) {
        self.padId = padId
        let inputIds = inputSignature.first { $0.name == EngineInput.inputIdsName }
        let sequenceSymbol: Dimension? = inputIds?.shape.flatMap { $0.count > 1 ? $0[1] : nil }
        var sequenceOutputs: Set<String> = []
        for output in outputSignature {
            guard let shape = output.shape, shape.count >= 3 else { continue }
            if let sequenceSymbol, case .symbolic(let name) = sequenceSymbol, !name.isEmpty {
                if shape[1] == sequenceSymbol { sequenceOutputs.insert(output.name) }
            } else if shape[1].fixedSize == nil {
                sequenceOutputs.insert(output.name)
            }
        }
        self.sequenceOutputs = sequenceOutputs
    }

    /// Runs a batch.
    /// - Parameters:
    ///   - inputs: the requests, in order.
    ///   - engine: the instance to run on.
    /// - Returns: one output dictionary per request, each with batch axis = its rows.
    public func run(_ inputs: [EngineInput], on engine: any InferenceEngine) throws -> [[String: Tensor]] {
        let length = inputs.map(\.length).max() ?? 0
        let rows = inputs.reduce(0) { $0 + $1.rows }
        var ids = [Int64](repeating: padId, count: rows * length)
        var mask = [Int64](repeating: 0, count: rows * length)
        var types = [Int64](repeating: 0, count: rows * length)
        var row = 0
        for input in inputs {
            for r in 0..<input.rows {
                let source = r * input.length
                let target = (row + r) * length
                for t in 0..<input.length {
                    ids[target + t] = input.inputIds[source + t]
                    mask[target + t] = input.attentionMask[source + t]
                    types[target + t] = input.tokenTypeIds[source + t]
                }
            }
            row += input.rows
        }
        let outputs = try engine.run([
            EngineInput.inputIdsName: try Tensor(ints: ids, shape: [rows, length]),
            EngineInput.attentionMaskName: try Tensor(ints: mask, shape: [rows, length]),
            EngineInput.tokenTypeIdsName: try Tensor(ints: types, shape: [rows, length]),
        ])
        return try split(outputs, inputs: inputs, paddedLength: length)
    }

    private func split(_ outputs: [String: Tensor], inputs: [EngineInput], paddedLength: Int) throws -> [[String: Tensor]] {
        var results = [[String: Tensor]](repeating: [:], count: inputs.count)
        let rows = inputs.reduce(0) { $0 + $1.rows }
        for (name, tensor) in outputs {
            // An engine that answers with the wrong batch size must fail the batch, not crash the server.
            if tensor.rank >= 1 && tensor.shape[0] != rows {
                throw ServeError.internalError("the engine's output '\(name)' has \(tensor.shape[0]) rows for a batch of \(rows)")
            }
            guard tensor.rank >= 1 else {
                for index in results.indices { results[index][name] = tensor }
                continue
            }
            let values = tensor.floats
            let rowSize = tensor.count / max(1, tensor.shape[0])
            let isSequence = sequenceOutputs.contains(name) && tensor.rank >= 3 && tensor.shape[1] == paddedLength
            let tokenSize = isSequence ? rowSize / max(1, paddedLength) : 0
            var row = 0
            for (index, input) in inputs.enumerated() {
                var slice: [Float] = []
                var shape = tensor.shape
                shape[0] = input.rows
                if isSequence {
                    shape[1] = input.length
                    slice.reserveCapacity(input.rows * input.length * tokenSize)
                    for r in 0..<input.rows {
                        let start = (row + r) * rowSize
                        slice.append(contentsOf: values[start..<(start + input.length * tokenSize)])
                    }
                } else {
                    slice = Array(values[(row * rowSize)..<((row + input.rows) * rowSize)])
                }
                results[index][name] = try Tensor(floats: slice, shape: shape, dtype: tensor.dtype.isFloatingPoint ? tensor.dtype : .float32)
                row += input.rows
            }
        }
        return results
    }
}
