/* Block device checks (tests/test_kvm_block.cpp); run with --disk FILE.
 *   info      prints "blk: sectors=N flags=F"; exit 0
 *   pattern   writes sectors 0..15 with byte (sector * 7 + i) & 0xff, flushes,
 *             reads them back and compares; exit 0 ok, 1 mismatch, 5 bad status
 *   bad       makes malformed requests, checks each status, then a good read;
 *             prints "blk-bad: ok N" and exits 0, or names the failing case
 *             and exits 1
 *   readonly  a write must get status 5, a read must work; exit 0 / 1
 *   badblock  blk_io with its argument block outside RAM: the VMM must stop
 *             the guest (exit 3 if it did not)
 *   batch     (needs rings) 8 writes submitted at once with one doorbell,
 *             a flush, then 8 reads the same way; prints "blk-batch: ok";
 *             exit 0, 1 mismatch, 5 bad status
 *   badkick   rings the doorbell with an address that is no ring: the VMM
 *             must stop the guest (exit 3 if it did not)
 *   durable   crash-consistency writer: round r = 1, 2, ... writes sectors
 *             [8(r-1), 8r), each stamped {magic, sector, round, fill}, then
 *             flushes and prints "durable: flushed r"; exit 0 when the disk
 *             is full. A test kills the VMM at some point and checks that
 *             every round reported flushed is on the host file.
 * pattern, bad and readonly go through a ring when the VMM serves rings
 * (queue 0), else through blk_io. Anything else: exit 2. */
#include <mvg/mvg.h>

#include "blk.h"

static unsigned char buf[16 * BLK_SECTOR_SIZE] __attribute__((aligned(4096)));
static struct blk_ring ring0, ring1;
static struct blk_ring* ring; /* &ring0 when the VMM serves rings */

static uint64_t rq(uint64_t op, uint64_t sector, void* b, uint64_t len) {
    return blk_q_request(ring, op, sector, b, len);
}

static int batch(void) {
    uint64_t k[8], i, j, st;
    if (!ring) return mvg_printf("blk-batch: no rings\n"), 2;
    for (i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 13 + 5);
    for (i = 0; i < 8; i++) /* sector 2i .. 2i+1 from buf + 1024 i */
        k[i] = blk_ring_submit(ring, BLK_OP_WRITE, 2 * i, buf + 1024 * i, 1024, i);
    blk_ring_notify(ring);
    for (i = 0; i < 8; i++)
        if ((st = blk_ring_wait(ring, k[i])) != BLK_OK) return mvg_printf("write %lu\n", st), 5;
    if ((st = rq(BLK_OP_FLUSH, 0, 0, 0)) != BLK_OK) return mvg_printf("flush %lu\n", st), 5;
    for (i = 0; i < sizeof buf; i++)
        buf[i] = 0;
    for (i = 0; i < 8; i++)
        k[i] = blk_ring_submit(ring, BLK_OP_READ, 2 * i, buf + 1024 * i, 1024, i);
    blk_ring_notify(ring);
    for (j = 0; j < 8; j++)
        if ((st = blk_ring_wait(ring, k[j])) != BLK_OK) return mvg_printf("read %lu\n", st), 5;
    for (i = 0; i < 8 * 1024; i++)
        if (buf[i] != (unsigned char)(i * 13 + 5)) return 1;
    mvg_printf("blk-batch: ok\n");
    return 0;
}

static int pattern(void) {
    uint64_t i, st;
    for (i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)((i / BLK_SECTOR_SIZE) * 7 + i);
    if ((st = rq(BLK_OP_WRITE, 0, buf, sizeof buf)) != BLK_OK)
        return mvg_printf("write %lu\n", st), 5;
    if ((st = rq(BLK_OP_FLUSH, 0, 0, 0)) != BLK_OK) return mvg_printf("flush %lu\n", st), 5;
    for (i = 0; i < sizeof buf; i++)
        buf[i] = 0;
    if ((st = rq(BLK_OP_READ, 0, buf, sizeof buf)) != BLK_OK)
        return mvg_printf("read %lu\n", st), 5;
    for (i = 0; i < sizeof buf; i++)
        if (buf[i] != (unsigned char)((i / BLK_SECTOR_SIZE) * 7 + i)) return 1;
    mvg_printf("blk-pattern: ok\n");
    return 0;
}

