/* Guest ABI v1: hypercalls (docs/guest-abi.md, "Hypercalls"). Hypercall nr
 * is `outl %eax, %dx` with DX = MVG_HC_PORT_BASE + nr and EAX = the
 * guest-physical address (below 4 GiB) of its argument block. 0 and 1 are
 * the ABI's; 16 and up are minivmm's own (the block device's 17, 18, 20 and
 * 21 are in block.h). */
#ifndef MINIVMM_ABI_HYPERCALL_H
#define MINIVMM_ABI_HYPERCALL_H

#include "abi.h"

#define MVG_HC_PORT_BASE 0x500
#define MVG_HC_PORT_COUNT 0x100 /* hypercalls 0 .. 255 */

#define MVG_HC_WRITE 0      /* struct mvg_hc_write */
#define MVG_HC_EXIT 1       /* struct mvg_hc_exit */
#define MVG_HC_HALT 16      /* struct mvg_hc_halt */
#define MVG_HC_YIELD 19     /* struct mvg_hc_yield */
#define MVG_HC_MEM_MAP 22   /* struct mvg_hc_mem_map */
#define MVG_HC_MEM_CLAIM 23 /* struct mvg_hc_mem_claim */

/* 0: `len` bytes at `buf` to the console. */
struct mvg_hc_write {
    uint64_t buf; /* GPA of the bytes; anywhere in RAM */
    uint64_t len;
};
/* 1: stop every vCPU; minivmm-run exits with code & 0xff. */
struct mvg_hc_exit {
    uint64_t code;
};
/* 16: park this vCPU until the VM stops; all parked = exit(0). */
struct mvg_hc_halt {
    uint64_t reserved; /* 0 */
};
/* 19: the vCPU thread gives its host CPU back (sched_yield), then resumes. */
struct mvg_hc_yield {
    uint64_t reserved; /* 0 */
};
/* 22: lists hot-added RAM. The VMM writes up to `cap` entries at `buf`, the
 * number of regions to `count` and a number that changes with every add or
 * removal to `generation`. Block and buffer: writable RAM above 1 MiB. */
struct mvg_hc_mem_map {
    uint64_t buf; /* GPA of struct mvg_mem_region[cap] */
    uint64_t cap;
    uint64_t count;      /* out */
    uint64_t generation; /* out */
};
struct mvg_mem_region {
    uint64_t gpa, size;
    uint64_t flags; /* MVG_MEM_REGION_CLAIMED */
};
#define MVG_MEM_REGION_CLAIMED 1ull
/* 23: claim = 1 marks the region starting at gpa in use (the VMM then refuses
 * to remove it), 0 releases it. */
struct mvg_hc_mem_claim {
    uint64_t gpa;
    uint64_t claim;
    uint64_t status; /* out: MVG_MEM_CLAIM_* */
};
#define MVG_MEM_CLAIM_OK 0
#define MVG_MEM_CLAIM_NO_REGION 1 /* no hot-added region starts at gpa */
#define MVG_MEM_CLAIM_BAD_VALUE 2 /* claim is neither 0 nor 1 */

MVG_ABI_ASSERT(sizeof(struct mvg_hc_write) == 16, "write block is 16 bytes");
MVG_ABI_ASSERT(offsetof(struct mvg_hc_write, len) == 8, "write: len at 8");
MVG_ABI_ASSERT(sizeof(struct mvg_hc_exit) == 8, "exit block is 8 bytes");
MVG_ABI_ASSERT(sizeof(struct mvg_hc_halt) == 8, "halt block is 8 bytes");
MVG_ABI_ASSERT(sizeof(struct mvg_hc_yield) == 8, "yield block is 8 bytes");
MVG_ABI_ASSERT(sizeof(struct mvg_hc_mem_map) == 32, "mem_map block is 32 bytes");
MVG_ABI_ASSERT(offsetof(struct mvg_hc_mem_map, cap) == 8, "mem_map: cap at 8");
MVG_ABI_ASSERT(offsetof(struct mvg_hc_mem_map, count) == 16, "mem_map: count at 16");
MVG_ABI_ASSERT(offsetof(struct mvg_hc_mem_map, generation) == 24, "mem_map: generation at 24");
MVG_ABI_ASSERT(sizeof(struct mvg_mem_region) == 24, "mem_map entry is 24 bytes");
MVG_ABI_ASSERT(offsetof(struct mvg_mem_region, flags) == 16, "mem_map entry: flags at 16");
MVG_ABI_ASSERT(sizeof(struct mvg_hc_mem_claim) == 24, "mem_claim block is 24 bytes");
MVG_ABI_ASSERT(offsetof(struct mvg_hc_mem_claim, status) == 16, "mem_claim: status at 16");

#endif
