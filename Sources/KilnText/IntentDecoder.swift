import Foundation

/// Why NLU decoding could not run: the model's outputs don't fit the labels or the encoding.
public enum NLUDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The model produced a different number of scores than there are labels.
    case labelCountMismatch(scores: Int, labels: Int, head: String)
    /// The slot scores don't cover the encoding's tokens.
    case tokenCountMismatch(tags: Int, tokens: Int)

    public var description: String {
        switch self {
        case .labelCountMismatch(let scores, let labels, let head):
            return "the \(head) head produced \(scores) scores per item but there are \(labels) \(head) labels: "
                + "use the label file the model was trained with"
        case .tokenCountMismatch(let tags, let tokens):
            return "got slot tags for \(tags) tokens but the encoding has \(tokens): pass the encoding the "
                + "model was run on (same truncation and padding)"
        }
    }
}

/// One predicted intent and its probability.
public struct IntentPrediction: Sendable, Equatable {
    /// The intent's name.
    public var label: String
    /// The intent's index in the label list (and in the logits).
    public var index: Int
    /// Probability: softmax for single-label models, sigmoid for multi-label ones.
    public var score: Float

    /// Creates a prediction.
    /// - Parameters:
    ///   - label: the intent's name.
    ///   - index: its index in the label list.
    ///   - score: its probability.
    public init(label: String, index: Int, score: Float) {
        self.label = label
        self.index = index
        self.score = score
    }
}

/// Turns intent logits into ranked intents.
public struct IntentDecoder: Sendable, Equatable {
    /// How logits become probabilities.
    public enum Activation: Sendable, Equatable {
        /// One intent per utterance: softmax over all logits.
        case softmax
        /// Any number of intents (e.g. NLU++): an independent sigmoid per intent; intents scoring at
        /// least `threshold` are predicted.
        case sigmoid(threshold: Float)
    }

    /// Intent names, in logit order.
    public var labels: [String]
    /// How logits become probabilities.
    public var activation: Activation

    /// Creates an intent decoder.
    /// - Parameters:
    ///   - labels: intent names, in logit order.
    ///   - activation: `.softmax` for single-label models, `.sigmoid(threshold:)` for multi-label ones.
    public init(labels: [String], activation: Activation = .softmax) {
        self.labels = labels
        self.activation = activation
    }

    /// Ranks intents by probability.
    /// - Parameters:
    ///   - logits: the intent head's output for one utterance, one value per label.
    ///   - topK: the most intents to return.
    /// - Returns: for softmax, the `topK` most probable intents; for sigmoid, the intents at or above the
    ///   threshold (at most `topK`), most probable first. Ties keep label order.
    /// - Throws: `NLUDecodingError.labelCountMismatch` if there isn't one logit per label.
    public func decode(logits: [Float], topK: Int = 5) throws(NLUDecodingError) -> [IntentPrediction] {
        guard logits.count == labels.count else {
            throw .labelCountMismatch(scores: logits.count, labels: labels.count, head: "intent")
        }
        let probabilities: [Float]
        switch activation {
        case .softmax: probabilities = Self.softmax(logits)
        case .sigmoid: probabilities = logits.map(Self.sigmoid)
        }
        var ranked = probabilities.indices.map { IntentPrediction(label: labels[$0], index: $0, score: probabilities[$0]) }
        if case .sigmoid(let threshold) = activation {
            ranked = ranked.filter { $0.score >= threshold }
        }
        ranked.sort { $0.score != $1.score ? $0.score > $1.score : $0.index < $1.index }
        return Array(ranked.prefix(max(0, topK)))
    }

    /// Numerically stable softmax.
    /// - Parameter logits: raw scores.
    /// - Returns: probabilities summing to 1 (empty for empty input).
    public static func softmax(_ logits: [Float]) -> [Float] {
        guard let maximum = logits.max() else { return [] }
        let exponentials = logits.map { Foundation.exp($0 - maximum) }
        let total = exponentials.reduce(0, +)
        return exponentials.map { $0 / total }
    }

    /// The logistic function, stable for large negative inputs.
    /// - Parameter logit: a raw score.
    /// - Returns: 1 / (1 + e^-logit).
    public static func sigmoid(_ logit: Float) -> Float {
        if logit >= 0 { return 1 / (1 + Foundation.exp(-logit)) }
        let exponential = Foundation.exp(logit)
        return exponential / (1 + exponential)
    }
}
