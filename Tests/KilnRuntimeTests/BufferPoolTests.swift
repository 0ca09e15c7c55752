import KilnCore
@testable import KilnRuntime
import Testing

/// The engine's arena of dead intermediate buffers: fresh buffers come in size classes, a
/// released buffer is reused for any request it holds within 2x, and never for one it cannot hold.
@Suite struct BufferPoolTests {
    @Test("size classes: at least the count, at most 25% more, four per power of two; small sizes exact")
    func sizeClasses() {
        for count in [1, 7, 255, 256] { #expect(BufferPool.sizeClass(count) == count) }
        var classes = Set<Int>()
        for count in 257...65_536 {
            let size = BufferPool.sizeClass(count)
            #expect(size >= count && Double(size) <= 1.25 * Double(count), "\(count) -> \(size)")
            classes.insert(size)
        }
        // 257...65536 spans 8 powers of two, (256, 512] to (32768, 65536]: 4 classes each.
        #expect(classes.count == 32)
        #expect(BufferPool.sizeClass(1000) == 1024 && BufferPool.sizeClass(1025) == 1280 && BufferPool.sizeClass(1281) == 1536)
    }

    @Test("make: count elements, written by the closure, with the class's capacity")
    func make() {
        let buffer = BufferPool.make(count: 1_000) { $0.initialize(repeating: 3, count: 1_000) }
        #expect(buffer.count == 1_000 && buffer.allSatisfy { $0 == 3 })
        #expect(buffer.capacity >= BufferPool.sizeClass(1_000))
    }

    @Test("a released buffer serves any count it holds within 2x, resized in place; others get nil")
    func reuse() throws {
        let pool = BufferPool()
        // Only the pool may hold the buffer (as when an engine step's output dies), or resizing
        // it copies first.
        let (address, capacity) = try { () throws -> (UnsafePointer<Float>?, Int) in
            let made = BufferPool.make(count: 1_100) { $0.initialize(repeating: 1, count: 1_100) }
            pool.give(try Tensor(floats: made, shape: [1_100]))
            return (made.withUnsafeBufferPointer { $0.baseAddress }, made.capacity)
        }()
        #expect(pool.take(count: capacity + 1) == nil)  // does not fit
        #expect(pool.take(count: capacity / 2 - 1) == nil)  // would waste more than half
        // 1,200 floats did not fit a buffer made for exactly 1,100; the class's capacity holds them.
        let reused = try #require(pool.take(count: 1_200))
        #expect(reused.count == 1_200)
        #expect(reused.withUnsafeBufferPointer { $0.baseAddress } == address)
        #expect(pool.take(count: 1_200) == nil)  // taken once
    }
}
