import Foundation

/// Open-loop arrival times: a Poisson process at a fixed rate.
///
/// Gaps between arrivals are exponential with mean 1/rate, so bursts happen as they do with real users;
/// the schedule is fixed before the run and requests are sent at (and timed from) their scheduled
/// instants, whether or not earlier requests have been answered. That is what keeps a slow server from
/// hiding its queueing delay ("coordinated omission").
public enum ArrivalSchedule {
    /// Arrival offsets from the start of the run.
    /// - Parameters:
    ///   - rate: mean arrivals per second (> 0).
    ///   - duration: seconds covered; arrivals at or after `duration` are dropped.
    ///   - seed: seed of the generator, so a run's schedule can be reproduced.
    /// - Returns: increasing offsets in seconds, all in `[0, duration)`.
    public static func poisson(rate: Double, duration: Double, seed: UInt64) -> [Double] {
        precondition(rate > 0 && duration >= 0, "rate must be positive and duration non-negative")
        var generator = SplitMix64(seed: seed)
        var offsets: [Double] = []
        offsets.reserveCapacity(Int(rate * duration * 1.1) + 16)
        var time = 0.0
        while true {
            time += exponentialGap(rate: rate, using: &generator)
            if time >= duration { return offsets }
            offsets.append(time)
        }
    }

    /// One exponential inter-arrival gap with mean 1/rate (inverse-CDF sampling).
    static func exponentialGap(rate: Double, using generator: inout SplitMix64) -> Double {
        // U in (0, 1]: never log(0).
        let uniform = (Double(generator.next() >> 11) + 1) / Double(1 << 53)
        return -log(uniform) / rate
    }
}

/// A small, fast, seedable generator (SplitMix64, Steele et al. 2014); the system generator cannot be seeded.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
