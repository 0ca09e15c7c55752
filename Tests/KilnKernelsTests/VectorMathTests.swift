import Foundation
import KilnKernels
import Testing

/// The vectorized elementary functions against the C library on dense grids.
@Suite struct VectorMathTests {
    /// Evaluates `function` on `values` 16 lanes at a time.
    func evaluate(_ values: [Float], _ function: (SIMD16<Float>) -> SIMD16<Float>) -> [Float] {
        var result = [Float](repeating: 0, count: values.count)
        for start in stride(from: 0, to: values.count, by: 16) {
            var vector = SIMD16<Float>()
            for lane in 0..<min(16, values.count - start) { vector[lane] = values[start + lane] }
            let output = function(vector)
            for lane in 0..<min(16, values.count - start) { result[start + lane] = output[lane] }
        }
        return result
    }

    @Test("erf within 1e-6 absolute of erf (double) on [-8, 8]")
    func erfIsAccurate() {
        let grid = (0...160_000).map { Float(-8 + Double($0) * 1e-4) }
        let fast = evaluate(grid, VectorMath.erf)
        var worst = 0.0
        for (x, value) in zip(grid, fast) { worst = max(worst, abs(Double(value) - Foundation.erf(Double(x)))) }
        #expect(worst <= 1e-6, "max abs error \(worst)")
    }

    @Test("exp within 4e-7 relative on [-80, 80]")
    func expIsAccurate() {
        let grid = (0...160_000).map { Float(-80 + Double($0) * 1e-3) }
        let fast = evaluate(grid, VectorMath.exp)
        var worst = 0.0
        for (x, value) in zip(grid, fast) {
            let exact = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(value) - exact) / exact)
        }
        #expect(worst <= 4e-7, "max relative error \(worst)")
        #expect(evaluate([-1000, -Float.infinity], VectorMath.exp).allSatisfy { $0 >= 0 && $0 < 1e-37 })
    }

    @Test("tanh and both GELU forms within 1e-6 absolute on [-10, 10]")
    func tanhAndGeluAreAccurate() {
        let grid = (0...20_000).map { Float(-10 + Double($0) * 1e-3) }
        let tanhError = zip(grid, evaluate(grid, VectorMath.tanh)).map { abs(Double($1) - Foundation.tanh(Double($0))) }.max()!
        #expect(tanhError <= 1e-6, "tanh max abs error \(tanhError)")
        func exactGelu(_ x: Double) -> Double { 0.5 * x * (1 + Foundation.erf(x / 2.0.squareRoot())) }
        func exactGeluTanh(_ x: Double) -> Double {
            let inner: Double = (2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + Foundation.tanh(inner))
        }
        let gelu = evaluate(grid, VectorMath.gelu)
        let geluTanh = evaluate(grid, VectorMath.geluTanh)
        var geluError = 0.0
        var geluTanhError = 0.0
        for (index, x) in grid.enumerated() {
            geluError = max(geluError, abs(Double(gelu[index]) - exactGelu(Double(x))))
            geluTanhError = max(geluTanhError, abs(Double(geluTanh[index]) - exactGeluTanh(Double(x))))
        }
        #expect(geluError <= 2e-6, "gelu max abs error \(geluError)")
        #expect(geluTanhError <= 2e-6, "gelu tanh max abs error \(geluTanhError)")
    }
}
