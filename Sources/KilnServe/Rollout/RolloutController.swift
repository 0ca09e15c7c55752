import Foundation

/// The state of one model's roll-out: the policy, what has been observed, and the verdict.
///
/// The request path asks ``shouldUseCandidate()`` per request; for those it runs both versions and
/// reports both outcomes to ``record(current:candidate:)``, which returns the verdict once the
/// window is full. Thread-safe.
public final class RolloutController: @unchecked Sendable {
    /// Where a roll-out stands.
    public enum State: String, Sendable, Codable {
        case running, promoted, rolledBack = "rolled_back"

        /// The value of the `kiln_rollout_state` gauge.
        var gaugeValue: Int {
            switch self {
            case .running: return 1
            case .promoted: return 2
            case .rolledBack: return 3
            }
        }
    }

    /// One version's answer to a compared request.
    public struct Outcome: Sendable {
        /// Whether it failed.
        public var failed: Bool
        /// Its latency in milliseconds.
        public var milliseconds: Double
        /// Its answer (intent and slots) when it succeeded, for agreement.
        public var signature: String?

        public init(failed: Bool, milliseconds: Double, signature: String?) {
            self.failed = failed
            self.milliseconds = milliseconds
            self.signature = signature
        }
    }

    /// A snapshot for the admin API.
    public struct Status: Sendable, Codable {
        public var model: String
        public var currentVersion: Int
        public var candidateVersion: Int
        public var state: State
        public var reason: String?
        public var policy: RolloutPolicy
        public var compared: Int
        public var agreement: Double?
        public var currentErrorRate: Double?
        public var candidateErrorRate: Double?
        public var currentP95Ms: Double?
        public var candidateP95Ms: Double?

        enum CodingKeys: String, CodingKey {
            case model, state, reason, policy, compared, agreement
            case currentVersion = "current_version"
            case candidateVersion = "candidate_version"
            case currentErrorRate = "current_error_rate"
            case candidateErrorRate = "candidate_error_rate"
            case currentP95Ms = "current_p95_ms"
            case candidateP95Ms = "candidate_p95_ms"
        }
    }

    /// What the controller decided after a record.
    public enum Verdict: Sendable, Equatable {
        case keepGoing
        case promote(String)
        case rollBack(String)
    }

    /// The model under roll-out.
    public let model: String
    /// The version serving before the roll-out.
    public let currentVersion: Int
    /// The policy.
    public let policy: RolloutPolicy
    private let lock = NSLock()
    private var state: State = .running
    private var reason: String?
    private var compared = 0
    private var agreed = 0
    private var currentFailures = 0
    private var candidateFailures = 0
    private var currentLatencies: [Double] = []
    private var candidateLatencies: [Double] = []

    /// Starts a roll-out.
    public init(model: String, currentVersion: Int, policy: RolloutPolicy) {
        self.model = model
        self.currentVersion = currentVersion
        self.policy = policy
    }

    /// Whether this request should go to the candidate (with probability `percent`/100 while running).
    public func shouldUseCandidate() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return state == .running && Double.random(in: 0..<100) < policy.percent
    }

    /// Records one compared request.
    /// - Returns: the verdict; `.promote` or `.rollBack` only once, when the state changes.
    public func record(current: Outcome, candidate: Outcome) -> Verdict {
        lock.lock()
        defer { lock.unlock() }
        guard state == .running else { return .keepGoing }
        compared += 1
        if current.failed { currentFailures += 1 }
        if candidate.failed { candidateFailures += 1 }
        if !current.failed { currentLatencies.append(current.milliseconds) }
        if !candidate.failed { candidateLatencies.append(candidate.milliseconds) }
        if let a = current.signature, let b = candidate.signature, a == b { agreed += 1 }
        guard compared >= policy.windowRequests else { return .keepGoing }
        let verdict = judgeLocked()
        switch verdict {
        case .keepGoing: break
        case .promote(let why):
            if policy.autoPromote { finishLocked(.promoted, why) } else { return .keepGoing }
        case .rollBack(let why): finishLocked(.rolledBack, why)
        }
        return verdict
    }

    /// Ends the roll-out by hand (or after the manager acted on a verdict).
    public func finish(_ newState: State, reason: String) {
        lock.lock()
        finishLocked(newState, reason)
        lock.unlock()
    }

    /// The current state.
    public var currentState: State {
        lock.lock()
        defer { lock.unlock() }
        return state
    }

    /// A snapshot for the admin API.
    public func status() -> Status {
        lock.lock()
        defer { lock.unlock() }
        let total = Double(max(compared, 1))
        return Status(
            model: model, currentVersion: currentVersion, candidateVersion: policy.candidateVersion, state: state,
            reason: reason, policy: policy, compared: compared,
            agreement: compared > 0 ? Double(agreed) / total : nil,
            currentErrorRate: compared > 0 ? Double(currentFailures) / total : nil,
            candidateErrorRate: compared > 0 ? Double(candidateFailures) / total : nil,
            currentP95Ms: Self.percentile(currentLatencies, 0.95), candidateP95Ms: Self.percentile(candidateLatencies, 0.95))
    }

    private func finishLocked(_ newState: State, _ why: String) {
        guard state == .running else { return }
        state = newState
        reason = why
    }

    private func judgeLocked() -> Verdict {
        let total = Double(compared)
        let agreement = Double(agreed) / total
        let errorIncrease = Double(candidateFailures - currentFailures) / total
        if errorIncrease > policy.maxErrorRateIncrease {
            return .rollBack(String(format: "candidate error rate is %.1f%% higher than the current version's", errorIncrease * 100))
        }
        if agreement < policy.minAgreement {
            return .rollBack(String(format: "candidate agrees with the current version on %.1f%% of requests (minimum %.1f%%)",
                                    agreement * 100, policy.minAgreement * 100))
        }
        if let current = Self.percentile(currentLatencies, 0.95), let candidate = Self.percentile(candidateLatencies, 0.95),
            candidate > current * policy.maxLatencyRatio + policy.latencySlackMs
        {
            return .rollBack(String(format: "candidate P95 latency %.1f ms vs %.1f ms for the current version", candidate, current))
        }
        return .promote(String(format: "agreement %.1f%%, error rate +%.2f%% over %d compared requests",
                               agreement * 100, max(0, errorIncrease) * 100, compared))
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
    }
}
