/// The answer of `/v1/parse` for one text: what the chat front end acts on.
public struct ParseResult: Sendable, Codable, Equatable {
    /// One intent and its probability.
    public struct Intent: Sendable, Codable, Equatable {
        public var name: String
        public var confidence: Float
    }

    /// One filled slot, with character offsets (Unicode scalars) into the original text.
    public struct Slot: Sendable, Codable, Equatable {
        public var name: String
        public var value: String
        public var start: Int
        public var end: Int
        public var confidence: Float
    }

    /// Where the time went, in milliseconds.
    public struct Timing: Sendable, Codable, Equatable {
        public var queue: Double
        public var compute: Double
        public var total: Double
    }

    /// The model that answered.
    public var model: String
    /// Its version.
    public var version: String
    /// The top intent (nil for a multi-label model when no intent reaches the threshold).
    public var intent: Intent?
    /// The top-k intents (multi-label: those above the threshold), most probable first.
    public var intents: [Intent]
    /// The slots, in text order.
    public var slots: [Slot]
    /// Whether the text was longer than the model's max length and its end was ignored.
    public var truncated: Bool
    /// Time spent queueing, computing and in total.
    public var timing: Timing

    enum CodingKeys: String, CodingKey {
        case model, version, intent, intents, slots, truncated
        case timing = "timing_ms"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(model, forKey: .model)
        try container.encode(version, forKey: .version)
        try container.encode(intent, forKey: .intent)  // explicit null when absent
        try container.encode(intents, forKey: .intents)
        try container.encode(slots, forKey: .slots)
        try container.encode(truncated, forKey: .truncated)
        try container.encode(timing, forKey: .timing)
    }
}

/// The answer of `/v1/parse/batch`.
public struct ParseBatchResult: Sendable, Codable, Equatable {
    /// One result per text, in order.
    public var results: [ParseResult]
}

extension ParseResult {
    /// The JSON the server answers with: the same members as `Codable` encoding (tested against
    /// it), written directly (see ``JSONBytes`` for why).
    func jsonBytes() -> [UInt8] {
        var json = JSONBytes()
        write(to: &json)
        return json.bytes
    }

    func write(to json: inout JSONBytes) {
        json.object { members in
            members.member("model") { $0.string(model) }
            members.member("version") { $0.string(version) }
            members.member("intent") { json in
                if let intent { intent.write(to: &json) } else { json.null() }
            }
            members.member("intents") { $0.array(intents) { json, intent in intent.write(to: &json) } }
            members.member("slots") { $0.array(slots) { json, slot in slot.write(to: &json) } }
            members.member("truncated") { $0.bool(truncated) }
            members.member("timing_ms") { json in
                json.object { members in
                    members.member("queue") { $0.number(timing.queue) }
                    members.member("compute") { $0.number(timing.compute) }
                    members.member("total") { $0.number(timing.total) }
                }
            }
        }
    }
}

extension ParseResult.Intent {
    func write(to json: inout JSONBytes) {
        json.object { members in
            members.member("name") { $0.string(name) }
            members.member("confidence") { $0.number(confidence) }
        }
    }
}

extension ParseResult.Slot {
    func write(to json: inout JSONBytes) {
        json.object { members in
            members.member("name") { $0.string(name) }
            members.member("value") { $0.string(value) }
            members.member("start") { $0.number(start) }
            members.member("end") { $0.number(end) }
            members.member("confidence") { $0.number(confidence) }
        }
    }
}

extension ParseBatchResult {
    /// The JSON of `/v1/parse/batch`: `{"results": [...]}`.
    func jsonBytes() -> [UInt8] {
        var json = JSONBytes(capacity: 256 * max(1, results.count))
        json.object { members in
            members.member("results") { $0.array(results) { json, result in result.write(to: &json) } }
        }
        return json.bytes
    }
}
