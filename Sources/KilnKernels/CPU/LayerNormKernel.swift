import CKilnSIMD

/// LayerNorm and SkipLayerNorm over the last axis of `[rows, hiddenSize]` buffers: the CPU
/// engine's ``KilnOperators/layerNorm`` and ``KilnOperators/skipLayerNorm``.
///
/// Statistics are two-pass (mean, then the mean of squared deviations) in fp32, like the
/// reference; each row is one unit of parallel work.
public enum LayerNormKernel {
    /// `output[r] = (input[r] - mean) / sqrt(var + epsilon) · gamma + beta`.
    /// - Parameters:
    ///   - input: `rows × hiddenSize` floats.
    ///   - gamma: `hiddenSize` scales.
    ///   - beta: `hiddenSize` shifts, or nil for none.
    ///   - output: `rows × hiddenSize` floats; may equal `input`.
    ///   - rows: number of rows (tokens).
    ///   - hiddenSize: row length.
    ///   - epsilon: added to the variance.
    ///   - width: parallel chunks (default ``CPUThreading/threadCount``).
    ///   - isa: baseline Swift or AVX2 kernels (default: the best this CPU runs).
    public static func run(
        input: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>, rows: Int, hiddenSize: Int, epsilon: Float,
        width: Int = CPUThreading.threadCount, isa: KernelISA = .detected
    ) {
        CPUThreading.parallelFor(rows, width: width, minimumChunk: max(1, 16384 / max(hiddenSize, 1))) { range in
            for row in range {
                normalizeRow(input + row * hiddenSize, gamma, beta, output + row * hiddenSize, hiddenSize, epsilon, isa: isa)
            }
        }
    }

    /// SkipLayerNorm: `sum = input + skip (+ bias)`, `output = LayerNorm(sum)`.
    /// - Parameters:
    ///   - input: `rows × hiddenSize` floats (usually a GEMM output).
    ///   - skip: `rows × hiddenSize` floats (the residual).
    ///   - bias: `hiddenSize` floats added to every row, or nil.
    ///   - gamma: `hiddenSize` scales.
    ///   - beta: `hiddenSize` shifts, or nil.
    ///   - output: `rows × hiddenSize` floats; may equal `input` or `skip`.
    ///   - sumOutput: where to also write `sum` (the op's optional second output), or nil.
    ///   - rows: number of rows.
    ///   - hiddenSize: row length.
    ///   - epsilon: added to the variance.
    ///   - width: parallel chunks.
    ///   - isa: baseline Swift or AVX2 kernels (default: the best this CPU runs).
    public static func runSkip(
        input: UnsafePointer<Float>, skip: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        sumOutput: UnsafeMutablePointer<Float>?, rows: Int, hiddenSize: Int, epsilon: Float,
        width: Int = CPUThreading.threadCount, isa: KernelISA = .detected
    ) {
        CPUThreading.parallelFor(rows, width: width, minimumChunk: max(1, 16384 / max(hiddenSize, 1))) { range in
            for row in range {
                let offset = row * hiddenSize
                let sum = sumOutput.map { $0 + offset } ?? output + offset
                addRows(input + offset, skip + offset, bias, sum, hiddenSize, isa: isa)
                normalizeRow(sum, gamma, beta, output + offset, hiddenSize, epsilon, isa: isa)
            }
        }
    }

    @inline(__always)
    static func addRows(
        _ first: UnsafePointer<Float>, _ second: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
        _ result: UnsafeMutablePointer<Float>, _ count: Int, isa: KernelISA
    ) {
        if isa == .avx2 {
            kiln_avx2_add_rows(first, second, bias, result, count)
            return
        }
        var index = 0
        if let bias {
            while index + 16 <= count {
                VectorMath.store(VectorMath.load(first + index) + VectorMath.load(second + index) + VectorMath.load(bias + index), result + index)
                index += 16
            }
            while index < count {
                result[index] = first[index] + second[index] + bias[index]
                index += 1
            }
        } else {
            while index + 16 <= count {
                VectorMath.store(VectorMath.load(first + index) + VectorMath.load(second + index), result + index)
                index += 16
            }
            while index < count {
                result[index] = first[index] + second[index]
                index += 1
            }
        }
    }

    @inline(__always)
    static func normalizeRow(
        _ input: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>, _ beta: UnsafePointer<Float>?,
        _ output: UnsafeMutablePointer<Float>, _ count: Int, _ epsilon: Float, isa: KernelISA
    ) {
        if isa == .avx2 {
            kiln_avx2_layer_norm_row(input, gamma, beta, output, count, epsilon)
            return
        }
        let fullEnd = count & ~15
        var sumVector = VectorMath.Vector()
        var index = 0
        while index < fullEnd {
            sumVector += VectorMath.load(input + index)
            index += 16
        }
        var sum = sumVector.sum()
        while index < count {
            sum += input[index]
            index += 1
        }
        let mean = sum / Float(count)
        var squaresVector = VectorMath.Vector()
        index = 0
        while index < fullEnd {
            let deviation = VectorMath.load(input + index) - mean
            squaresVector += deviation * deviation
            index += 16
        }
        var squares = squaresVector.sum()
        while index < count {
            let deviation = input[index] - mean
            squares += deviation * deviation
            index += 1
        }
        let inverseDeviation = 1 / (squares / Float(count) + epsilon).squareRoot()
        index = 0
        while index < fullEnd {
            var value = (VectorMath.load(input + index) - mean) * inverseDeviation * VectorMath.load(gamma + index)
            if let beta { value += VectorMath.load(beta + index) }
            VectorMath.store(value, output + index)
            index += 16
        }
        while index < count {
            output[index] = (input[index] - mean) * inverseDeviation * gamma[index] + (beta?[index] ?? 0)
            index += 1
        }
    }
}
