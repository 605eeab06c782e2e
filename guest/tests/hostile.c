/* Hostile guests (tests/test_kvm_hostile.cpp): one attack per command line.
 * Attacks on the hypercall ABI must stop the guest with a one-line error;
 * attacks on the block rings must fail with a status while the VMM goes on
 * (the guest then prints "hostile: <mode> ok" and exits 0); writes to the
 * VMM's reserved memory must fault. Raw outl where the SDK would refuse.
 *   hc-wrap          write hypercall: buf 2^64 - 16, len 32 (buf + len wraps)
 *   hc-block-4g      a hypercall block at 0xfffffff8 (straddles 4 GiB)
 *   memmap-cap       mem_map with cap * 24 overflowing 64 bits
 *   memmap-reserved  mem_map writing its entries into the reserved first MiB
 *   claim-reserved   mem_claim whose block is in the reserved first MiB
 *   write-gdt        stores into the GDT page (reserved, read-only)
 *   write-pagetable  stores into the page tables (reserved, read-only)
 *   ring-self        (--disk) ring requests whose buffer is the ring itself
 *   ring-tail        (--disk) sq_tail 2^63 ahead of sq_head, then a doorbell */
#include <mvg/mvg.h>

#include "blk.h"

static struct mvg_hc_write wblk;
static struct mvg_hc_mem_map mblk;
static struct blk_ring ring;
static unsigned char buf[4096] __attribute__((aligned(4096)));

static uint32_t gpa(const void* p) {
    return (uint32_t)(uintptr_t)p;
}

static int ring_self(void) {
    uint64_t st;
    if (blk_ring_init(&ring, 0) != BLK_OK) return mvg_printf("hostile: no ring\n"), 4;
    /* Read into the header, into an entry, and write from the entries. */
    if ((st = blk_q_request(&ring, BLK_OP_READ, 0, &ring, 512)) != BLK_E_BUFFER)
        return mvg_printf("hostile: read into ring header: status %lu\n", st), 1;
    if ((st = blk_q_request(&ring, BLK_OP_READ, 0, &ring.ent[4], 512)) != BLK_E_BUFFER)
        return mvg_printf("hostile: read into ring entry: status %lu\n", st), 1;
    if ((st = blk_q_request(&ring, BLK_OP_WRITE, 0, &ring.ent[0], 512)) != BLK_E_BUFFER)
        return mvg_printf("hostile: write from ring: status %lu\n", st), 1;
    if ((st = blk_q_request(&ring, BLK_OP_READ, 0, buf, 512)) != BLK_OK)
        return mvg_printf("hostile: good read after: status %lu\n", st), 1;
    mvg_printf("hostile: ring-self ok\n");
    return 0;
}

static int ring_tail(void) {
    uint64_t far = (1ull << 63) + 3, st, i;
    if (blk_ring_init(&ring, 0) != BLK_OK) return mvg_printf("hostile: no ring\n"), 4;
    for (i = 0; i < BLK_RING_ENTRIES; i++) { /* garbage: each slot a bad op */
        ring.ent[i].op = 0x77;
        ring.ent[i].status = BLK_PENDING;
    }
    __atomic_store_n(&ring.hdr.sq_tail, far, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    mvg_hypercall_raw(BLK_HC_KICK, gpa(&ring));
    while (__atomic_load_n(&ring.hdr.sq_head, __ATOMIC_ACQUIRE) != far)
        mvg_pause();
    for (i = 0; i < BLK_RING_ENTRIES; i++)
        if (ring.ent[i].status != BLK_E_BAD_OP)
            return mvg_printf("hostile: slot %lu status %lu\n", i, ring.ent[i].status), 1;
    /* The ring goes on from the skipped-to tail. */
    st = blk_q_request(&ring, BLK_OP_READ, 0, buf, 512);
    if (st != BLK_OK) return mvg_printf("hostile: read after: status %lu\n", st), 1;
    mvg_printf("hostile: ring-tail ok\n");
    return 0;
}

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    const char* what = mvg_cmdline(bi);
    if (vcpu != 0) return 0;
    if (!strcmp(what, "hc-wrap")) {
        wblk.buf = 0xFFFFFFFFFFFFFFF0ull, wblk.len = 32;
        mvg_hypercall_raw(MVG_HC_WRITE, gpa(&wblk));
    } else if (!strcmp(what, "hc-block-4g")) {
        mvg_hypercall_raw(MVG_HC_WRITE, 0xFFFFFFF8u);
    } else if (!strcmp(what, "memmap-cap")) {
        mblk.buf = (uint64_t)(uintptr_t)buf, mblk.cap = 0x0AAAAAAAAAAAAAABull; /* * 24 wraps */
        mvg_hypercall_raw(MVG_HC_MEM_MAP, gpa(&mblk));
    } else if (!strcmp(what, "memmap-reserved")) {
        mblk.buf = 0x1000, mblk.cap = 4;
        mvg_hypercall_raw(MVG_HC_MEM_MAP, gpa(&mblk));
    } else if (!strcmp(what, "claim-reserved")) {
        mvg_hypercall_raw(MVG_HC_MEM_CLAIM, 0x1000);
    } else if (!strcmp(what, "write-gdt")) {
        *(volatile uint64_t*)(uintptr_t)0x3000 = 0;
    } else if (!strcmp(what, "write-pagetable")) {
        *(volatile uint64_t*)(uintptr_t)0x12000 = 0;
    } else if (!strcmp(what, "ring-self")) {
        return ring_self();
    } else if (!strcmp(what, "ring-tail")) {
        return ring_tail();
    } else {
        mvg_printf("usage: hostile MODE (got '%s')\n", what);
        return 2;
    }
    mvg_printf("hostile: VMM did not stop the guest\n");
    return 3;
}
