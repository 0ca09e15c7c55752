import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Random access to a plan's bytes, so that ``PlanFile`` can validate and decode a plan without
/// holding all of it in memory at once (a file is read piece by piece; bytes already in memory
/// are sliced).
protocol PlanBytes {
    /// Total size in bytes.
    var count: Int { get }
    /// Copies `range` (within `0..<count`) into `destination` (exactly `range.count` bytes).
    func read(_ range: Range<Int>, into destination: UnsafeMutableRawBufferPointer) throws
}

extension PlanBytes {
    /// The bytes of `range` as an array.
    func read(_ range: Range<Int>) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: range.count) { buffer, initialized in
            try read(range, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = range.count
        }
    }
}

/// Plan bytes already in memory (tests, fuzzing, plans received over the wire).
struct DataPlanBytes: PlanBytes {
    let data: Data
    var count: Int { data.count }

    func read(_ range: Range<Int>, into destination: UnsafeMutableRawBufferPointer) throws {
        precondition(range.lowerBound >= 0 && range.upperBound <= data.count && destination.count == range.count)
        let base = data.startIndex
        data.copyBytes(to: destination.bindMemory(to: UInt8.self), from: (base + range.lowerBound)..<(base + range.upperBound))
    }
}

/// A plan file read with `pread` through one descriptor: every read sees the same file even if
/// `kiln build` atomically replaces the path meanwhile (the descriptor keeps the old inode).
final class PlanFileBytes: PlanBytes {
    private let descriptor: Int32
    let count: Int

    init(_ url: URL) throws {
        descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw KilnError.io(String(cString: strerror(errno))) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            close(descriptor)
            throw KilnError.io(String(cString: strerror(errno)))
        }
        count = Int(status.st_size)
    }

    deinit { close(descriptor) }

    func read(_ range: Range<Int>, into destination: UnsafeMutableRawBufferPointer) throws {
        precondition(destination.count == range.count)
        var done = 0
        while done < range.count {
            let got = pread(descriptor, destination.baseAddress! + done, range.count - done, off_t(range.lowerBound + done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                throw KilnError.io(got == 0 ? "the file ended early (was it truncated while loading?)" : String(cString: strerror(errno)))
            }
            done += got
        }
    }
}
