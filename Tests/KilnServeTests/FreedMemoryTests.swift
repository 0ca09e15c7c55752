import Foundation
import Testing
@testable import KilnServe

#if canImport(Glibc)
import Glibc

@Suite("Freed heap memory goes back to the system after a model load")
struct FreedMemoryTests {
    /// Resident bytes of this process (`/proc/self/statm`, second field, in pages).
    private func residentBytes() throws -> Int {
        let fields = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
        return try #require(Int(fields[1])) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    @Test("heap memory freed between live blocks stays resident until FreedMemory returns it")
    func freedBlocksLeaveTheProcess() throws {
        // Blocks below glibc's mmap threshold (heap memory); every 16th stays live, as an engine
        // build leaves its long-lived allocations among the freed temporaries, so free() cannot
        // trim the freed ones away itself.
        let (blockBytes, blocks) = (64 << 10, 1024)
        var pointers: [UnsafeMutableRawPointer] = []
        for _ in 0..<blocks {
            let block = try #require(malloc(blockBytes))
            memset(block, 1, blockBytes)
            pointers.append(block)
        }
        let live = stride(from: 0, to: blocks, by: 16).map { pointers[$0] }
        defer { live.forEach { free($0) } }
        for (index, block) in pointers.enumerated() where index % 16 != 0 { free(block) }
        let freedBytes = (blocks - live.count) * blockBytes
        let before = try residentBytes()
        FreedMemory.returnToSystem()
        let after = try residentBytes()
        // At least a quarter of what was freed, so that other tests allocating meanwhile cannot decide it.
        #expect(before - after >= freedBytes / 4, "RSS \(before >> 20) MB -> \(after >> 20) MB after freeing \(freedBytes >> 20) MB")
    }
}
#endif
