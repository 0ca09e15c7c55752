import Foundation
import Testing

@testable import KilnBench

@Suite("open-loop arrival schedule")
struct ArrivalScheduleTests {
    // 10,000 expected arrivals: the count's standard deviation is 100, so +-400 is a 4-sigma bound.
    @Test("Poisson schedule: count, mean gap, exponential spread and per-second dispersion match a Poisson process")
    func poissonStatistics() {
        let rate = 100.0, duration = 100.0
        let offsets = ArrivalSchedule.poisson(rate: rate, duration: duration, seed: 7)
        #expect(abs(Double(offsets.count) - rate * duration) < 400)
        #expect(offsets.first! >= 0 && offsets.last! < duration)
        #expect(zip(offsets, offsets.dropFirst()).allSatisfy { $0 < $1 })

        let gaps = zip(offsets.dropFirst(), offsets).map { $0 - $1 }
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        let variance = gaps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(gaps.count - 1)
        #expect(abs(mean - 1 / rate) / (1 / rate) < 0.04)  // exponential: mean 1/rate
        #expect(abs(variance.squareRoot() / mean - 1) < 0.05)  // exponential: coefficient of variation 1

        // Arrivals per second are Poisson(rate): variance / mean (index of dispersion) near 1.
        var perSecond = [Double](repeating: 0, count: Int(duration))
        for offset in offsets { perSecond[Int(offset)] += 1 }
        let countMean = perSecond.reduce(0, +) / duration
        let countVariance = perSecond.map { ($0 - countMean) * ($0 - countMean) }.reduce(0, +) / (duration - 1)
        #expect(countVariance / countMean > 0.7 && countVariance / countMean < 1.3)
    }

    @Test("the same seed gives the same schedule; another seed a different one")
    func seeded() {
        let first = ArrivalSchedule.poisson(rate: 20, duration: 5, seed: 1)
        #expect(first == ArrivalSchedule.poisson(rate: 20, duration: 5, seed: 1))
        #expect(first != ArrivalSchedule.poisson(rate: 20, duration: 5, seed: 2))
    }

    @Test("a short window at a low rate can hold no arrival at all")
    func emptyWindow() {
        #expect(ArrivalSchedule.poisson(rate: 1, duration: 0, seed: 3).isEmpty)
    }
}
