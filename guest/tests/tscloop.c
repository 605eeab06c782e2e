/* N back-to-back rdtsc (N = cmdline, default 10000000), timed with the TSC;
 * minivmm-bench foundation runs the same header natively. */
#include <mvg/mvg.h>

#include "tscloop.h"

static volatile uint64_t sink;

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    uint64_t n = 10000000, s = 0, t;
    const char* cmdline = mvg_cmdline(bi);
    if (vcpu != 0) return 0;
    if (cmdline[0] && (!mvg_parse_u64(cmdline, &n) || n == 0)) {
        mvg_printf("tscloop: bad count '%s'\n", cmdline);
        return 2;
    }
    t = mv_tscloop(n, &s);
    sink = s;
    mvg_printf("tscloop: %lu reads, %lu tsc cycles\n", n, t);
    return 0;
}
