import KilnCore

/// The roll-out comparison key for raw engine outputs, used on the v2 infer path (which has no
/// decoded NLU answer to compare): for every row, the top intent's label and every token's slot tag.
///
/// Labels are looked up in each version's own model card, so a candidate whose label order changed
/// disagrees with the current version even when its logits are identical (the "wrong labels" bad
/// candidate). Both versions see the same token ids, so position-by-position comparison is fair.
enum OutputAgreement {
    /// The signature of one request's outputs.
    /// - Parameters:
    ///   - outputs: the engine outputs for the request's rows (`intent_logits` [rows, intents],
    ///     optionally `slot_logits` [rows, tokens, tags]).
    ///   - card: the card of the version that produced them.
    /// - Returns: a string equal for two versions exactly when they agree on every row.
    static func signature(of outputs: [String: Tensor], card: ModelCard) -> String {
        var parts: [String] = []
        if let intents = outputs[NLUResultDecoder.intentLogitsName] {
            parts.append("intents:" + argmaxLabels(intents, labels: card.intentLabels).joined(separator: ","))
        }
        if let slots = outputs[NLUResultDecoder.slotLogitsName] {
            parts.append("slots:" + argmaxLabels(slots, labels: card.slotLabels).joined(separator: ","))
        }
        return parts.joined(separator: "|")
    }

    /// The label of the largest value along the last axis, for every position of the other axes.
    /// An index with no label (card and engine disagree) is written as `#index`.
    static func argmaxLabels(_ tensor: Tensor, labels: [String]) -> [String] {
        guard let width = tensor.shape.last, width > 0 else { return [] }
        let values = tensor.floats
        var result: [String] = []
        result.reserveCapacity(values.count / width)
        var start = 0
        while start + width <= values.count {
            var best = start
            for index in start..<(start + width) where values[index] > values[best] { best = index }
            let position = best - start
            result.append(position < labels.count ? labels[position] : "#\(position)")
            start += width
        }
        return result
    }
}
