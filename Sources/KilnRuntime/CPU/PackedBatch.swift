import KilnCore

/// A right-padded batch seen as its real tokens: sequence `b` is tokens
/// `offsets[b] ..< offsets[b + 1]` of the packed `[1, T]` layout.
///
/// Built from the 0/1 attention mask; only a right-padded prefix mask (each row `1…1 0…0`,
/// at least one 1) qualifies, and only when some row is padded (otherwise packing saves nothing).
struct PackedBatch: Sendable {
    let batch: Int
    let sequence: Int
    /// `batch + 1` token offsets, from 0 to ``total``.
    let offsets: [Int]

    var total: Int { offsets[batch] }
    var shortest: Int { (0..<batch).map { offsets[$0 + 1] - offsets[$0] }.min() ?? 0 }

    /// Nil when `mask` is not an integer or bool `[B, S]` right-padded prefix mask with padding.
    init?(mask: Tensor) {
        guard mask.rank == 2, mask.dtype.isInteger || mask.dtype == .bool else { return nil }
        let (batch, sequence) = (mask.shape[0], mask.shape[1])
        guard batch > 0, sequence > 0 else { return nil }
        let values = mask.ints
        var offsets = [0]
        for row in 0..<batch {
            let base = row * sequence
            var length = 0
            while length < sequence && values[base + length] == 1 { length += 1 }
            guard length > 0 else { return nil }
            for column in length..<sequence where values[base + column] != 0 { return nil }
            offsets.append(offsets[row] + length)
        }
        guard offsets[batch] < batch * sequence else { return nil }
        (self.batch, self.sequence, self.offsets) = (batch, sequence, offsets)
    }

    /// Lengths as given (for tests and samples).
    init(lengths: [Int], sequence: Int) {
        batch = lengths.count
        self.sequence = sequence
        offsets = lengths.reduce(into: [0]) { $0.append($0.last! + $1) }
    }

    /// `[B, S]` → `[1, T]`: the real tokens of each row, back to back.
    func pack(_ tensor: Tensor) throws -> Tensor {
        guard tensor.shape == [batch, sequence] else {
            throw KilnError.invalidInput("input of shape \(tensor.shape) does not match the mask's [\(batch), \(sequence)]")
        }
        let blocks = (0..<batch).map { Block(source: $0 * sequence, destination: offsets[$0], count: offsets[$0 + 1] - offsets[$0]) }
        return try Tensor(dtype: tensor.dtype, shape: [1, total], storage: Self.copy(tensor.storage, blocks: blocks, count: total))
    }

    /// `[1, T, rest...]` → `[B, S, rest...]`, padding positions filled with zeros.
    func scatter(_ tensor: Tensor) throws -> Tensor {
        guard tensor.rank >= 2, tensor.shape[0] == 1, tensor.shape[1] == total else {
            throw KilnError.invalidModel("packed output of shape \(tensor.shape) is not [1, \(total), ...]")
        }
        let rowSize = tensor.shape.dropFirst(2).reduce(1, *)
        let blocks = (0..<batch).map {
            Block(source: offsets[$0] * rowSize, destination: $0 * sequence * rowSize, count: (offsets[$0 + 1] - offsets[$0]) * rowSize)
        }
        return try Tensor(
            dtype: tensor.dtype, shape: [batch, sequence] + tensor.shape.dropFirst(2),
            storage: Self.copy(tensor.storage, blocks: blocks, count: batch * sequence * rowSize))
    }

    /// `[1, T, rest...]` → `[B, rest...]`: token `index` of each sequence, as
    /// `Gather(x, index) {axis = 1}` gives on the padded batch. Nil when a sequence is too short
    /// (the padded graph would read a padding row there).
    func token(_ index: Int, of tensor: Tensor) throws -> Tensor? {
        guard index < shortest, tensor.rank >= 2, tensor.shape[0] == 1, tensor.shape[1] == total else { return nil }
        let rowSize = tensor.shape.dropFirst(2).reduce(1, *)
        let blocks = (0..<batch).map { Block(source: (offsets[$0] + index) * rowSize, destination: $0 * rowSize, count: rowSize) }
        return try Tensor(
            dtype: tensor.dtype, shape: [batch] + tensor.shape.dropFirst(2), storage: Self.copy(tensor.storage, blocks: blocks, count: batch * rowSize))
    }

    /// Position ids `offset + step·s` of each token within its sequence, `[1, T]` int64.
    func positions(offset: Int64, step: Int64) -> Tensor {
        var ids = [Int64](repeating: 0, count: total)
        for row in 0..<batch {
            for token in offsets[row]..<offsets[row + 1] { ids[token] = offset + step * Int64(token - offsets[row]) }
        }
        return try! Tensor(ints: ids, shape: [1, total])  // Cannot fail: `total` elements.
    }

    /// A run of `count` contiguous elements copied from `source` to `destination`.
    struct Block {
        let source: Int
        let destination: Int
        let count: Int
    }

    /// `count` elements, zero (false) except the `blocks` copied from `storage`: one block copy
    /// per sequence instead of an index per element (this runs on every packed call).
    private static func copy(_ storage: Tensor.Storage, blocks: [Block], count: Int) -> Tensor.Storage {
        func run<T>(_ values: [T], _ zero: T) -> [T] {
            var result = [T](repeating: zero, count: count)
            result.withUnsafeMutableBufferPointer { output in
                values.withUnsafeBufferPointer { input in
                    for block in blocks where block.count > 0 {
                        precondition(block.source >= 0 && block.source + block.count <= input.count
                                     && block.destination >= 0 && block.destination + block.count <= output.count)
                        (output.baseAddress! + block.destination).update(from: input.baseAddress! + block.source, count: block.count)
                    }
                }
            }
            return result
        }
        switch storage {
        case .float(let values): return .float(run(values, 0))
        case .int(let values): return .int(run(values, 0))
        case .bool(let values): return .bool(run(values, false))
        }
    }
}
