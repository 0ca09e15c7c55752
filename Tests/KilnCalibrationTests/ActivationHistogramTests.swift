import Foundation
import KilnCalibration
import Testing

/// Calibration statistics: range growth, and the three threshold methods on distributions whose
/// right answer is known.
@Suite struct ActivationHistogramTests {
    func histogram(_ values: [Float]) -> ActivationHistogram {
        var histogram = ActivationHistogram()
        values.withUnsafeBufferPointer { histogram.add($0) }
        return histogram
    }

    @Test("min/max are exact and counts survive range growth")
    func growth() {
        var histogram = ActivationHistogram()
        [Float(0.5), -0.25].withUnsafeBufferPointer { histogram.add($0) }
        [Float(3), -7, 1].withUnsafeBufferPointer { histogram.add($0) }
        #expect(histogram.minimum == -7)
        #expect(histogram.maximum == 3)
        #expect(histogram.absMax == 7)
        #expect(histogram.count == 5)
        #expect(histogram.bins.reduce(0, +) == 5)
        #expect(histogram.range >= 7)
    }

    @Test("minmax keeps the outlier; percentile and entropy clip it")
    func outlier() {
        // 100k values uniform in [-1, 1] plus one outlier at 50.
        var values = (0..<100_000).map { Float($0 % 2001 - 1000) / 1000 }
        values.append(50)
        let histogram = histogram(values)
        #expect(histogram.threshold(.minmax) == 50)
        let percentile = histogram.threshold(.percentile)
        #expect(percentile > 0.9 && percentile < 1.2, "percentile \(percentile)")
        let entropy = histogram.threshold(.entropy)
        #expect(entropy > 0.5 && entropy < 5, "entropy \(entropy)")
    }

    @Test("non-finite values are ignored; an all-zero tensor gives threshold 0 (scale 1)")
    func degenerate() {
        let histogram = histogram([0, 0, .nan, .infinity])
        #expect(histogram.absMax == 0)
        #expect(histogram.threshold(.entropy) == 0)
    }
}
