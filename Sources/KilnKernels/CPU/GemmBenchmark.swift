import Foundation

/// Measures ``FusedMatMulKernel`` throughput, for `kiln bench` and the disabled-by-default
/// benchmark test (see `Sources/KilnKernels/CPU/README.md`).
public enum GemmBenchmark {
    /// One measurement.
    public struct Result: Sendable, CustomStringConvertible {
        public let rows: Int
        public let inputSize: Int
        public let outputSize: Int
        public let precision: GemmPrecision
        public let activation: GemmActivation
        public let threads: Int
        /// Median seconds per GEMM.
        public let secondsPerRun: Double
        /// `2·rows·inputSize·outputSize / secondsPerRun / 1e9`.
        public let gflops: Double
        /// The implementation, e.g. `kiln:avx2_sgemm`, `gemm:jit` or `brg:avx512_core_bf16`.
        public let implementation: String

        public var description: String {
            String(format: "M=%d K=%d N=%d %@ %@ threads=%d: %.1f GFLOP/s (%.1f µs) [%@]", rows, inputSize, outputSize,
                   precision.description, activation.rawValue, threads, gflops, secondsPerRun * 1e6, implementation)
        }
    }

    /// Times `Y = activation(A·W + bias)` for one shape with random data.
    /// - Parameters:
    ///   - rows: `M` (tokens: batch × sequence length).
    ///   - inputSize: `K`.
    ///   - outputSize: `N`.
    ///   - precision: fp32 or bf16.
    ///   - activation: the epilogue.
    ///   - minimumSeconds: how long to keep timing (after a warm-up).
    ///   - backend: nil for ``GemmBackend/preferred(for:)`` (what the engine would use).
    /// - Returns: the median time per run and GFLOP/s.
    public static func measure(
        rows: Int, inputSize: Int, outputSize: Int, precision: GemmPrecision = .float32,
        activation: GemmActivation = .none, minimumSeconds: Double = 1, backend: GemmBackend? = nil
    ) throws -> Result {
        let weights = (0..<inputSize * outputSize).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
        let bias = (0..<outputSize).map { Float($0 % 17) / 17 }
        let input = (0..<rows * inputSize).map { Float(($0 * 104_729) % 1000) / 1000 - 0.5 }
        var output = [Float](repeating: 0, count: rows * outputSize)
        let kernel = try FusedMatMulKernel(
            weights: weights, bias: bias, inputSize: inputSize, outputSize: outputSize, activation: activation, precision: precision,
            backend: backend)
        let stream = try CPUStream()
        var times: [Double] = []
        try input.withUnsafeBufferPointer { input in
            try output.withUnsafeMutableBufferPointer { output in
                for _ in 0..<3 { try kernel.run(input: input.baseAddress!, rows: rows, output: output.baseAddress!, stream: stream) }
                let start = DispatchTime.now().uptimeNanoseconds
                while times.count < 5 || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < minimumSeconds {
                    let before = DispatchTime.now().uptimeNanoseconds
                    try kernel.run(input: input.baseAddress!, rows: rows, output: output.baseAddress!, stream: stream)
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - before) / 1e9)
                }
            }
        }
        times.sort()
        let median = times[times.count / 2]
        return Result(
            rows: rows, inputSize: inputSize, outputSize: outputSize, precision: precision, activation: activation,
            threads: CPUThreading.gemmThreadCount, secondsPerRun: median,
            gflops: 2 * Double(rows) * Double(inputSize) * Double(outputSize) / median / 1e9,
            implementation: try kernel.implementationName(rows: rows))
    }

    /// Times one shape on every fp32 backend this CPU runs, in `rounds` interleaved rounds
    /// (oneDNN, then Kiln's AVX2 GEMM, then again), so machine load hits both alike.
    /// - Returns: per backend, the best round's result.
    public static func compareBackends(
        rows: Int, inputSize: Int, outputSize: Int, activation: GemmActivation = .none,
        rounds: Int = 2, minimumSeconds: Double = 0.3
    ) throws -> [GemmBackend: Result] {
        let backends = AVX2GemmKernel.isSupported ? GemmBackend.allCases : [.oneDNN]
        var best: [GemmBackend: Result] = [:]
        for _ in 0..<max(1, rounds) {
            for backend in backends {
                let result = try measure(rows: rows, inputSize: inputSize, outputSize: outputSize, activation: activation,
                                         minimumSeconds: minimumSeconds, backend: backend)
                if best[backend].map({ result.secondsPerRun < $0.secondsPerRun }) ?? true { best[backend] = result }
            }
        }
        return best
    }
}
