/* Hypercalls: `outl %eax, %dx` with DX = 0x500 + nr and EAX = guest-physical
 * address (< 4 GiB) of the argument block. Numbers and blocks are the ABI's
 * (minivmm/abi/hypercall.h, docs/guest-abi.md); this adds the SDK's calls. */
#ifndef MVG_HYPERCALL_H
#define MVG_HYPERCALL_H

#include <minivmm/abi/hypercall.h> /* numbers and argument blocks */
#include <mvg/defs.h>

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
 * vCPU resumes: one exit to user space (its cost: docs/benchmarks.md). */
void mvg_yield(void);
MVG_EXTERN_C_END

#endif
