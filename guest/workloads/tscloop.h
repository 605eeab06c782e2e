/* Back-to-back TSC reads, shared by the tscloop guest and minivmm-bench
 * foundation's native side: what one clock read costs on each side. Every
 * sysbench-style event reads the clock twice, so on short events (a 130 ns
 * 8K memory read) the difference shows in the overhead table. */
#ifndef MINIVMM_WORKLOADS_TSCLOOP_H
#define MINIVMM_WORKLOADS_TSCLOOP_H

#include <stdint.h>

/* n rdtsc instructions; returns the TSC cycles they took (one more read at
 * each end). The sum of the reads is folded into *sink so that none can be
 * dropped. */
static inline uint64_t mv_tscloop(uint64_t n, uint64_t* sink) {
    uint32_t lo, hi;
    uint64_t t0, t1, sum = 0, i;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    t0 = ((uint64_t)hi << 32) | lo;
    for (i = 0; i < n; i++) {
        __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
        sum += ((uint64_t)hi << 32) | lo;
    }
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    t1 = ((uint64_t)hi << 32) | lo;
    *sink += sum;
    return t1 - t0;
}

#endif
