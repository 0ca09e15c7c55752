import Foundation
import KilnCore
import KilnRuntime
import KilnText

/// The parts of a model card (`model.json`) that decoding and scoring need.
public struct NLUModelCard: Sendable {
    public var intentLabels: [String]
    public var slotLabels: [String]
    /// Multi-label intents (sigmoid + threshold, scored by micro-F1) instead of one softmax intent.
    public var multiLabel: Bool
    public var intentThreshold: Float
    public var slotScheme: SlotDecoder.Scheme
    /// Which tokens carry the slot tags (the card's `slot_positions`).
    public var slotSegmentation: SlotDecoder.WordSegmentation

    /// Reads `model.json`.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw KilnError.io("cannot read model card \(url.path): \(error.localizedDescription)") }
        try self.init(json: data, source: url.path)
    }

    /// Parses a model card's JSON (e.g. the copy a plan header carries).
    public init(json: Data, source: String = "model.json") throws {
        guard let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any],
            let intents = object["intent_labels"] as? [String]
        else { throw KilnError.invalidInput("\(source) is not a model card with intent_labels") }
        intentLabels = intents
        slotLabels = object["slot_labels"] as? [String] ?? []
        multiLabel = object["multi_label"] as? Bool ?? false
        intentThreshold = Float(object["intent_threshold"] as? Double ?? 0.5)
        slotScheme = (object["slot_scheme"] as? String)?.uppercased() == "BIOES" ? .bioes : .bio
        let positions = object["slot_positions"] as? String
        guard let segmentation = SlotDecoder.WordSegmentation(slotPositions: positions) else {
            throw KilnError.invalidInput(
                "\(source): slot_positions '\(positions ?? "")' is not one of \(SlotDecoder.WordSegmentation.knownSlotPositions)")
        }
        slotSegmentation = segmentation
    }
}

/// What a model produced for one utterance.
public struct NLUOutput: Sendable {
    public var intentLogits: [Float]
    /// `[tokens, slotLabels]` for the utterance's own tokens (padding removed); empty without a slot head.
    public var slotLogits: [Float]
    public var encoding: Encoding
}

/// Tokenizes utterances, runs them through an engine in padded batches, and splits the outputs
/// back per utterance.
public struct NLURunner: Sendable {
    public let tokenizer: WordPieceTokenizer
    public let batchSize: Int
    public let maxLength: Int

    public init(tokenizer: WordPieceTokenizer, batchSize: Int = 16, maxLength: Int = 128) {
        self.tokenizer = tokenizer
        self.batchSize = batchSize
        self.maxLength = maxLength
    }

    /// The engine inputs for `texts`, padded to the longest, plus the encodings.
    public func inputs(for texts: [String], signature: [ValueInfo]) throws -> (inputs: [String: Tensor], encodings: [Encoding]) {
        let encodings = try texts.map { try tokenizer.encode($0, maxLength: maxLength) }
        let length = max(encodings.map(\.count).max() ?? 1, 1)
        func tensor(_ values: (Encoding) -> [Int32]) throws -> Tensor {
            var flat: [Int64] = []
            flat.reserveCapacity(encodings.count * length)
            for encoding in encodings {
                let row = values(encoding)
                flat += row.map(Int64.init) + [Int64](repeating: 0, count: length - row.count)
            }
            return try Tensor(ints: flat, shape: [encodings.count, length])
        }
        var inputs: [String: Tensor] = [:]
        for input in signature {
            switch input.name {
            case "input_ids": inputs[input.name] = try tensor(\.ids)
            case "attention_mask": inputs[input.name] = try tensor(\.attentionMask)
            case "token_type_ids": inputs[input.name] = try tensor(\.typeIds)
            default: throw KilnError.invalidInput("the model takes '\(input.name)', which an NLU runner cannot fill (expected input_ids, attention_mask, token_type_ids)")
            }
        }
        return (inputs, encodings)
    }

    /// Runs every text; `progress(done, total)` after each batch.
    public func run(_ engine: any InferenceEngine, texts: [String], progress: (Int, Int) -> Void = { _, _ in }) throws -> [NLUOutput] {
        var outputs: [NLUOutput] = []
        outputs.reserveCapacity(texts.count)
        for start in stride(from: 0, to: texts.count, by: batchSize) {
            let batch = Array(texts[start..<min(start + batchSize, texts.count)])
            let (inputs, encodings) = try self.inputs(for: batch, signature: engine.inputSignature)
            let results = try engine.run(inputs)
            let (intent, slot) = try Self.heads(results)
            let length = inputs.values.first?.shape[1] ?? 0
            for (row, encoding) in encodings.enumerated() {
                let intentWidth = intent.shape.last ?? 0
                let intentValues = Array(intent.floats[(row * intentWidth)..<((row + 1) * intentWidth)])
                var slotValues: [Float] = []
                if let slot {
                    let labels = slot.shape[2]
                    let base = row * length * labels
                    slotValues = Array(slot.floats[base..<(base + encoding.count * labels)])
                }
                outputs.append(NLUOutput(intentLogits: intentValues, slotLogits: slotValues, encoding: encoding))
            }
            progress(outputs.count, texts.count)
        }
        return outputs
    }

    /// The intent head (`[B, intents]`) and slot head (`[B, S, tags]`) among an engine's outputs.
    static func heads(_ results: [String: Tensor]) throws -> (intent: Tensor, slot: Tensor?) {
        let intent = results["intent_logits"] ?? results.values.first { $0.rank == 2 }
        let slot = results["slot_logits"] ?? results.values.first { $0.rank == 3 }
        guard let intent else { throw KilnError.invalidModel("the model has no [batch, intents] output") }
        return (intent, slot)
    }
}
