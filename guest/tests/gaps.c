/* Every vCPU spins on the TSC for the given milliseconds (cmdline "MS
 * THRESHOLD_NS", default "1000 2000") and counts the gaps longer than the
 * threshold (workloads/gaps.h); vCPU 0 prints the sums:
 *   gaps: vcpus=2 spun=... gaps=... lost=... max=... over10=... over100=...
 * (TSC cycles). minivmm-bench foundation runs the same header natively. */
#include <mvg/mvg.h>

#include "gaps.h"

#define GAPS_MAX_VCPUS 64

static struct mv_gaps per_vcpu[GAPS_MAX_VCPUS];
static uint64_t go, done;
static uint64_t spin_cycles, threshold_cycles;

static int setup(const struct mvg_boot_info* bi) {
    uint64_t ms = 1000, ns = 2000;
    const char* p = mvg_cmdline(bi);
    char word[24];
    int i;
    for (i = 0; i < 2 && *p; i++) {
        size_t n = 0;
        while (*p == ' ')
            p++;
        while (*p && *p != ' ' && n + 1 < sizeof word)
            word[n++] = *p++;
        word[n] = '\0';
        if (n && !mvg_parse_u64(word, i == 0 ? &ms : &ns)) {
            mvg_printf("gaps: bad number '%s' (usage: MS THRESHOLD_NS)\n", word);
            return 2;
        }
    }
    if (bi->tsc_khz == 0 || bi->nr_vcpus > GAPS_MAX_VCPUS || ms == 0 || ns == 0) {
        mvg_printf("gaps: needs the TSC rate, at most %d vCPUs and non-zero numbers\n",
                   GAPS_MAX_VCPUS);
        return 2;
    }
    spin_cycles = ms * bi->tsc_khz;
    threshold_cycles = ns * bi->tsc_khz / 1000000;
    return 0;
}

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    struct mv_gaps sum = {0, 0, 0, 0, 0, 0};
    uint64_t i;
    if (vcpu == 0) {
        int rc = setup(bi);
        mvg_atomic_store(&go, rc ? 2 : 1);
        if (rc) return rc;
    } else {
        mvg_wait_ge(&go, 1);
        if (mvg_atomic_load(&go) != 1) return 0;
    }
    mv_gaps_run(spin_cycles, threshold_cycles, &per_vcpu[vcpu]);
    mvg_atomic_add(&done, 1);
    if (vcpu != 0) return 0;
    mvg_wait_ge(&done, bi->nr_vcpus);
    for (i = 0; i < bi->nr_vcpus; i++)
        mv_gaps_add(&sum, &per_vcpu[i]);
    mvg_printf("gaps: vcpus=%lu spun=%lu gaps=%lu lost=%lu max=%lu over10=%lu over100=%lu\n",
               bi->nr_vcpus, sum.spun, sum.gaps, sum.lost, sum.max, sum.over10, sum.over100);
    return 0;
}
