/* Every vCPU adds 1 to a shared counter K times (K = cmdline, default
 * 1000000); vCPU 0 checks the total. Fails if vCPUs do not share memory
 * coherently or one of them never runs (then vCPU 0 waits forever). */
#include <mvg/mvg.h>

static uint64_t counter; /* .bss: zero in the image, shared by all vCPUs */
static uint64_t arrived;

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    uint64_t k = 1000000;
    const char* cmdline = mvg_cmdline(bi);
    if (cmdline[0] && !mvg_parse_u64(cmdline, &k)) {
        if (vcpu == 0) mvg_printf("smp: bad iteration count '%s'\n", cmdline);
        return 2;
    }
    /* seq_cst read-modify-write: a locked add that the compiler may not merge. */
    for (uint64_t i = 0; i < k; i++)
        __atomic_fetch_add(&counter, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&arrived, 1, __ATOMIC_SEQ_CST);
    if (vcpu != 0) return 0;
    mvg_wait_ge(&arrived, bi->nr_vcpus);
    uint64_t c = mvg_atomic_load(&counter), expected = k * bi->nr_vcpus;
    mvg_printf("smp: %lu vcpus, counter=%lu expected=%lu\n", bi->nr_vcpus, c, expected);
    return c == expected ? 0 : 1;
}
