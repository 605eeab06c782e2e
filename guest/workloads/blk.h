/* Guest side of minivmm's paravirtual block device (README "Block device"):
 * the two minivmm-defined hypercalls, blk_info (17) and blk_io (18), and
 * tiny wrappers. Guest-only (uses the SDK's mvg_hypercall, which bounces
 * the argument block below 4 GiB and copies it back, so the status comes
 * back even from a stack block above 4 GiB). */
#ifndef MINIVMM_WORKLOADS_BLK_H
#define MINIVMM_WORKLOADS_BLK_H

#include <mvg/mvg.h>

#define BLK_HC_INFO 17
#define BLK_HC_IO 18
#define BLK_SECTOR_SIZE 512u

#define BLK_FLAG_READONLY 1u

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

#endif
