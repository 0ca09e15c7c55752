import KilnCore
import KilnText

/// The decode stage: the engine's `intent_logits` and `slot_logits` for one text into intents and
/// slot spans, with KilnText's decoders.
public struct NLUResultDecoder: Sendable {
    /// Intent logits to ranked intents.
    public let intentDecoder: IntentDecoder
    /// Slot logits to spans.
    public let slotDecoder: SlotDecoder

    /// Output names the decoder reads.
    public static let intentLogitsName = "intent_logits"
    public static let slotLogitsName = "slot_logits"

    /// Creates the stage from a model card.
    public init(card: ModelCard) {
        let activation: IntentDecoder.Activation =
            card.multiLabel == true ? .sigmoid(threshold: card.intentThreshold ?? 0.5) : .softmax
        intentDecoder = IntentDecoder(labels: card.intentLabels, activation: activation)
        let scheme: SlotDecoder.Scheme = card.slotScheme?.uppercased() == "BIOES" ? .bioes : .bio
        // ModelCard.load rejects unknown slot_positions, so the fallback is never taken for a loaded card.
        let segmentation = SlotDecoder.WordSegmentation(slotPositions: card.slotPositions) ?? .whitespace
        slotDecoder = SlotDecoder(labels: card.slotLabels, scheme: scheme, segmentation: segmentation)
    }

    /// The decoded intents and slots of one text.
    public struct Decoded: Sendable, Equatable {
        public var intents: [ParseResult.Intent]
        public var slots: [ParseResult.Slot]
    }

    /// Decodes one text's outputs.
    /// - Parameters:
    ///   - outputs: the engine outputs for this text (batch axis 1).
    ///   - encoded: the text and the encoding the engine ran on.
    ///   - topK: the most intents to return.
    /// - Returns: intents and slots.
    /// - Throws: ``ServeError/internalError(_:)`` when the outputs don't fit the model card.
    public func decode(_ outputs: [String: Tensor], encoded: TextEncoder.Encoded, topK: Int) throws -> Decoded {
        guard let intentLogits = outputs[Self.intentLogitsName] else {
            throw ServeError.internalError("the model has no '\(Self.intentLogitsName)' output")
        }
        do {
            let intents = try intentDecoder.decode(logits: intentLogits.floats, topK: topK)
                .map { ParseResult.Intent(name: $0.label, confidence: $0.score) }
            var slots: [ParseResult.Slot] = []
            if let slotLogits = outputs[Self.slotLogitsName], !slotDecoder.labels.isEmpty {
                slots = try slotDecoder.decode(logits: slotLogits.floats, encoding: encoded.encoding, text: encoded.text)
                    .map { ParseResult.Slot(name: $0.label, value: $0.value, start: $0.start, end: $0.end, confidence: $0.score ?? 1) }
            }
            return Decoded(intents: intents, slots: slots)
        } catch {
            throw ServeError.internalError("the model's outputs do not match its card: \(error)")
        }
    }
}
