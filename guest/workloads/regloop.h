/* Register-only workload shared by the regloop guest and native benchmarks.
 * Plain C (also valid C++) with inline asm and no OS or SDK calls, so it
 * compiles unchanged in a freestanding guest and in a normal host program. */
#ifndef MINIVMM_WORKLOADS_REGLOOP_H
#define MINIVMM_WORKLOADS_REGLOOP_H

#include <stdint.h>

#if !defined(__x86_64__)
#error "mv_regloop is x86-64 only"
#endif

/* `iterations` rounds of a dependent imul/add/xor chain on registers:
 *   a = a * K + b;  b ^= a;
 * The map is a bijection (K odd), so the state never collapses to a fixed
 * point, and each round waits for the previous one: about 4 cycles (imul
 * latency 3 + add 1). Written in asm so the compiler can neither fold nor
 * vectorise it and every build runs the same instructions. Returns a value
 * derived from the final state, to be consumed by the caller. */
static inline uint64_t mv_regloop(uint64_t iterations) {
    uint64_t a = 1, b = 0x9e3779b97f4a7c15ull;
    if (iterations == 0) return a ^ b;
    __asm__ volatile("1:\n\t"
                     "imulq $0x5851f42d, %[a], %[a]\n\t"
                     "addq %[b], %[a]\n\t"
                     "xorq %[a], %[b]\n\t"
                     "decq %[n]\n\t"
                     "jnz 1b"
                     : [a] "+r"(a), [b] "+r"(b), [n] "+r"(iterations)
                     :
                     : "cc");
    return a ^ b;
}

#endif
