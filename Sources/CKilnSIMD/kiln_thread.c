// Thread helpers Swift's Glibc module does not expose (GNU extensions).
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>

#include "kiln_simd.h"

void kiln_set_thread_name(const char *name) {
#if defined(__linux__)
    pthread_setname_np(pthread_self(), name);  // at most 15 bytes are kept
#else
    (void)name;
#endif
}

#if defined(__linux__)
// The nice value of thread `tid` (on Linux PRIO_PROCESS with a thread id reads that one thread).
static int nice_of_thread(id_t tid, int fallback) {
    errno = 0;
    int value = getpriority(PRIO_PROCESS, tid);
    return errno == 0 ? value : fallback;
}
#endif

int kiln_thread_nice(void) {
#if defined(__linux__)
    return nice_of_thread((id_t)syscall(SYS_gettid), 0);
#else
    return 0;
#endif
}

int kiln_main_thread_nice(int fallback) {
#if defined(__linux__)
    return nice_of_thread((id_t)getpid(), fallback);  // the main thread's id is the process id
#else
    return fallback;
#endif
}

int kiln_set_thread_nice(int value) {
#if defined(__linux__)
    // On Linux a nice value belongs to one thread (its id), not to the whole process.
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), value) == 0 ? 0 : errno;
#else
    (void)value;
    return 0;
#endif
}
