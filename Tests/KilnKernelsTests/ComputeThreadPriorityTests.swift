import CKilnSIMD
import Foundation
import Testing

@testable import KilnKernels

/// Engine threads take one nice value instead of whatever their creator had (a Dispatch thread of
/// `.utility` quality of service runs at nice +2 on Linux, and its children inherit that).
@Suite struct ComputeThreadPriorityTests {
    /// Runs `body` on a fresh pthread and returns its result.
    private func onNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let box = ResultBox<T>()
        let thread = Thread { box.value = body(); box.done.signal() }
        thread.start()
        box.done.wait()
        return box.value!
    }

    @Test func aThreadThatInheritedALowerPriorityGetsTheEngineValue() throws {
        let target = try #require(ComputeThreadPriority.nice)
        let (before, applied, after) = onNewThread { () -> (Int32, Bool, Int32) in
            _ = kiln_set_thread_nice(min(target + 2, 19))  // what a .utility Dispatch thread passes on
            let before = kiln_thread_nice()
            let applied = ComputeThreadPriority.applyToCurrentThread()
            return (before, applied, kiln_thread_nice())
        }
        #expect(before == min(target + 2, 19))
        if applied {
            #expect(after == target)
        } else {
            // No CAP_SYS_NICE: raising priority is refused and the thread keeps its value.
            #expect(after == before)
        }
    }

    @Test func niceValuesArePerThread() {
        let mine = kiln_thread_nice()
        let other = onNewThread { () -> Int32 in
            _ = kiln_set_thread_nice(min(mine + 3, 19))
            return kiln_thread_nice()
        }
        #expect(other == min(mine + 3, 19))
        #expect(kiln_thread_nice() == mine)  // this thread is untouched
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
    let done = DispatchSemaphore(value: 0)
}
