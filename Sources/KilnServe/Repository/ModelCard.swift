import Foundation
import KilnText

/// A model version's card (`model.json`): what the model predicts and how to decode it.
///
/// Only the fields the server needs are read; the training pipeline writes more (metrics, licence,
/// provenance) and they are passed through untouched in the v2 metadata.
public struct ModelCard: Sendable, Codable, Equatable {
    /// The model's name, e.g. `support-en`.
    public var name: String
    /// The version the card describes (the training export writes it as a string).
    public var version: String?
    /// The task, e.g. `joint-intent-slot`.
    public var task: String?
    /// Intent names in logit order.
    public var intentLabels: [String]
    /// Whether several intents can hold at once (sigmoid) rather than exactly one (softmax).
    public var multiLabel: Bool?
    /// The sigmoid threshold for multi-label models.
    public var intentThreshold: Float?
    /// BIO slot tags in logit order, `O` first.
    public var slotLabels: [String]
    /// `BIO` or `BIOES`.
    public var slotScheme: String?
    /// Which tokens carry the slot tags (`first_subtoken`: the tokenizer's words, as Kiln's training
    /// pipeline labels; `whitespace_words`; `every_token`); whitespace words when absent.
    public var slotPositions: String?
    /// The longest input, special tokens included; longer texts are truncated.
    public var maxSeqLength: Int
    /// The engine precision the card declares (fp32 when absent).
    public var precision: String?

    enum CodingKeys: String, CodingKey {
        case name, version, task, precision
        case intentLabels = "intent_labels"
        case multiLabel = "multi_label"
        case intentThreshold = "intent_threshold"
        case slotLabels = "slot_labels"
        case slotScheme = "slot_scheme"
        case slotPositions = "slot_positions"
        case maxSeqLength = "max_seq_length"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        if let number = try? container.decodeIfPresent(Int.self, forKey: .version) {
            version = String(number)
        } else {
            version = try container.decodeIfPresent(String.self, forKey: .version)
        }
        task = try container.decodeIfPresent(String.self, forKey: .task)
        intentLabels = try container.decode([String].self, forKey: .intentLabels)
        multiLabel = try container.decodeIfPresent(Bool.self, forKey: .multiLabel)
        intentThreshold = try container.decodeIfPresent(Float.self, forKey: .intentThreshold)
        slotLabels = try container.decodeIfPresent([String].self, forKey: .slotLabels) ?? []
        slotScheme = try container.decodeIfPresent(String.self, forKey: .slotScheme)
        slotPositions = try container.decodeIfPresent(String.self, forKey: .slotPositions)
        maxSeqLength = try container.decode(Int.self, forKey: .maxSeqLength)
        precision = try container.decodeIfPresent(String.self, forKey: .precision)
    }

    /// Reads and checks a `model.json`.
    /// - Parameter url: the card's location.
    /// - Returns: the card.
    /// - Throws: ``ServeError`` when the file is missing, malformed or inconsistent.
    public static func load(from url: URL) throws -> ModelCard {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ServeError.modelLoadFailed("cannot read \(url.path): \(error.localizedDescription)")
        }
        let card: ModelCard
        do { card = try JSONDecoder().decode(ModelCard.self, from: data) } catch {
            throw ServeError.modelLoadFailed("\(url.path) is not a valid model card: \(DecodingErrorText.describe(error))")
        }
        guard !card.intentLabels.isEmpty else {
            throw ServeError.modelLoadFailed("\(url.path): intent_labels is empty")
        }
        guard SlotDecoder.WordSegmentation(slotPositions: card.slotPositions) != nil else {
            throw ServeError.modelLoadFailed(
                "\(url.path): slot_positions '\(card.slotPositions ?? "")' is not one of \(SlotDecoder.WordSegmentation.knownSlotPositions)")
        }
        guard card.maxSeqLength >= 2 else {
            throw ServeError.modelLoadFailed("\(url.path): max_seq_length must be at least 2 (got \(card.maxSeqLength))")
        }
        return card
    }
}
