import Foundation
import KilnCore
import KilnKernels

/// Shared helpers for the fast-kernel tests: seeded random data, the reference executor and
/// the error measure every tolerance below is stated in.
enum CPUKernelTestSupport {
    /// A small deterministic generator (SplitMix64) so failures reproduce.
    struct Random {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func uniform(_ low: Float, _ high: Float) -> Float {
            low + (high - low) * Float(next() >> 40) / Float(1 << 24)
        }
        mutating func floats(_ count: Int, _ low: Float = -1, _ high: Float = 1) -> [Float] {
            (0..<count).map { _ in uniform(low, high) }
        }
    }

    /// `max |actual - expected| / max(1, max |expected|)`: absolute error for values of order
    /// one, relative error for large ones.
    static func relativeMaxError(_ actual: [Float], _ expected: [Float]) -> Float {
        precondition(actual.count == expected.count, "\(actual.count) vs \(expected.count) values")
        var worst: Float = 0
        var magnitude: Float = 1
        for index in actual.indices {
            worst = max(worst, abs(actual[index] - expected[index]))
            magnitude = max(magnitude, abs(expected[index]))
        }
        return actual.contains(where: { $0.isNaN }) ? .infinity : worst / magnitude
    }

    /// Runs one reference kernel.
    static func reference(
        _ opType: String, _ inputs: [Tensor?], attributes: [String: Attribute] = [:], opset: Int = 20
    ) throws -> Tensor {
        let node = Node(name: "reference", opType: opType, inputs: inputs.indices.map { "in\($0)" }, outputs: ["out0"], attributes: attributes)
        return try ReferenceKernels.run(node, inputs: inputs, opset: opset)[0]
    }

    /// Runs `body(index)` on `count` new threads at once (threads that have created no oneDNN
    /// primitive) and waits for all of them.
    static func onFreshThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let done = DispatchSemaphore(value: 0)
        for index in 0..<count {
            let thread = Thread {
                body(index)
                done.signal()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        for _ in 0..<count { done.wait() }
    }

    /// Whether bf16 kernels can run here.
    static let hasBFloat16 = CPUFeatures.detected.hasAVX512BF16
}
