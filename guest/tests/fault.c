/* Raises the exception named by the command line on vCPU 0, to test that the
 * VMM reports guest faults (vector, RIP, error code, CR2) and stops. */
#include <mvg/mvg.h>

/* Addresses go through a register operand so the compiler sees no null or
 * wild dereference to "optimise" (e.g. into a trap of its own). */
static void load(uint64_t addr) {
    uint64_t v;
    __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(addr) : "memory");
}
static void store(uint64_t addr) {
    __asm__ volatile("movq %0, (%1)" : : "r"(0x5a5a5a5aull), "r"(addr) : "memory");
}

static volatile uint32_t zero; /* the compiler cannot know it is 0 */

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0;
    const char* what = mvg_cmdline(bi);
    if (!strcmp(what, "ud")) {
        __asm__ volatile("ud2"); /* #UD (6) */
    } else if (!strcmp(what, "pf")) {
        load(0); /* #PF (14): page 0 is unmapped, CR2 = 0 */
    } else if (!strcmp(what, "pf-high")) {
        store(bi->mem_size + 0x1000 * 16); /* #PF: beyond RAM, CR2 = that address */
    } else if (!strcmp(what, "pf-ro")) {
        store(0x1000); /* #PF: VMM-reserved memory is read-only to the guest */
    } else if (!strcmp(what, "gp")) {
        __asm__ volatile("hlt"); /* privileged: #GP(0) (13) at CPL 3 */
    } else if (!strcmp(what, "de")) {
        uint32_t lo = 1, hi = 0;
        __asm__ volatile("divl %2" : "+a"(lo), "+d"(hi) : "r"(zero)); /* #DE (0) */
    } else if (!strcmp(what, "bp")) {
        __asm__ volatile("int3"); /* #BP (3) */
    } else {
        mvg_printf("usage: fault ud|pf|pf-high|pf-ro|gp|de|bp (got '%s')\n", what);
        return 2;
    }
    mvg_printf("fault: '%s' raised no exception\n", what);
    return 4;
}
