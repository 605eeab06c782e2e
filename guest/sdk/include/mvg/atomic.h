/* Small wrappers over the GCC __atomic builtins (they compile inline; no
 * library). For sharing data between vCPUs: all of RAM is shared. */
#ifndef MVG_ATOMIC_H
#define MVG_ATOMIC_H

#include <mvg/defs.h>

/* Spin-wait hint; unprivileged, unlike hlt. */
static inline void mvg_pause(void) {
    __asm__ volatile("pause" ::: "memory");
}

/* Returns the old value. */
static inline uint64_t mvg_atomic_add(uint64_t* p, uint64_t v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
static inline uint64_t mvg_atomic_load(const uint64_t* p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void mvg_atomic_store(uint64_t* p, uint64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
/* Returns nonzero if *p was `expected` and is now `desired`. */
static inline int mvg_atomic_cas(uint64_t* p, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL,
                                       __ATOMIC_ACQUIRE);
}
/* Spins until *p >= v. */
static inline void mvg_wait_ge(const uint64_t* p, uint64_t v) {
    while (mvg_atomic_load(p) < v)
        mvg_pause();
}

#endif
