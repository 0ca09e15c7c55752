import CKilnSIMD
import KilnCore

/// Row-wise data movement for the standard ops the engine still runs around its fused ones
/// (BERT's embedding layer: `Gather` of table rows, `Add` of the position rows): plain loops
/// over contiguous fp32 rows instead of the reference kernels' general index arithmetic.
public enum RowKernels {
    /// `output[i, :] = table[indices[i], :]` (ONNX `Gather` on axis 0 of a 2-D table); negative
    /// indices count from the end, as in ONNX.
    /// - Parameters:
    ///   - table: `rows × rowSize` floats.
    ///   - rows: rows in the table.
    ///   - rowSize: floats per row.
    ///   - indices: one row index per output row.
    ///   - output: `indices.count × rowSize` floats.
    /// - Throws: ``KilnError/invalidInput(_:)`` for an index outside `-rows ..< rows` (checked
    ///   before anything is written).
    public static func gather(
        table: UnsafePointer<Float>, rows: Int, rowSize: Int, indices: UnsafeBufferPointer<Int64>,
        output: UnsafeMutablePointer<Float>
    ) throws {
        for (position, index) in indices.enumerated() where index < -Int64(rows) || index >= Int64(rows) {
            throw KilnError.invalidInput("Gather index \(index) at position \(position) is outside -\(rows)..<\(rows)")
        }
        for (position, index) in indices.enumerated() {
            let row = index < 0 ? Int(index) + rows : Int(index)
            (output + position * rowSize).update(from: table + row * rowSize, count: rowSize)
        }
    }

    /// `output = input + addend`, with `addend` (`addendCount` floats) repeated along `input`
    /// (`count` floats, a multiple of `addendCount`): numpy broadcasting of a trailing block,
    /// e.g. `[B, S, H] + [S, H]`. `output` may equal `input`.
    /// - Parameters:
    ///   - input: `count` floats.
    ///   - addend: `addendCount` floats.
    ///   - output: `count` floats.
    ///   - count: elements of `input`.
    ///   - addendCount: elements of `addend`; divides `count`.
    ///   - isa: baseline Swift or AVX2 kernels (default: the best this CPU runs).
    public static func add(
        input: UnsafePointer<Float>, addend: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int,
        addendCount: Int, isa: KernelISA = .detected
    ) {
        guard addendCount > 0 else { return }
        var offset = 0
        while offset < count {
            LayerNormKernel.addRows(input + offset, addend, nil, output + offset, addendCount, isa: isa)
            offset += addendCount
        }
    }
}
