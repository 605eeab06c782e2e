/* sysbench 1.0 "threads" test core. Plain C (also valid C++), no libc, no
 * OS or SDK calls: compiled into the sb_threads guest and into the native
 * runner.
 *
 * sysbench: the event gets lock_num = (req_performed++) % thread_locks (a
 * global atomic counter, see sb_threads_next_lock) and then does
 * --thread-yields times { lock mutex[lock_num]; sched_yield(); unlock }.
 * Differences: the lock is sb_spinlock (see sb_mutex.h for why), and each
 * round also increments the lock's counter while holding it, so the sum over
 * locks is exactly events * thread_yields (tests check no lost updates).
 *
 * "yield" is supplied by the caller, chosen with --thread-yield (sb_opts.h):
 *  - pause (default): a burst of --yield-pauses `pause` instructions
 *    (sb_pause_burst), the same code natively and in a guest, so the two
 *    sides compare like for like; the thread keeps its CPU while holding
 *    the lock, and the host kernel alone decides on preemption;
 *  - sched: the thread gives its CPU to the scheduler while holding the
 *    lock: natively sched_yield(), as sysbench does; in a guest (ring 3, no
 *    OS) the yield hypercall, on which the VMM's vCPU thread calls
 *    sched_yield(), so the guest pays one exit to user space per yield. */
#ifndef MINIVMM_WORKLOADS_SB_THREADS_H
#define MINIVMM_WORKLOADS_SB_THREADS_H

#include <stdint.h>

#include "sb_mutex.h"

#define SB_THREADS_DEFAULT_YIELDS 1000u
#define SB_THREADS_DEFAULT_LOCKS 8u

typedef void (*sb_yield_fn)(void* arg);

/* sysbench's threads_next_event: lock number for the next event. */
static inline uint32_t sb_threads_next_lock(uint64_t* req_performed, uint32_t thread_locks) {
    return (uint32_t)(__atomic_fetch_add(req_performed, 1, __ATOMIC_RELAXED) % thread_locks);
}

/* The guest's yield: `pause` x n (about 40-140 cycles each, CPU dependent). */
static inline void sb_pause_burst(uint32_t n) {
    uint32_t i;
    for (i = 0; i < n; i++)
        sb_cpu_relax();
}

/* One sysbench threads event on locks[lock_num]. */
static inline void sb_threads_event(struct sb_spinlock* locks, uint32_t lock_num,
                                    uint32_t thread_yields, sb_yield_fn yield, void* yield_arg) {
    uint32_t i;
    for (i = 0; i < thread_yields; i++) {
        sb_spin_lock(&locks[lock_num]);
        locks[lock_num].counter++;
        yield(yield_arg);
        sb_spin_unlock(&locks[lock_num]);
    }
}

#endif
