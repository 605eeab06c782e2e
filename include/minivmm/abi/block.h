/* minivmm's paravirtual block device (docs/guest-abi.md, "Block device"):
 * hypercalls blk_info (17) and blk_io (18), and request rings set up with
 * blk_ring_setup (20) whose doorbell is blk_kick (21): an outl of the ring's
 * address itself, no block. */
#ifndef MINIVMM_ABI_BLOCK_H
#define MINIVMM_ABI_BLOCK_H

#include "abi.h"

#define BLK_HC_INFO 17
#define BLK_HC_IO 18
#define BLK_HC_RING_SETUP 20
#define BLK_HC_KICK 21
#define BLK_SECTOR_SIZE 512u

/* blk_info flags */
#define BLK_FLAG_READONLY 1u
#define BLK_FLAG_RING 2u /* rings (20, 21) are served */

/* blk_io and ring entry op */
#define BLK_OP_READ 0u  /* disk to guest RAM */
#define BLK_OP_WRITE 1u /* guest RAM to disk */
#define BLK_OP_FLUSH 2u /* everything written before is on stable storage */

/* status, checked in this order for a request: op, read-only, length, range, buffer */
#define BLK_OK 0u
#define BLK_E_BAD_OP 1u
#define BLK_E_RANGE 2u      /* [sector, sector + len/512) is not inside the disk */
#define BLK_E_BUFFER 3u     /* [buf, buf + len) is not guest RAM, or a read into the first MiB */
#define BLK_E_IO 4u         /* the host read/write/fdatasync failed */
#define BLK_E_READONLY 5u   /* a write to a read-only disk */
#define BLK_E_LENGTH 6u     /* len is 0 or not a multiple of 512 */
#define BLK_E_BAD_RING 7u   /* blk_ring_setup: bad address, size or alignment */
#define BLK_E_BAD_QUEUE 8u  /* blk_ring_setup: queue out of range or already set up */
#define BLK_PENDING (~0ull) /* a ring entry's status while in flight */

#define BLK_RING_MAX_ENTRIES 1024u

/* 17: the VMM fills it in. */
struct blk_info {
    uint64_t sectors; /* disk size in 512-byte sectors */
    uint64_t flags;   /* BLK_FLAG_* */
};

/* 18: the guest fills op..len, the VMM writes only status. */
struct blk_io {
    uint64_t op;     /* BLK_OP_* */
    uint64_t sector; /* first sector (read/write) */
    uint64_t buf;    /* guest-physical address of the buffer (read/write) */
    uint64_t len;    /* bytes, a multiple of 512, > 0 (read/write) */
    uint64_t status; /* BLK_OK or BLK_E_* */
};

/* 20: the guest fills ring..queue, the VMM writes status. The ring is 64-byte
 * aligned, below 4 GiB, above the first MiB; entries a power of two up to
 * BLK_RING_MAX_ENTRIES; queue < the number of vCPUs, each set up once. */
struct blk_ring_setup {
    uint64_t ring;    /* guest-physical address of the struct blk_ring_header */
    uint64_t entries; /* entries after the header */
    uint64_t queue;
    uint64_t status; /* BLK_OK, BLK_E_BAD_RING or BLK_E_BAD_QUEUE */
};

/* A ring: this header, then `entries` struct blk_ring_entry. Counters are
 * free-running; request k lives in entry k % entries. The guest owns sq_tail
 * and the entries' request fields, the VMM sq_head, need_kick and the
 * entries' status (written last, with release order: the completion). */
struct blk_ring_header {
    uint64_t entries;   /* as set up (informational: the VMM keeps its own copy) */
    uint64_t queue;     /* as set up (informational) */
    uint64_t sq_tail;   /* guest: requests submitted */
    uint64_t pad0[5];   /* sq_head on a cache line of its own */
    uint64_t sq_head;   /* VMM: requests taken */
    uint64_t need_kick; /* VMM: 1 = not polling, ring the doorbell after submitting */
    uint64_t pad1[6];
};
struct blk_ring_entry {
    uint64_t op, sector, buf, len; /* as struct blk_io */
    uint64_t status;               /* BLK_PENDING until the VMM completes it */
    uint64_t tag;                  /* the guest's; the VMM leaves it alone */
    uint64_t pad[2];
};

MVG_ABI_ASSERT(sizeof(struct blk_info) == 16, "blk_info is 16 bytes");
MVG_ABI_ASSERT(sizeof(struct blk_io) == 40, "blk_io is 40 bytes");
MVG_ABI_ASSERT(offsetof(struct blk_io, status) == 32, "blk_io: status at 32");
MVG_ABI_ASSERT(sizeof(struct blk_ring_setup) == 32, "blk_ring_setup is 32 bytes");
MVG_ABI_ASSERT(offsetof(struct blk_ring_setup, status) == 24, "blk_ring_setup: status at 24");
MVG_ABI_ASSERT(sizeof(struct blk_ring_header) == 128, "ring header is 128 bytes");
MVG_ABI_ASSERT(offsetof(struct blk_ring_header, sq_tail) == 16, "ring: sq_tail at 16");
MVG_ABI_ASSERT(offsetof(struct blk_ring_header, sq_head) == 64, "ring: sq_head at 64");
MVG_ABI_ASSERT(offsetof(struct blk_ring_header, need_kick) == 72, "ring: need_kick at 72");
MVG_ABI_ASSERT(sizeof(struct blk_ring_entry) == 64, "ring entry is 64 bytes");
MVG_ABI_ASSERT(offsetof(struct blk_ring_entry, status) == 32, "ring entry: status at 32");
MVG_ABI_ASSERT(offsetof(struct blk_ring_entry, tag) == 40, "ring entry: tag at 40");

#endif
