/* Writes a known set of pages for the dirty-logging tests, and nothing else
 * once logging is on:
 *   1. prints "dirty: ready flag=0x<gpa> pages=0x<a>,0x<b>,..." (stack writes
 *      happen here, before the VMM starts logging);
 *   2. spins until the VMM writes 1 to the flag (that page is VMM-written);
 *   3. writes one word into each listed page, with stores only (no calls,
 *      no stack), then exits through a raw outl with a constant block.
 * So the dirty set after step 3 is exactly: the listed pages + the flag page. */
#include <mvg/mvg.h>

#define NPAGES 6

static volatile uint64_t go_flag;
static const struct mvg_hc_exit exit_block = {0};

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0;
    uint64_t pages[NPAGES];
    uint64_t heap = bi->heap_start, end = bi->heap_end;
    /* Spread over the heap: first pages, a 2 MiB boundary, far out, the last. */
    pages[0] = heap;
    pages[1] = heap + 0x1000;
    pages[2] = heap + 0x41000;
    pages[3] = (heap + 0x200000) & ~0x1fffffull;
    pages[4] = heap + (end - heap) / 2 / 0x1000 * 0x1000;
    pages[5] = end - 0x1000;
    mvg_printf("dirty: ready flag=0x%lx pages=0x%lx,0x%lx,0x%lx,0x%lx,0x%lx,0x%lx\n",
               (uint64_t)(uintptr_t)&go_flag, pages[0], pages[1], pages[2], pages[3], pages[4],
               pages[5]);
    while (__atomic_load_n(&go_flag, __ATOMIC_ACQUIRE) == 0)
        __builtin_ia32_pause();
    /* The stores: through an asm loop so the compiler cannot add stack traffic. */
    for (int i = 0; i < NPAGES; i++)
        __asm__ volatile("movq %1, (%0)"
                         :
                         : "r"(pages[i] + 8), "r"((uint64_t)0x5a5a5a5a)
                         : "memory");
    mvg_hypercall_raw(MVG_HC_EXIT, (uint32_t)(uintptr_t)&exit_block);
    for (;;)
        __builtin_ia32_pause();
}
