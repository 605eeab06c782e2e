/* sysbench 1.0 "memory" test core (sequential access), plus a "large
 * region" first-touch mode. Plain C (also valid C++), no libc, no OS or SDK
 * calls: compiled into the sb_memory guest and into the native runner.
 *
 * sysbench: one event reads or writes one block of --memory-block-size
 * bytes, word by word from its start (size_t words, seq mode); with
 * --memory-scope=global all threads use one shared block, with local each
 * thread has its own; the run stops after --memory-total-size bytes (so
 * total/block events). Every access here goes through a volatile size_t
 * pointer, like sysbench's ck_pr loads/stores: exactly one 8-byte load or
 * store per word, never vectorised, merged or turned into memset.
 * Difference: sysbench's read loop discards the value; ours adds it into
 * checksums (one register add per word, four independent sums) so the
 * caller can check it. */
#ifndef MINIVMM_WORKLOADS_SB_MEMORY_H
#define MINIVMM_WORKLOADS_SB_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#define SB_MEM_PAGE_SIZE 4096u

/* Initial (untimed) contents of a block: word i = i * golden ratio. sysbench
 * zeroes the block; a non-zero pattern makes read checksums meaningful. */
static inline void sb_mem_init_block(void* block, size_t bytes) {
    volatile size_t* w = (volatile size_t*)block;
    size_t n = bytes / sizeof(size_t), i;
    for (i = 0; i < n; i++)
        w[i] = (size_t)(i * 0x9e3779b97f4a7c15ull);
}

/* One write event: `*buf = tmp` for every word of the block. With global
 * scope every thread writes the same block at once, as sysbench does: the
 * words are relaxed atomic stores, which compile to the same plain `mov` as
 * sysbench's stores but tell ThreadSanitizer the sharing is intended. */
static inline void sb_mem_write_event(void* block, size_t bytes, size_t tmp) {
    volatile size_t* buf = (volatile size_t*)block;
    volatile size_t* end = buf + bytes / sizeof(size_t);
    for (; buf < end; buf++)
        __atomic_store_n(buf, tmp, __ATOMIC_RELAXED);
}

/* One read event: `tmp = *buf` for every word (relaxed atomic loads, plain
 * `mov`s, for the same reason); returns the sum of the words. Four
 * independent sums: one running sum would chain every load through one add
 * (one word per cycle), while sysbench's discarded loads issue two per cycle;
 * measured on the first version of this loop: 58% of sysbench's rate. */
static inline uint64_t sb_mem_read_event(const void* block, size_t bytes) {
    const volatile size_t* buf = (const volatile size_t*)block;
    const volatile size_t* end = buf + bytes / sizeof(size_t);
    const volatile size_t* end4 = buf + bytes / sizeof(size_t) / 4 * 4;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; buf < end4; buf += 4) {
        s0 += __atomic_load_n(buf, __ATOMIC_RELAXED);
        s1 += __atomic_load_n(buf + 1, __ATOMIC_RELAXED);
        s2 += __atomic_load_n(buf + 2, __ATOMIC_RELAXED);
        s3 += __atomic_load_n(buf + 3, __ATOMIC_RELAXED);
    }
    for (; buf < end; buf++)
        s0 += __atomic_load_n(buf, __ATOMIC_RELAXED);
    return s0 + s1 + s2 + s3;
}

/* Large-region mode: writes one byte in every 4 KiB page of
 * [region, region + bytes) (the first touch of fresh memory included, so a
 * page fault / EPT or shadow-page fault is part of the cost). Returns the
 * number of pages touched: ceil(bytes / 4096). */
static inline uint64_t sb_mem_touch_pages(void* region, size_t bytes) {
    volatile unsigned char* p = (volatile unsigned char*)region;
    uint64_t pages = 0;
    size_t off;
    for (off = 0; off < bytes; off += SB_MEM_PAGE_SIZE) {
        p[off] = (unsigned char)(pages + 1);
        pages++;
    }
    return pages;
}

#endif
