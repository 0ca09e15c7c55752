import KilnCore
@testable import KilnRuntime
import Testing

/// PackedBatch's block copies against the per-element definition: pack keeps each row's real
/// tokens back to back; scatter puts them back with exact zeros (false) at padding; token picks
/// one position per sequence. Exact equality: these only move values.
@Suite struct PackedBatchTests {
    static let mask = try! Tensor(ints: [1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1], shape: [3, 4])
    static let lengths = [3, 1, 4]

    @Test func packScatterAndTokenMoveWholeRows() throws {
        let batch = try #require(PackedBatch(mask: Self.mask))
        #expect(batch.offsets == [0, 3, 4, 8] && batch.total == 8 && batch.shortest == 1)
        let ids = try Tensor(ints: (0..<12).map { Int64($0) + 100 }, shape: [3, 4])
        #expect(try batch.pack(ids).ints == [100, 101, 102, 104, 108, 109, 110, 111])
        #expect(try batch.pack(ids).shape == [1, 8])
        let flags = try Tensor(bools: (0..<12).map { $0 % 2 == 0 }, shape: [3, 4])
        #expect(try batch.pack(flags).bools == [true, false, true, true, true, false, true, false])

        let rowSize = 3
        let packed = try Tensor(floats: (0..<(8 * rowSize)).map { Float($0) + 0.5 }, shape: [1, 8, rowSize])
        let scattered = try batch.scatter(packed)
        #expect(scattered.shape == [3, 4, rowSize])
        var expected = [Float](repeating: 0, count: 12 * rowSize)
        for row in 0..<3 {
            for token in 0..<Self.lengths[row] {
                for element in 0..<rowSize {
                    expected[(row * 4 + token) * rowSize + element] = packed.floats[(batch.offsets[row] + token) * rowSize + element]
                }
            }
        }
        #expect(scattered.floats == expected)
        let first = try #require(try batch.token(0, of: packed))
        #expect(first.shape == [3, rowSize])
        #expect(first.floats == [0.5, 1.5, 2.5, 9.5, 10.5, 11.5, 12.5, 13.5, 14.5])
        #expect(try batch.token(1, of: packed) == nil, "sequence 1 has one token: the padded graph would read padding")
    }

    @Test func misfitShapesAreErrors() throws {
        let batch = try #require(PackedBatch(mask: Self.mask))
        #expect(throws: KilnError.self) { try batch.pack(try Tensor(ints: [1, 2, 3], shape: [1, 3])) }
        #expect(throws: KilnError.self) { try batch.scatter(try Tensor(floats: [1, 2], shape: [1, 2])) }
    }
}
