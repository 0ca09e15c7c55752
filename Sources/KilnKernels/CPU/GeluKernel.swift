import CKilnSIMD

/// GELU over a buffer: the CPU engine's ``KilnOperators/gelu`` when it is not fused into a
/// GEMM epilogue.
public enum GeluKernel {
    /// The two forms of ``KilnOperators/gelu``'s `approximate` attribute.
    public enum Approximation: String, Sendable {
        /// `0.5·x·(1 + erf(x/√2))`.
        case none
        /// `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
        case tanh
    }

    /// Applies GELU elementwise; `output` may equal `input` (in place).
    /// - Parameters:
    ///   - input: `count` floats.
    ///   - output: `count` floats.
    ///   - count: number of elements.
    ///   - approximation: erf (`.none`) or tanh form.
    ///   - width: parallel chunks (default ``CPUThreading/threadCount``).
    ///   - isa: baseline Swift or AVX2 kernels (default: the best this CPU runs).
    public static func run(
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int,
        approximation: Approximation = .none, width: Int = CPUThreading.threadCount, isa: KernelISA = .detected
    ) {
        // Chunks are whole vectors so that in-place runs never share a vector between workers.
        let vectors = (count + 15) / 16
        CPUThreading.parallelFor(vectors, width: width, minimumChunk: 2048) { range in
            let start = range.lowerBound * 16
            let end = min(count, range.upperBound * 16)
            if isa == .avx2 {
                kiln_avx2_gelu(input + start, output + start, end - start, approximation == .tanh ? 1 : 0)
                return
            }
            switch approximation {
            case .none: apply(VectorMath.gelu, input + start, output + start, end - start)
            case .tanh: apply(VectorMath.geluTanh, input + start, output + start, end - start)
            }
        }
    }

    @inline(__always)
    static func apply(
        _ function: (VectorMath.Vector) -> VectorMath.Vector, _ input: UnsafePointer<Float>,
        _ output: UnsafeMutablePointer<Float>, _ count: Int
    ) {
        var index = 0
        while index + 16 <= count {
            VectorMath.store(function(VectorMath.load(input + index)), output + index)
            index += 16
        }
        if index < count {
            let tail = count - index
            VectorMath.storePartial(function(VectorMath.loadPartial(input + index, count: tail, fill: 0)), output + index, count: tail)
        }
    }
}
