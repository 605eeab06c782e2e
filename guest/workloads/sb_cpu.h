/* sysbench 1.0 "cpu" test core. Plain C (also valid C++), no libc, no OS or
 * SDK calls: compiled into the sb_cpu guest and into the native runner.
 *
 * One event = one full pass of sysbench's cpu_execute_event: every c in
 * [3, max_prime) is tested for primality by trial division with every l in
 * [2, sqrt(c)], using 64-bit integer division like sysbench (unsigned long
 * long c, l; double t). sysbench throws the count away; we return it so
 * tests can check the work was done (2261 for max_prime 20000). */
#ifndef MINIVMM_WORKLOADS_SB_CPU_H
#define MINIVMM_WORKLOADS_SB_CPU_H

#include <stdint.h>

#if !defined(__x86_64__)
#error "sb_cpu.h is x86-64 only"
#endif

/* sqrt((double)c) as one SSE2 sqrtsd. Inline asm rather than
 * __builtin_sqrt: the guest is built with -fno-builtin and with errno
 * semantics (no -fno-math-errno), where the compiler would emit a fallback
 * call to libm's sqrt that does not exist in the guest. sqrtsd is what libm
 * returns for every non-negative input, so the results are identical. */
static inline double sb_sqrt(double x) {
    double r;
    __asm__("sqrtsd %1, %0" : "=x"(r) : "x"(x));
    return r;
}

/* Default of sysbench's --cpu-max-prime. */
#define SB_CPU_DEFAULT_MAX_PRIME 10000u

/* One sysbench cpu event; returns the number of primes in [3, max_prime). */
static inline uint64_t sb_cpu_event(uint64_t max_prime) {
    uint64_t c, l, n = 0;
    double t;
    for (c = 3; c < max_prime; c++) {
        t = sb_sqrt((double)c);
        for (l = 2; (double)l <= t; l++)
            if (c % l == 0) break;
        if ((double)l > t) n++;
    }
    return n;
}

#endif
