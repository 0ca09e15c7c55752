// Thread helpers Swift's Glibc module does not expose (GNU extensions).
#define _GNU_SOURCE
#include <pthread.h>

#include "kiln_simd.h"

void kiln_set_thread_name(const char *name) {
#if defined(__linux__)
    pthread_setname_np(pthread_self(), name);  // at most 15 bytes are kept
#else
    (void)name;
#endif
}