static int bad(const struct mvg_boot_info* bi) {
    struct blk_info info;
    struct {
        const char* name;
        uint64_t op, sector, addr, len, want;
    } cases[8];
    uint64_t n = 0, i, buf_gpa = (uint64_t)(uintptr_t)buf;
    blk_get_info(&info);
#define CASE(nm, o, s, a, l, w)                                                                    \
    do {                                                                                           \
        cases[n].name = nm;                                                                        \
        cases[n].op = o;                                                                           \
        cases[n].sector = s;                                                                       \
        cases[n].addr = a;                                                                         \
        cases[n].len = l;                                                                          \
        cases[n].want = w;                                                                         \
        n++;                                                                                       \
    } while (0)
    CASE("bad-op", 7, 0, buf_gpa, 512, BLK_E_BAD_OP);
    CASE("zero-len", BLK_OP_READ, 0, buf_gpa, 0, BLK_E_LENGTH);
    CASE("partial-sector", BLK_OP_READ, 0, buf_gpa, 700, BLK_E_LENGTH);
    CASE("past-end", BLK_OP_READ, info.sectors, buf_gpa, 512, BLK_E_RANGE);
    CASE("sector-wrap", BLK_OP_WRITE, ~0ull, buf_gpa, 1024, BLK_E_RANGE);
    CASE("buf-outside", BLK_OP_READ, 0, bi->mem_size, 512, BLK_E_BUFFER);
    CASE("buf-wrap", BLK_OP_WRITE, 0, ~0ull - 255, 512, BLK_E_BUFFER);
    CASE("read-into-reserved", BLK_OP_READ, 0, 0x1000, 512, BLK_E_BUFFER);
    for (i = 0; i < n; i++) {
        uint64_t st =
            rq(cases[i].op, cases[i].sector, (void*)(uintptr_t)cases[i].addr, cases[i].len);
        if (st != cases[i].want) {
            mvg_printf("blk-bad: %s: status %lu, want %lu\n", cases[i].name, st, cases[i].want);
            return 1;
        }
    }
    /* The guest is still running and the device still works. */
    if (rq(BLK_OP_READ, 0, buf, 512) != BLK_OK || rq(BLK_OP_FLUSH, 0, 0, 0) != BLK_OK) return 1;
    mvg_printf("blk-bad: ok %lu%s\n", n, ring ? " (ring)" : "");
    return 0;
}

static int durable(void) {
    struct blk_info info;
    uint64_t r, s, i, st;
    blk_get_info(&info);
    for (r = 1; 8 * r <= info.sectors; r++) {
        for (s = 8 * (r - 1); s < 8 * r; s++) {
            unsigned char* p = buf + (s % 8) * BLK_SECTOR_SIZE;
            uint64_t head[3] = {0x64757261626c6521ull, s, r}; /* "durable!" */
            memcpy(p, head, sizeof head);
            for (i = sizeof head; i < BLK_SECTOR_SIZE; i++)
                p[i] = (unsigned char)(s * 31 + r);
        }
        if ((st = rq(BLK_OP_WRITE, 8 * (r - 1), buf, 8 * BLK_SECTOR_SIZE)) != BLK_OK)
            return mvg_printf("durable: write %lu\n", st), 5;
        if ((st = rq(BLK_OP_FLUSH, 0, 0, 0)) != BLK_OK)
            return mvg_printf("durable: flush %lu\n", st), 5;
        mvg_printf("durable: flushed %lu\n", r);
    }
    return 0;
}

static int readonly(void) {
    struct blk_info info;
    blk_get_info(&info);
    if (!(info.flags & BLK_FLAG_READONLY)) return 1;
    if (rq(BLK_OP_WRITE, 0, buf, 512) != BLK_E_READONLY) return 1;
    if (rq(BLK_OP_READ, 0, buf, 512) != BLK_OK) return 1;
    mvg_printf("blk-readonly: ok\n");
    return 0;
}

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    const char* cmd = mvg_cmdline(bi);
    struct blk_info info;
    if (vcpu != 0) return 0;
    blk_get_info(&info);
    if (info.flags & BLK_FLAG_RING) {
        uint64_t st = blk_ring_init(&ring0, 0);
        if (st != BLK_OK) return mvg_printf("blkcheck: ring set-up: status %lu\n", st), 4;
        ring = &ring0;
        /* A second ring for the same queue, or queue 99, must be refused. */
        if (blk_ring_init(&ring1, 0) != BLK_E_BAD_QUEUE ||
            blk_ring_init(&ring1, 99) != BLK_E_BAD_QUEUE)
            return mvg_printf("blkcheck: re-setup\n"), 4;
    }
    if (strcmp(cmd, "info") == 0) {
        struct blk_info info;
        blk_get_info(&info);
        mvg_printf("blk: sectors=%lu flags=%lu\n", info.sectors, info.flags);
        return 0;
    }
    if (strcmp(cmd, "pattern") == 0) return pattern();
    if (strcmp(cmd, "bad") == 0) return bad(bi);
    if (strcmp(cmd, "readonly") == 0) return readonly();
    if (strcmp(cmd, "batch") == 0) return batch();
    if (strcmp(cmd, "durable") == 0) return durable();
    if (strcmp(cmd, "badkick") == 0) {
        mvg_hypercall_raw(BLK_HC_KICK, 0x200000);
        mvg_printf("blkcheck: VMM did not stop the guest\n");
        return 3;
    }
    if (strcmp(cmd, "badblock") == 0) {
        mvg_hypercall_raw(BLK_HC_IO, (uint32_t)(bi->mem_size - 8));
        mvg_printf("blkcheck: VMM did not stop the guest\n");
        return 3;
    }
    mvg_printf("usage: blkcheck info|pattern|bad|readonly|badblock|batch|badkick|durable\n");
    return 2;
}
