// oneDNN's C API (Debian: apt-get install libdnnl-dev), imported into Swift as CDNNL.
#include <oneapi/dnnl/dnnl.h>

// CPU feature detection for KilnKernels (Swift has no cpuid intrinsic). Header-only so the
// system-library target needs no compiled sources.
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/// Raw cpuid: writes eax, ebx, ecx, edx of (leaf, subleaf) to registers[0...3]; returns 0
/// when the leaf is above the CPU's maximum.
static inline int kiln_cpuid(unsigned int leaf, unsigned int subleaf, unsigned int registers[4]) {
    unsigned int maximum = __get_cpuid_max(leaf & 0x80000000u, 0);
    if (maximum < leaf) { registers[0] = registers[1] = registers[2] = registers[3] = 0; return 0; }
    __cpuid_count(leaf, subleaf, registers[0], registers[1], registers[2], registers[3]);
    return 1;
}

/// XCR0 (which register states the OS saves), or 0 when OSXSAVE is off.
static inline unsigned long long kiln_xgetbv0(void) {
    unsigned int registers[4];
    if (!kiln_cpuid(1, 0, registers) || !(registers[2] & (1u << 27))) return 0;
    unsigned int low, high;
    __asm__ volatile("xgetbv" : "=a"(low), "=d"(high) : "c"(0));
    return ((unsigned long long)high << 32) | low;
}
#else
static inline int kiln_cpuid(unsigned int leaf, unsigned int subleaf, unsigned int registers[4]) {
    (void)leaf; (void)subleaf; registers[0] = registers[1] = registers[2] = registers[3] = 0; return 0;
}
static inline unsigned long long kiln_xgetbv0(void) { return 0; }
#endif
