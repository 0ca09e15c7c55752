import Foundation

/// Makes `kiln serve` run any OpenMP team with passive waiting unless the user chose a policy.
///
/// Kiln's kernels run on its own ``ComputePool`` and call oneDNN one thread at a time, so no
/// OpenMP team starts in normal operation; this is the safety net for one that does (a oneDNN
/// primitive outside Kiln's GEMM wrappers). Why: with libgomp's default policy an idle team
/// thread spins for a while before it sleeps; a server has more runnable threads than cores, so
/// spinning threads steal the cores the request in flight needs (on a busy 2-core machine single
/// batch-1 calls once took ~1 s instead of ~30 ms).
///
/// Why a re-exec: libgomp reads `OMP_WAIT_POLICY` once, in its library constructor, which runs
/// before `main` (kiln links oneDNN, which links libgomp), so setting the variable in-process is
/// too late. The process replaces itself (same pid, same arguments) with the variable set; the
/// second start sees it set and goes on. A user's own `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` is
/// left alone (`KILN_OMP_WAIT_POLICY=keep` also disables this).
///
/// The same re-exec sets `MALLOC_ARENA_MAX=2` unless the user set it: glibc gives each thread that
/// allocates concurrently its own arena (up to 8 per core) and keeps their freed pages, so a
/// server's RSS crept up under steady load (soak, 2 min at 63 req/s: +4.6% with the default, +0.4%
/// with 2 arenas, same latency; glibc reads the variable once, at its first allocation).
enum OpenMPWaitPolicy {
    /// Re-executes the running binary with `OMP_WAIT_POLICY=passive` when no policy is set and
    /// `MALLOC_ARENA_MAX=2` when that is not set. Returns (without re-executing) when both are
    /// already decided or the re-exec fails.
    static func ensurePassive() {
        let environment = ProcessInfo.processInfo.environment
        let setWaitPolicy = environment["OMP_WAIT_POLICY"] == nil && environment["GOMP_SPINCOUNT"] == nil
            && environment["KILN_OMP_WAIT_POLICY"] != "keep"
        let setArenas = environment["MALLOC_ARENA_MAX"] == nil
        guard setWaitPolicy || setArenas else { return }
        if setWaitPolicy { setenv("OMP_WAIT_POLICY", "passive", 1) }
        if setArenas { setenv("MALLOC_ARENA_MAX", "2", 1) }
        let arguments = CommandLine.arguments
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", &argv)
        // Only reached when exec failed (no /proc): run on with the default policy, and say so.
        FileHandle.standardError.write(Data(
            "kiln: could not re-execute with OMP_WAIT_POLICY=passive (\(String(cString: strerror(errno)))); set it yourself for steady latency on busy machines\n".utf8))
        if setWaitPolicy { unsetenv("OMP_WAIT_POLICY") }
        if setArenas { unsetenv("MALLOC_ARENA_MAX") }
    }
}
