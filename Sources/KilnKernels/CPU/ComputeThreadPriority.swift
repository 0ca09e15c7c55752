import CKilnSIMD

#if canImport(Glibc)
import Glibc
#endif

/// The scheduling priority (Linux nice value) of the threads that run engine work: the compute
/// pool's workers and the threads that call an engine (the server's batcher threads).
///
/// Why: on Linux a new thread inherits its creator's nice value, and the threads that create
/// Kiln's compute workers are often Dispatch threads whose quality of service set a nice value:
/// a model loaded in a `.utility` task left its compute worker at nice +2 while the server's
/// HTTP threads ran at -2, so every HTTP request preempted the engine in the middle of a parallel
/// region and its partner thread waited at the region's end. Engine threads therefore take one
/// nice value explicitly: `KILN_COMPUTE_NICE` if set, else the nice value of the process's main
/// thread. Raising priority above the current value needs CAP_SYS_NICE (root has it); without it
/// the thread keeps what it has.
public enum ComputeThreadPriority {
    /// The nice value engine threads take; nil when none can be determined.
    public static let nice: Int32? = {
        if let raw = getenv("KILN_COMPUTE_NICE"), let value = Int32(String(cString: raw).trimmingSpaces), (-20...19).contains(value) {
            return value
        }
        return mainThreadNice
    }()

    /// The main thread's nice value; nil where it cannot be read (outside the -20...19 range).
    private static let mainThreadNice: Int32? = {
        let value = kiln_main_thread_nice(Int32.max)
        return value == Int32.max ? nil : value
    }()

    /// Gives the calling thread the engine threads' nice value. Returns false when the system
    /// refused (no CAP_SYS_NICE to raise priority); the thread then keeps its value.
    @discardableResult
    public static func applyToCurrentThread() -> Bool {
        guard let nice, kiln_thread_nice() != nice else { return true }
        return kiln_set_thread_nice(nice) == 0
    }
}

private extension String {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
