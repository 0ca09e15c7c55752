import KilnKernels

/// What a thread that calls engines should do before its first call.
public enum EngineThreads {
    /// Gives the calling thread the engine threads' scheduling priority (see
    /// `ComputeThreadPriority` in KilnKernels: `KILN_COMPUTE_NICE`, else the main thread's nice
    /// value), so the engine is not preempted by threads that merely inherited a higher one.
    /// Returns false when the system refused.
    @discardableResult
    public static func prepareCurrentThread() -> Bool {
        ComputeThreadPriority.applyToCurrentThread()
    }
}
