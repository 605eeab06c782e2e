/* sysbench 1.0 "mutex" test core, and the spinlock shared with sb_threads.h.
 * Plain C (also valid C++), no libc, no OS or SDK calls: compiled into the
 * sb_mutex guest and into the native runner, so both run the same lock.
 *
 * sysbench's mutex_execute_event does, --mutex-locks times:
 *     current_lock = rand() % mutex_num;
 *     for (i = 0; i < mutex_loops; i++) c++;
 *     pthread_mutex_lock(&thread_locks[current_lock].mutex);
 *     global_var++;
 *     pthread_mutex_unlock(&thread_locks[current_lock].mutex);
 * and every thread runs exactly one such event (mutex_next_event hands out
 * one request per thread). Differences here, all deliberate:
 *  - the lock is sb_spinlock (test-and-test-and-set on GCC __atomic
 *    builtins), not pthread_mutex_t: a ring-3 guest has no futex or
 *    scheduler to sleep on, and the native side must run the same code;
 *  - rand() is a per-thread xorshift64 (glibc's rand() takes a global lock);
 *  - the empty loop counts in a volatile variable, so it really runs
 *    mutex_loops iterations (sysbench's plain `c++` may be deleted by its
 *    compiler);
 *  - sysbench increments one global_var under whichever lock it picked (a
 *    data race between different locks); here each lock protects its own
 *    counter, so the sum over locks is exactly events * mutex_locks and the
 *    tests can check that no update was lost;
 *  - the number of events is the caller's business (the runners default to
 *    one per thread, like sysbench). */
#ifndef MINIVMM_WORKLOADS_SB_MUTEX_H
#define MINIVMM_WORKLOADS_SB_MUTEX_H

#include <stdint.h>

#if !defined(__x86_64__)
#error "sb_mutex.h is x86-64 only"
#endif

#define SB_MUTEX_DEFAULT_NUM 4096u
#define SB_MUTEX_DEFAULT_LOCKS 50000u
#define SB_MUTEX_DEFAULT_LOOPS 10000u

/* One lock per 64-byte cache line (sysbench pads its locks too), with the
 * counter it protects in the same line. */
struct sb_spinlock {
    uint32_t locked; /* 0 free, 1 held */
    uint32_t pad0;
    uint64_t counter; /* protected by `locked` */
    uint64_t pad1[6];
} __attribute__((aligned(64)));

static inline void sb_cpu_relax(void) {
    __asm__ volatile("pause" ::: "memory");
}

static inline void sb_spin_init(struct sb_spinlock* l) {
    __atomic_store_n(&l->locked, 0u, __ATOMIC_RELAXED);
    l->counter = 0;
}

/* Test-and-test-and-set: spin on plain loads (the line stays shared in the
 * caches) and only try the exchange when the lock looks free. */
static inline void sb_spin_lock(struct sb_spinlock* l) {
    for (;;) {
        if (__atomic_exchange_n(&l->locked, 1u, __ATOMIC_ACQUIRE) == 0u) return;
        while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0u)
            sb_cpu_relax();
    }
}

static inline void sb_spin_unlock(struct sb_spinlock* l) {
    __atomic_store_n(&l->locked, 0u, __ATOMIC_RELEASE);
}

/* Per-thread PRNG (xorshift64); the state must not be 0. */
static inline uint64_t sb_xorshift64(uint64_t* state) {
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

/* A non-zero PRNG seed for thread `tid` (splitmix64 of tid). */
static inline uint64_t sb_rng_seed(uint64_t tid) {
    uint64_t z = (tid + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 1;
}

/* One sysbench mutex event on locks[0..mutex_num). mutex_locks 0 counts as
 * 1, like sysbench's do { } while loop. */
static inline void sb_mutex_event(struct sb_spinlock* locks, uint32_t mutex_num,
                                  uint32_t mutex_locks, uint32_t mutex_loops, uint64_t* rng) {
    uint32_t n = mutex_locks;
    do {
        uint32_t current_lock = (uint32_t)(sb_xorshift64(rng) % mutex_num);
        volatile uint32_t c = 0;
        uint32_t i;
        for (i = 0; i < mutex_loops; i++)
            c = c + 1;
        sb_spin_lock(&locks[current_lock]);
        locks[current_lock].counter++;
        sb_spin_unlock(&locks[current_lock]);
    } while (n > 0 && --n > 0);
}

/* Sum of the counters of locks[0..num): call when no thread runs events. */
static inline uint64_t sb_locks_total(const struct sb_spinlock* locks, uint32_t num) {
    uint64_t sum = 0;
    uint32_t i;
    for (i = 0; i < num; i++)
        sum += locks[i].counter;
    return sum;
}

#endif
