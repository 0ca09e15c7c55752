/// How a roll-out judges its candidate. Sent as JSON to `POST /admin/models/{name}/rollout`.
public struct RolloutPolicy: Sendable, Codable, Equatable {
    /// The candidate version.
    public var candidateVersion: Int
    /// The share of traffic (percent) answered by the candidate; the current version answers the
    /// same requests too, so the two can be compared.
    public var percent: Double = 10
    /// Compared requests needed before a decision.
    public var windowRequests: Int = 200
    /// The lowest intent+slot agreement with the current version that still promotes.
    public var minAgreement: Double = 0.95
    /// How much higher the candidate's error rate may be than the current version's.
    public var maxErrorRateIncrease: Double = 0.01
    /// How much slower (P95 ratio) the candidate may be; latencies under `latencySlackMs` are ignored.
    public var maxLatencyRatio: Double = 1.5
    /// Absolute latency slack in milliseconds, so noise on fast models doesn't roll back.
    public var latencySlackMs: Double = 5
    /// Promote by itself when the window holds (false: wait for a manual promote).
    public var autoPromote: Bool = true

    public init(candidateVersion: Int) {
        self.candidateVersion = candidateVersion
    }

    enum CodingKeys: String, CodingKey {
        case candidateVersion = "candidate_version"
        case percent
        case windowRequests = "window_requests"
        case minAgreement = "min_agreement"
        case maxErrorRateIncrease = "max_error_rate_increase"
        case maxLatencyRatio = "max_latency_ratio"
        case latencySlackMs = "latency_slack_ms"
        case autoPromote = "auto_promote"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(candidateVersion: try container.decode(Int.self, forKey: .candidateVersion))
        percent = try container.decodeIfPresent(Double.self, forKey: .percent) ?? percent
        windowRequests = try container.decodeIfPresent(Int.self, forKey: .windowRequests) ?? windowRequests
        minAgreement = try container.decodeIfPresent(Double.self, forKey: .minAgreement) ?? minAgreement
        maxErrorRateIncrease = try container.decodeIfPresent(Double.self, forKey: .maxErrorRateIncrease) ?? maxErrorRateIncrease
        maxLatencyRatio = try container.decodeIfPresent(Double.self, forKey: .maxLatencyRatio) ?? maxLatencyRatio
        latencySlackMs = try container.decodeIfPresent(Double.self, forKey: .latencySlackMs) ?? latencySlackMs
        autoPromote = try container.decodeIfPresent(Bool.self, forKey: .autoPromote) ?? autoPromote
    }

    /// Checks the values make sense.
    func validate() throws {
        guard percent > 0 && percent <= 100 else { throw ServeError.badRequest("'percent' must be in (0, 100]") }
        guard windowRequests >= 1 else { throw ServeError.badRequest("'window_requests' must be at least 1") }
        guard (0...1).contains(minAgreement) else { throw ServeError.badRequest("'min_agreement' must be in [0, 1]") }
    }
}
