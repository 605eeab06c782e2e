/* TSC access. rdtsc is allowed at CPL 3 (the VMM leaves CR4.TSD clear). */
#ifndef MVG_TIME_H
#define MVG_TIME_H

#include <mvg/bootinfo.h>

/* lfence before: rdtsc does not start until earlier instructions are done;
 * lfence after: later instructions do not start before the TSC is read. */
static inline uint64_t mvg_rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}

/* TSC cycles to nanoseconds using bi->tsc_khz; returns cycles unchanged when
 * the frequency is unknown (0). Split in two so nothing overflows for any
 * realistic count and no 128-bit division (a libgcc call) is needed. */
static inline uint64_t mvg_tsc_to_ns(uint64_t cycles, const struct mvg_boot_info* bi) {
    uint64_t khz = bi->tsc_khz;
    if (khz == 0) return cycles;
    return cycles / khz * 1000000u + cycles % khz * 1000000u / khz;
}

#endif
