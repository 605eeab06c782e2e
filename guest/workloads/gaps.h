/* Time taken away from a CPU-bound thread, shared by the gaps guest and
 * minivmm-bench foundation's native side: spin reading the TSC and add up
 * every gap between two reads longer than a threshold. Natively a gap is an
 * interrupt or a preemption; in a guest it is the same plus the world
 * switches around it, which is what a CPU-bound guest pays that a native
 * thread does not (the cpu row of the overhead benchmark). */
#ifndef MINIVMM_WORKLOADS_GAPS_H
#define MINIVMM_WORKLOADS_GAPS_H

#include <stdint.h>

struct mv_gaps {
    uint64_t spun;            /* TSC cycles spun in all */
    uint64_t gaps;            /* reads that came more than threshold cycles after the last */
    uint64_t lost;            /* cycles inside those gaps */
    uint64_t max;             /* longest gap */
    uint64_t over10, over100; /* gaps of >= 10x and >= 100x the threshold */
};

static inline uint64_t mv_gaps_rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* Spins for `cycles` TSC cycles, recording gaps longer than `threshold`. */
static inline void mv_gaps_run(uint64_t cycles, uint64_t threshold, struct mv_gaps* g) {
    uint64_t start = mv_gaps_rdtsc(), last = start, now;
    g->spun = g->gaps = g->lost = g->max = g->over10 = g->over100 = 0;
    do {
        uint64_t d;
        now = mv_gaps_rdtsc();
        d = now - last;
        if (d > threshold) {
            g->gaps++;
            g->lost += d;
            if (d > g->max) g->max = d;
            if (d >= 10 * threshold) g->over10++;
            if (d >= 100 * threshold) g->over100++;
        }
        last = now;
    } while (now - start < cycles);
    g->spun = now - start;
}

/* Adds one CPU's gaps to a total over several CPUs (max: the longest). */
static inline void mv_gaps_add(struct mv_gaps* sum, const struct mv_gaps* g) {
    sum->spun += g->spun;
    sum->gaps += g->gaps;
    sum->lost += g->lost;
    sum->over10 += g->over10;
    sum->over100 += g->over100;
    if (g->max > sum->max) sum->max = g->max;
}

#endif
