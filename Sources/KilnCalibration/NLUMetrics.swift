import Foundation
import KilnText

/// What one model predicted for one utterance.
public struct NLUPrediction: Sendable, Equatable {
    public var intents: Set<String>
    public var slots: Set<GoldSlot>
    /// The words the model tagged (empty when unknown): gold spans are projected onto them before
    /// scoring, as the training pipeline scores.
    public var words: [SlotDecoder.WordRange]

    public init(intents: Set<String>, slots: Set<GoldSlot>, words: [SlotDecoder.WordRange] = []) {
        self.intents = intents
        self.slots = slots
        self.words = words
    }
}

/// Task scores of a set of predictions against gold labels, in percent.
public struct NLUScores: Sendable, Equatable, Codable {
    /// Intent accuracy (single-label) or micro-F1 (multi-label).
    public var intent: Double
    /// Entity-level slot F1 (type and whole span must match; conlleval style over the words the model
    /// tags, as training/evaluate.py scores).
    public var slotF1: Double
    /// Utterances with every intent and every slot right.
    public var sentenceAccuracy: Double
    public var count: Int
    /// `accuracy` or `micro-F1`.
    public var intentMetric: String
}

/// Decoding of model outputs and the scores `kiln verify` prints.
public struct NLUScorer: Sendable {
    public let card: NLUModelCard
    private let intentDecoder: IntentDecoder
    private let slotDecoder: SlotDecoder

    public init(card: NLUModelCard) {
        self.card = card
        intentDecoder = IntentDecoder(labels: card.intentLabels, activation: card.multiLabel ? .sigmoid(threshold: card.intentThreshold) : .softmax)
        slotDecoder = SlotDecoder(labels: card.slotLabels, scheme: card.slotScheme, segmentation: card.slotSegmentation)
    }

    /// Decodes one output: the top intent (or every intent over the threshold) and the slot spans.
    ///
    /// A single-label model's combined intent (ATIS `a#b`, one class in training) is split into its
    /// parts, as the dataset reader splits the gold label, so an exact match still means the class.
    public func predict(_ output: NLUOutput, text: String) throws -> NLUPrediction {
        let intents = try intentDecoder.decode(logits: output.intentLogits, topK: card.multiLabel ? card.intentLabels.count : 1)
        let names = card.multiLabel ? intents.map(\.label) : intents.flatMap { $0.label.split(separator: "#").map(String.init) }
        var slots = Set<GoldSlot>()
        var words: [SlotDecoder.WordRange] = []
        if !card.slotLabels.isEmpty, !output.slotLogits.isEmpty {
            for span in try slotDecoder.decode(logits: output.slotLogits, encoding: output.encoding, text: text) {
                slots.insert(GoldSlot(label: span.label, start: span.start, end: span.end))
            }
            words = slotDecoder.wordRanges(of: output.encoding, text: text)
        }
        return NLUPrediction(intents: Set(names), slots: slots, words: words)
    }

    /// Scores predictions against the gold labels of `examples` (same order).
    public func score(_ predictions: [NLUPrediction], _ examples: [NLUExample]) -> NLUScores {
        var intentCorrect = 0, truePositive = 0, predicted = 0, gold = 0
        var slotTP = 0, slotPredicted = 0, slotGold = 0, sentences = 0
        for (prediction, example) in zip(predictions, examples) {
            let goldIntents = Set(example.intents ?? [])
            if prediction.intents == goldIntents { intentCorrect += 1 }
            truePositive += prediction.intents.intersection(goldIntents).count
            predicted += prediction.intents.count
            gold += goldIntents.count
            let goldSlots = Set(
                prediction.words.isEmpty
                    ? Self.trimmed(example.slots ?? [], text: example.text) : Self.projected(example.slots ?? [], onto: prediction.words))
            slotTP += prediction.slots.intersection(goldSlots).count
            slotPredicted += prediction.slots.count
            slotGold += goldSlots.count
            if prediction.intents == goldIntents && prediction.slots == goldSlots { sentences += 1 }
        }
        let n = max(predictions.count, 1)
        let intent = card.multiLabel ? Self.f1(truePositive, predicted, gold) : 100 * Double(intentCorrect) / Double(n)
        return NLUScores(
            intent: intent, slotF1: Self.f1(slotTP, slotPredicted, slotGold), sentenceAccuracy: 100 * Double(sentences) / Double(n),
            count: predictions.count, intentMetric: card.multiLabel ? "micro-F1" : "accuracy")
    }

    static func f1(_ truePositive: Int, _ predicted: Int, _ gold: Int) -> Double {
        guard predicted + gold > 0 else { return 100 }
        return 100 * 2 * Double(truePositive) / Double(predicted + gold)
    }

    /// Gold spans as the words the model tags see them, the way training/common.py labels and
    /// training/evaluate.py scores: spans sorted, a span overlapping the previous one dropped (BIO
    /// cannot hold it); a word belongs to the first span its first token overlaps; each span becomes
    /// its words' whole range. A span no word's first token touches is gone, as in training.
    static func projected(_ slots: [GoldSlot], onto words: [SlotDecoder.WordRange]) -> [GoldSlot] {
        var kept: [GoldSlot] = []
        for slot in slots.sorted(by: { ($0.start, $0.end, $0.label) < ($1.start, $1.end, $1.label) }) {
            if let last = kept.last, slot.start < last.end { continue }
            kept.append(slot)
        }
        var range: [Int: (first: Int, last: Int)] = [:]
        for (index, word) in words.enumerated() {
            let token = word.firstToken
            guard let owner = kept.firstIndex(where: { token.lowerBound < $0.end && token.upperBound > $0.start }) else { continue }
            range[owner] = (range[owner]?.first ?? index, index)
        }
        return range.keys.sorted().map { owner in
            let (first, last) = range[owner]!
            return GoldSlot(label: kept[owner].label, start: words[first].word.lowerBound, end: words[last].word.upperBound)
        }
    }

    /// Gold spans with surrounding whitespace removed (NLU++ spans sometimes include it; the
    /// decoder's never do).
    static func trimmed(_ slots: [GoldSlot], text: String) -> [GoldSlot] {
        let scalars = Array(text.unicodeScalars)
        return slots.map { slot in
            var (start, end) = (max(0, slot.start), min(scalars.count, slot.end))
            while start < end, CharacterSet.whitespaces.contains(scalars[start]) { start += 1 }
            while end > start, CharacterSet.whitespaces.contains(scalars[end - 1]) { end -= 1 }
            return GoldSlot(label: slot.label, start: start, end: end)
        }
    }
}

/// How closely two models' raw outputs agree on the same utterances.
public struct OutputAgreement: Sendable, Equatable, Codable {
    /// Largest |a − b| over every intent and slot logit.
    public var maxAbsLogitDifference: Float
    /// Utterances whose decoded intents and slots are identical, in percent.
    public var agreement: Double

    public init(_ a: [NLUOutput], _ b: [NLUOutput], predictionsA: [NLUPrediction], predictionsB: [NLUPrediction]) {
        var worst: Float = 0
        for (x, y) in zip(a, b) {
            for (p, q) in zip(x.intentLogits, y.intentLogits) { let d = abs(p - q); worst = d.isNaN ? .infinity : max(worst, d) }
            for (p, q) in zip(x.slotLogits, y.slotLogits) { let d = abs(p - q); worst = d.isNaN ? .infinity : max(worst, d) }
        }
        maxAbsLogitDifference = worst
        let same = zip(predictionsA, predictionsB).filter { $0 == $1 }.count
        agreement = 100 * Double(same) / Double(max(predictionsA.count, 1))
    }
}
