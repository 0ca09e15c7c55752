import Foundation

/// How a calibration turns an activation's observed distribution into a clipping threshold T
/// (the int8 scale is T / 127).
public enum CalibrationMethod: String, Sendable, Codable, CaseIterable {
    /// T = the largest |x| seen: nothing clips, but one outlier stretches the scale.
    case minmax
    /// T = the 99.99th percentile of |x|: the rarest outliers clip.
    case percentile
    /// T minimizing the KL divergence between the |x| histogram and its 128-level quantized
    /// version (TensorRT's entropy calibration).
    case entropy
}

/// A histogram of |x| over `[0, range)` that grows its range (merging bins) as larger values
/// arrive, plus the exact min and max: what calibration records per quantized-op input.
public struct ActivationHistogram: Sendable, Codable, Equatable {
    public static let binCount = 2048
    public private(set) var minimum: Float = .infinity
    public private(set) var maximum: Float = -.infinity
    /// Upper edge of the last bin.
    public private(set) var range: Float = 0
    public private(set) var bins: [UInt64] = []
    public private(set) var count: UInt64 = 0

    public init() {}

    /// The largest |x| seen.
    public var absMax: Float { count == 0 ? 0 : max(abs(minimum), abs(maximum)) }

    /// Adds `values` (non-finite values are ignored).
    public mutating func add(_ values: UnsafeBufferPointer<Float>) {
        var low = minimum, high = maximum
        for value in values where value.isFinite {
            low = min(low, value)
            high = max(high, value)
        }
        guard low <= high else { return }
        minimum = low
        maximum = high
        grow(toCover: max(abs(low), abs(high)))
        guard range > 0 else {
            count += UInt64(values.count)
            return
        }
        let perBin = Float(Self.binCount) / range
        bins.withUnsafeMutableBufferPointer { bins in
            for value in values where value.isFinite {
                bins[min(Int(abs(value) * perBin), Self.binCount - 1)] += 1
            }
        }
        count += UInt64(values.count)
    }

    /// Widens the range by a whole factor so old bins merge exactly into new ones.
    private mutating func grow(toCover value: Float) {
        if bins.isEmpty { bins = [UInt64](repeating: 0, count: Self.binCount) }
        guard value > range else { return }
        if range == 0 {
            // First data: leave 25 % headroom so small later growth costs no merge.
            range = value * 1.25
            return
        }
        let factor = Int((value / range).rounded(.up)) + 1
        var merged = [UInt64](repeating: 0, count: Self.binCount)
        for (index, total) in bins.enumerated() { merged[index / factor] += total }
        bins = merged
        range *= Float(factor)
    }

    /// The clipping threshold for `method`.
    public func threshold(_ method: CalibrationMethod, percentile: Double = 99.99) -> Float {
        guard count > 0, range > 0 else { return absMax }
        switch method {
        case .minmax: return absMax
        case .percentile: return min(percentileThreshold(percentile), absMax)
        case .entropy: return min(entropyThreshold(), absMax)
        }
    }

    private var binWidth: Float { range / Float(Self.binCount) }

    private func percentileThreshold(_ percentile: Double) -> Float {
        let total = bins.reduce(0, +)
        let target = Double(total) * percentile / 100
        var running: UInt64 = 0
        for (index, value) in bins.enumerated() {
            running += value
            if Double(running) >= target { return Float(index + 1) * binWidth }
        }
        return range
    }

    /// TensorRT-style: for each candidate cut i ≥ 128 bins, fold the tail into bin i-1 (P),
    /// quantize P's bins into 128 levels and expand back (Q), and keep the i with the least KL(P‖Q).
    private func entropyThreshold() -> Float {
        let levels = 128
        let lastUsed = (bins.lastIndex { $0 > 0 } ?? 0) + 1
        guard lastUsed > levels else { return Float(lastUsed) * binWidth }
        var bestCut = lastUsed, bestDivergence = Double.infinity
        let counts = bins.map(Double.init)
        var cut = levels
        while cut <= lastUsed {
            var reference = Array(counts[0..<cut])
            reference[cut - 1] += counts[cut...].reduce(0, +)
            let quantized = Self.expandQuantized(Array(counts[0..<cut]), levels: levels)
            let divergence = Self.divergence(reference, quantized)
            if divergence < bestDivergence {
                bestDivergence = divergence
                bestCut = cut
            }
            cut += 16  // every 16th cut: 120 candidates instead of 1920, same answer within a bin group
        }
        return Float(bestCut) * binWidth
    }

    /// `bins` merged into `levels` groups, each group's total spread evenly over its non-empty bins.
    static func expandQuantized(_ bins: [Double], levels: Int) -> [Double] {
        var expanded = [Double](repeating: 0, count: bins.count)
        for level in 0..<levels {
            let start = level * bins.count / levels, end = (level + 1) * bins.count / levels
            guard start < end else { continue }
            let slice = bins[start..<end]
            let nonEmpty = slice.filter { $0 > 0 }.count
            guard nonEmpty > 0 else { continue }
            let share = slice.reduce(0, +) / Double(nonEmpty)
            for index in start..<end where bins[index] > 0 { expanded[index] = share }
        }
        return expanded
    }

    /// KL(p‖q) of two unnormalized histograms (bins where p > 0 and q = 0 get a small q).
    static func divergence(_ p: [Double], _ q: [Double]) -> Double {
        let pTotal = p.reduce(0, +), qTotal = q.reduce(0, +)
        guard pTotal > 0, qTotal > 0 else { return .infinity }
        var sum = 0.0
        for index in p.indices where p[index] > 0 {
            let pi = p[index] / pTotal
            let qi = max(q[index] / qTotal, 1e-12)
            sum += pi * log(pi / qi)
        }
        return sum
    }
}
