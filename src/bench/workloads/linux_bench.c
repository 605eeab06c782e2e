/* linux_bench: what minivmm-bench linux times inside an ordinary static
 * Linux program, the same binary natively and under minivmm-run --linux:
 *
 *     linux_bench getppid N   N getppid system calls (no libc cache, no vDSO)
 *     linux_bench clock N     N clock_gettime(CLOCK_MONOTONIC): the vDSO's
 *     linux_bench hello       "hello, world" and exit 0 (start-up)
 *
 * Timed with the TSC (native in a guest too), between lfences; prints
 * "getppid: N calls, C cycles/call" or "clock: N reads, C cycles/read".
 * Exit status 0, or 2 on a bad command line. */
#define _GNU_SOURCE

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t tsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
}

static int usage(void) {
    fputs("usage: linux_bench getppid N | clock N | hello\n", stderr);
    return 2;
}

int main(int argc, char** argv) {
    if (argc == 2 && strcmp(argv[1], "hello") == 0) {
        static const char line[] = "hello, world\n";
        return write(1, line, sizeof line - 1) == (ssize_t)(sizeof line - 1) ? 0 : 1;
    }
    if (argc != 3) return usage();
    char* end = NULL;
    const unsigned long long n = strtoull(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || n == 0 || n > (1ull << 40)) return usage();
    if (strcmp(argv[1], "getppid") == 0) {
        long sink = 0;
        const uint64_t t0 = tsc();
        for (unsigned long long i = 0; i < n; ++i)
            sink += syscall(SYS_getppid); /* the system call itself, every time */
        const uint64_t cycles = tsc() - t0;
        printf("getppid: %llu calls, %.1f cycles/call (ppid sum %ld)\n", n, (double)cycles / n,
               sink);
        return 0;
    }
    if (strcmp(argv[1], "clock") == 0) {
        struct timespec t;
        uint64_t sink = 0;
        const uint64_t t0 = tsc();
        for (unsigned long long i = 0; i < n; ++i) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            sink += (uint64_t)t.tv_nsec;
        }
        const uint64_t cycles = tsc() - t0;
        printf("clock: %llu reads, %.1f cycles/read (sum %llu)\n", n, (double)cycles / n,
               (unsigned long long)(sink & 0xffff));
        return 0;
    }
    return usage();
}
