/* CPU-bound work with no exits at all: N iterations of mv_regloop (N =
 * cmdline, default 500000000), timed with the TSC. Compare with the same
 * header run natively to see the cost of virtualisation. */
#include <mvg/mvg.h>

#include "regloop.h"

static volatile uint64_t sink; /* keeps the result observable */

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    if (vcpu != 0) return 0;
    uint64_t n = 500000000;
    const char* cmdline = mvg_cmdline(bi);
    if (cmdline[0] && !mvg_parse_u64(cmdline, &n)) {
        mvg_printf("regloop: bad count '%s'\n", cmdline);
        return 2;
    }
    uint64_t t0 = mvg_rdtsc();
    sink = mv_regloop(n);
    uint64_t t = mvg_rdtsc() - t0;
    mvg_printf("regloop: %lu iterations, %lu tsc cycles\n", n, t);
    return 0;
}
