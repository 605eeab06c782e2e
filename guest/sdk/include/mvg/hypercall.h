/* Hypercalls: `outl %eax, %dx` with DX = 0x500 + nr and EAX = guest-physical
 * address (< 4 GiB) of the argument block. */
#ifndef MVG_HYPERCALL_H
#define MVG_HYPERCALL_H

#include <mvg/defs.h>

#define MVG_HC_PORT_BASE 0x500
#define MVG_HC_WRITE 0  /* struct mvg_hc_write */
#define MVG_HC_EXIT 1   /* struct mvg_hc_exit */
#define MVG_HC_HALT 16  /* struct mvg_hc_halt; minivmm-defined */
#define MVG_HC_YIELD 19 /* struct mvg_hc_yield; minivmm-defined */
/* Memory hotplug (minivmm-defined, README "Memory hotplug"). */
#define MVG_HC_MEM_MAP 22   /* struct mvg_hc_mem_map */
#define MVG_HC_MEM_CLAIM 23 /* struct mvg_hc_mem_claim */

struct mvg_hc_write {
    uint64_t buf; /* GPA of the bytes; may be anywhere in RAM */
    uint64_t len;
};
struct mvg_hc_exit {
    uint64_t code; /* minivmm-run exits with code & 0xff */
};
struct mvg_hc_halt {
    uint64_t reserved; /* 0 */
};
struct mvg_hc_yield {
    uint64_t reserved; /* 0 */
};

/* Lists hot-added RAM: the VMM writes up to `cap` entries at `buf`, the
 * number of regions to `count` and a number that changes with every add or
 * removal to `generation`. */
struct mvg_hc_mem_map {
    uint64_t buf; /* GPA of struct mvg_mem_region[cap] */
    uint64_t cap;
    uint64_t count;      /* out */
    uint64_t generation; /* out */
};
struct mvg_mem_region {
    uint64_t gpa, size;
    uint64_t flags; /* bit 0: claimed */
};
/* claim = 1 marks the region starting at gpa in use (the VMM then refuses to
 * remove it), 0 releases it. status: 0 done, 1 no region starts there, 2 bad
 * claim value. */
struct mvg_hc_mem_claim {
    uint64_t gpa;
    uint64_t claim;
    uint64_t status; /* out */
};

/* Largest block mvg_hypercall can bounce. */
#define MVG_HC_MAX_BLOCK 64

/* One raw hypercall, no checks: the caller guarantees block_gpa is the block's
 * address. Used by the SDK and by tests that pass deliberately bad pointers. */
static inline void mvg_hypercall_raw(unsigned nr, uint32_t block_gpa) {
    /* "memory": the VMM reads the block (and the buffers it names) during the
     * exit, so every store before this point must have been emitted. */
    __asm__ volatile("outl %0, %1"
                     :
                     : "a"(block_gpa), "d"((uint16_t)(MVG_HC_PORT_BASE + nr))
                     : "memory");
}

MVG_EXTERN_C_BEGIN
/* Hypercall nr with the size-byte block at `block`. If the block does not lie
 * below 4 GiB (stacks are at the top of RAM, which can be above 4 GiB) it is
 * copied into a bounce slot in .bss for the call and copied back afterwards,
 * so hypercalls that return data in their block work too. size <= 64. */
void mvg_hypercall(unsigned nr, void* block, size_t size);

/* Console write; always makes the hypercall, even for len == 0. */
void mvg_write(const void* buf, size_t len);
/* Stop the VM; minivmm-run exits with code & 0xff. */
MVG_NORETURN void mvg_exit(uint64_t code);
/* This vCPU is done; the VM ends (exit code 0) once every vCPU has halted. */
MVG_NORETURN void mvg_halt(void);
/* Give the host CPU back: the VMM's vCPU thread calls sched_yield() and the
 * vCPU resumes (one exit to user space, ~60 us on a shadow-paging KVM). */
void mvg_yield(void);
MVG_EXTERN_C_END

#endif
