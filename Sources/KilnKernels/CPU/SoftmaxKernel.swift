import CKilnSIMD

/// Softmax over the last axis of a `[rows, columns]` buffer.
public enum SoftmaxKernel {
    /// `output[r, :] = softmax(input[r, :])`; `output` may equal `input`.
    /// - Parameters:
    ///   - input: `rows × columns` floats.
    ///   - output: `rows × columns` floats.
    ///   - rows: number of rows.
    ///   - columns: row length (the softmax axis), at least 1.
    ///   - width: parallel chunks (default ``CPUThreading/threadCount``).
    ///   - isa: baseline Swift or AVX2 kernels (default: the best this CPU runs).
    public static func run(
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, rows: Int, columns: Int,
        width: Int = CPUThreading.threadCount, isa: KernelISA = .detected
    ) {
        CPUThreading.parallelFor(rows, width: width, minimumChunk: max(1, 8192 / max(columns, 1))) { range in
            for row in range {
                if isa == .avx2 {
                    kiln_avx2_softmax_row(input + row * columns, output + row * columns, columns)
                } else {
                    softmaxRow(input + row * columns, output + row * columns, columns)
                }
            }
        }
    }

    /// Softmax of one row of `count` floats (in place allowed).
    @inline(__always)
    static func softmaxRow(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ count: Int) {
        let fullEnd = count & ~15
        var maximumVector = VectorMath.Vector(repeating: -.infinity)
        var index = 0
        while index < fullEnd {
            maximumVector = pointwiseMax(maximumVector, VectorMath.load(input + index))
            index += 16
        }
        var maximum = maximumVector.max()
        while index < count {
            maximum = Swift.max(maximum, input[index])
            index += 1
        }
        if maximum == -.infinity { maximum = 0 }  // an all-masked row: keep it finite (uniform result)
        var sumVector = VectorMath.Vector()
        index = 0
        while index < fullEnd {
            let value = VectorMath.exp(VectorMath.load(input + index) - maximum)
            VectorMath.store(value, output + index)
            sumVector += value
            index += 16
        }
        var sum = sumVector.sum()
        if index < count {
            let tail = count - index
            var value = VectorMath.exp(VectorMath.loadPartial(input + index, count: tail, fill: -.infinity) - maximum)
            // exp clamps, so the fill lanes hold ~1e-38, not 0: keep them out of the sum (it
            // matters for an all-masked row, where every lane is that small).
            for lane in tail..<VectorMath.width { value[lane] = 0 }
            VectorMath.storePartial(value, output + index, count: tail)
            sum += value.sum()
        }
        let inverse = 1 / sum
        index = 0
        while index < fullEnd {
            VectorMath.store(VectorMath.load(output + index) * inverse, output + index)
            index += 16
        }
        while index < count {
            output[index] *= inverse
            index += 1
        }
    }
}
