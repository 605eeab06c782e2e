/* Measures the round trip of a hypercall: N zero-length console writes
 * (N = cmdline, default 20000). */
#include <mvg/mvg.h>

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0;
    uint64_t n = 20000;
    const char* cmdline = mvg_cmdline(bi);
    if (cmdline[0] && !mvg_parse_u64(cmdline, &n)) {
        mvg_printf("hcloop: bad count '%s'\n", cmdline);
        return 2;
    }
    static const char buf[1];
    uint64_t t0 = mvg_rdtsc();
    for (uint64_t i = 0; i < n; i++)
        mvg_write(buf, 0);
    uint64_t cycles = mvg_rdtsc() - t0;
    mvg_printf("hcloop: %lu hypercalls, %lu cycles/hypercall\n", n, n ? cycles / n : 0);
    return 0;
}
