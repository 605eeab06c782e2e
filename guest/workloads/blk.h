/* Guest side of minivmm's paravirtual block device (README "Block device"):
 * the minivmm-defined hypercalls blk_info (17) and blk_io (18), request
 * rings (blk_ring_setup 20, doorbell blk_kick 21) and tiny wrappers.
 * Guest-only (uses the SDK's mvg_hypercall, which bounces the argument
 * block below 4 GiB and copies it back, so the status comes back even from
 * a stack block above 4 GiB).
 *
 * Rings: blk_info's flags say whether the VMM serves them
 * (BLK_FLAG_RING). A queue is a struct blk_ring (64-byte aligned, below
 * 4 GiB: put it in .bss) set up once with blk_ring_init; then
 * blk_ring_submit + blk_ring_notify + blk_ring_wait, or blk_q_request for
 * one synchronous request. Completions are read from the ring (a ring-3
 * guest takes no interrupts); the doorbell is needed only while the VMM
 * says so (need_kick), which it stops saying while an I/O thread polls. */
#ifndef MINIVMM_WORKLOADS_BLK_H
#define MINIVMM_WORKLOADS_BLK_H

#include <mvg/mvg.h>

#include <minivmm/abi/block.h> /* numbers, statuses, blocks, ring layout */

static inline void blk_get_info(struct blk_info* out) {
    out->sectors = 0;
    out->flags = 0;
    mvg_hypercall(BLK_HC_INFO, out, sizeof *out);
}

/* One request; returns its status. */
static inline uint64_t blk_request(uint64_t op, uint64_t sector, void* buf, uint64_t len) {
    struct blk_io io;
    io.op = op;
    io.sector = sector;
    io.buf = (uint64_t)(uintptr_t)buf;
    io.len = len;
    io.status = ~0ull;
    mvg_hypercall(BLK_HC_IO, &io, sizeof io);
    return io.status;
}

static inline uint64_t blk_read(uint64_t sector, void* buf, uint64_t len) {
    return blk_request(BLK_OP_READ, sector, buf, len);
}
static inline uint64_t blk_write(uint64_t sector, const void* buf, uint64_t len) {
    return blk_request(BLK_OP_WRITE, sector, (void*)(uintptr_t)buf, len);
}
/* Completes once everything written before is on stable storage. */
static inline uint64_t blk_flush(void) {
    return blk_request(BLK_OP_FLUSH, 0, 0, 0);
}

#define BLK_RING_ENTRIES 16u

/* A ring with BLK_RING_ENTRIES entries: the ABI's header, then the entries. */
struct blk_ring {
    struct blk_ring_header hdr;
    struct blk_ring_entry ent[BLK_RING_ENTRIES];
} __attribute__((aligned(64)));

/* Sets up `r` as queue `queue`; returns the status (BLK_OK, BLK_E_BAD_RING,
 * BLK_E_BAD_QUEUE). */
static inline uint64_t blk_ring_init(struct blk_ring* r, uint64_t queue) {
    struct blk_ring_setup s;
    uint32_t i;
    r->hdr.entries = BLK_RING_ENTRIES;
    r->hdr.queue = queue;
    r->hdr.sq_tail = 0;
    r->hdr.sq_head = 0;
    r->hdr.need_kick = 1;
    for (i = 0; i < BLK_RING_ENTRIES; i++)
        r->ent[i].status = 0;
    s.ring = (uint64_t)(uintptr_t)r;
    s.entries = BLK_RING_ENTRIES;
    s.queue = queue;
    s.status = ~0ull;
    mvg_hypercall(BLK_HC_RING_SETUP, &s, sizeof s);
    return s.status;
}

/* Queues one request (waits while the ring is full); returns its number,
 * for blk_ring_wait. Nothing reaches the VMM before blk_ring_notify. */
static inline uint64_t blk_ring_submit(struct blk_ring* r, uint64_t op, uint64_t sector, void* buf,
                                       uint64_t len, uint64_t tag) {
    uint64_t k = r->hdr.sq_tail;
    struct blk_ring_entry* e = &r->ent[k & (BLK_RING_ENTRIES - 1)];
    while (k - __atomic_load_n(&r->hdr.sq_head, __ATOMIC_ACQUIRE) >= BLK_RING_ENTRIES)
        mvg_pause();
    e->op = op;
    e->sector = sector;
    e->buf = (uint64_t)(uintptr_t)buf;
    e->len = len;
    e->tag = tag;
    __atomic_store_n(&e->status, BLK_PENDING, __ATOMIC_RELAXED);
    __atomic_store_n(&r->hdr.sq_tail, k + 1, __ATOMIC_RELEASE); /* publishes the entry */
    return k;
}

/* Rings the doorbell if the VMM asks for it. The full fence orders our tail
 * store before the need_kick load; the VMM stores need_kick = 1, fences and
 * re-reads the tail before it sleeps, so one of the two sees the other. */
static inline void blk_ring_notify(struct blk_ring* r) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->hdr.need_kick, __ATOMIC_ACQUIRE))
        mvg_hypercall_raw(BLK_HC_KICK, (uint32_t)(uintptr_t)r);
}

/* Waits for request k; returns its status. */
static inline uint64_t blk_ring_wait(struct blk_ring* r, uint64_t k) {
    const struct blk_ring_entry* e = &r->ent[k & (BLK_RING_ENTRIES - 1)];
    uint64_t st;
    while ((st = __atomic_load_n(&e->status, __ATOMIC_ACQUIRE)) == BLK_PENDING)
        mvg_pause();
    return st;
}

/* One synchronous request through ring r, or through blk_io when r is 0. */
static inline uint64_t blk_q_request(struct blk_ring* r, uint64_t op, uint64_t sector, void* buf,
                                     uint64_t len) {
    uint64_t k;
    if (!r) return blk_request(op, sector, buf, len);
    k = blk_ring_submit(r, op, sector, buf, len, 0);
    blk_ring_notify(r);
    return blk_ring_wait(r, k);
}

#endif
