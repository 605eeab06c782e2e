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

#define BLK_HC_INFO 17
#define BLK_HC_IO 18
#define BLK_HC_RING_SETUP 20
#define BLK_HC_KICK 21
#define BLK_SECTOR_SIZE 512u

#define BLK_FLAG_READONLY 1u
#define BLK_FLAG_RING 2u

#define BLK_OP_READ 0u
#define BLK_OP_WRITE 1u
#define BLK_OP_FLUSH 2u

#define BLK_OK 0u
#define BLK_E_BAD_OP 1u
#define BLK_E_RANGE 2u
#define BLK_E_BUFFER 3u
#define BLK_E_IO 4u
#define BLK_E_READONLY 5u
#define BLK_E_LENGTH 6u
#define BLK_E_BAD_RING 7u
#define BLK_E_BAD_QUEUE 8u
#define BLK_PENDING (~0ull)

struct blk_info {
    uint64_t sectors; /* disk size in 512-byte sectors */
    uint64_t flags;   /* BLK_FLAG_READONLY */
};

struct blk_io {
    uint64_t op;     /* BLK_OP_* */
    uint64_t sector; /* first sector */
    uint64_t buf;    /* guest-physical (= virtual) address of the buffer */
    uint64_t len;    /* bytes, a multiple of 512, > 0 (read/write) */
    uint64_t status; /* BLK_OK or BLK_E_*, written by the VMM */
};

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

struct blk_ring_setup {
    uint64_t ring;    /* guest-physical address of the ring */
    uint64_t entries; /* a power of two, <= 1024 */
    uint64_t queue;   /* 0 .. vCPUs - 1, once each */
    uint64_t status;  /* written by the VMM */
};

struct blk_ring_entry {
    uint64_t op, sector, buf, len; /* as struct blk_io */
    uint64_t status;               /* BLK_PENDING until the VMM completes it */
    uint64_t tag;                  /* ours; the VMM leaves it alone */
    uint64_t pad[2];
};

#define BLK_RING_ENTRIES 16u

/* Header layout is the ABI's (128 bytes), then the entries. */
struct blk_ring {
    uint64_t entries; /* BLK_RING_ENTRIES */
    uint64_t queue;   /* as set up */
    uint64_t sq_tail; /* ours: requests submitted */
    uint64_t pad0[5];
    uint64_t sq_head;   /* VMM: requests taken */
    uint64_t need_kick; /* VMM: 1 = ring the doorbell after submitting */
    uint64_t pad1[6];
    struct blk_ring_entry ent[BLK_RING_ENTRIES];
} __attribute__((aligned(64)));

/* Sets up `r` as queue `queue`; returns the status (BLK_OK, BLK_E_BAD_RING,
 * BLK_E_BAD_QUEUE). */
static inline uint64_t blk_ring_init(struct blk_ring* r, uint64_t queue) {
    struct blk_ring_setup s;
    uint32_t i;
    r->entries = BLK_RING_ENTRIES;
    r->queue = queue;
    r->sq_tail = 0;
    r->sq_head = 0;
    r->need_kick = 1;
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
    uint64_t k = r->sq_tail;
    struct blk_ring_entry* e = &r->ent[k & (BLK_RING_ENTRIES - 1)];
    while (k - __atomic_load_n(&r->sq_head, __ATOMIC_ACQUIRE) >= BLK_RING_ENTRIES)
        mvg_pause();
    e->op = op;
    e->sector = sector;
    e->buf = (uint64_t)(uintptr_t)buf;
    e->len = len;
    e->tag = tag;
    __atomic_store_n(&e->status, BLK_PENDING, __ATOMIC_RELAXED);
    __atomic_store_n(&r->sq_tail, k + 1, __ATOMIC_RELEASE); /* publishes the entry */
    return k;
}

/* Rings the doorbell if the VMM asks for it. The full fence orders our tail
 * store before the need_kick load; the VMM stores need_kick = 1, fences and
 * re-reads the tail before it sleeps, so one of the two sees the other. */
static inline void blk_ring_notify(struct blk_ring* r) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->need_kick, __ATOMIC_ACQUIRE))
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
