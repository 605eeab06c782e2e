/* The common main of the sysbench-style guests (sb_cpu, sb_memory,
 * sb_mutex, sb_threads). Options come from the command line in sysbench
 * syntax (`--cpu-max-prime=20000 --events=100 --time=0`, parsed by
 * workloads/sb_opts.h); threads = vCPUs. vCPU 0 sets up in the heap, starts
 * the clock and releases the others; every vCPU runs events from the shared
 * counter (workloads/sb_run.h), each timed with sb_tsc_ns, the native
 * runner's clock too (raw cycles if the VMM reports no TSC frequency); vCPU 0
 * waits for all, then prints one line (SB_RESULT_FMT):
 *   sb-result test=cpu threads=2 events=100 time_ns=... check=2261 ...
 * Exit codes: 0 ok, 2 bad command line (a usage line is printed), 3 not
 * enough heap for the run.
 *
 * The threads test's "yield" (--thread-yield): pause = a burst of
 * --yield-pauses `pause` instructions (default 16), sched = the yield
 * hypercall (the VMM's vCPU thread calls sched_yield()); see
 * workloads/sb_threads.h. */
#ifndef MINIVMM_GUEST_TESTS_SB_GUEST_H
#define MINIVMM_GUEST_TESTS_SB_GUEST_H

#include <mvg/mvg.h>

#include "sb_report.h"
#include "sb_run.h"

static struct sb_run sb_guest_run;
static char sb_guest_report[4096];
static uint64_t sb_guest_go;   /* 1: run, 2: vCPU 0 gave up */
static uint64_t sb_guest_done; /* workers finished */

static uint64_t sb_guest_now(void* arg) {
    return sb_tsc_ns(((const struct mvg_boot_info*)arg)->tsc_khz);
}

static void sb_guest_yield(void* arg) {
    sb_pause_burst((uint32_t)(uintptr_t)arg);
}

static void sb_guest_yield_host(void* arg) {
    (void)arg;
    mvg_yield();
}

/* vCPU 0's set-up; returns 0 or an exit code. */
static int sb_guest_setup(const struct mvg_boot_info* bi, int test) {
    struct sb_run* r = &sb_guest_run;
    const char* bad = "";
    uint64_t need;
    sb_options_default(&r->opt);
    if (!sb_parse_options(mvg_cmdline(bi), &r->opt, &bad)) {
        mvg_printf("sb_%s: bad option at '%s' (syntax: --key=value ...)\n", sb_test_name(test),
                   bad);
        return 2;
    }
    if (r->opt.threads != 0 && r->opt.threads != bi->nr_vcpus) {
        mvg_printf("sb_%s: --threads=%lu but the VM has %lu vCPUs (threads = vCPUs)\n",
                   sb_test_name(test), r->opt.threads, bi->nr_vcpus);
        return 2;
    }
    r->test = test;
    r->threads = (uint32_t)bi->nr_vcpus;
    r->now_ns = sb_guest_now;
    r->now_arg = (void*)(uintptr_t)bi;
    r->yield = r->opt.thread_yield == SB_YIELD_SCHED ? sb_guest_yield_host : sb_guest_yield;
    r->yield_arg = (void*)(uintptr_t)r->opt.yield_pauses;
    need = sb_run_bytes(test, &r->opt, r->threads);
    if (need > bi->heap_end - bi->heap_start) {
        mvg_printf("sb_%s: needs %lu bytes of heap, has %lu\n", sb_test_name(test), need,
                   bi->heap_end - bi->heap_start);
        return 3;
    }
    r->mem = (unsigned char*)(uintptr_t)bi->heap_start;
    if (!sb_run_prepare(r)) {
        mvg_printf("sb_%s: needs --events or --time\n", sb_test_name(test));
        return 2;
    }
    return 0;
}

static int sb_guest_main(const struct mvg_boot_info* bi, unsigned vcpu, int test) {
    struct sb_result res;
    if (vcpu == 0) {
        int rc = sb_guest_setup(bi, test);
        if (rc != 0) {
            mvg_atomic_store(&sb_guest_go, 2);
            return rc;
        }
        sb_run_start(&sb_guest_run);
        mvg_atomic_store(&sb_guest_go, 1);
    } else {
        mvg_wait_ge(&sb_guest_go, 1);
        if (mvg_atomic_load(&sb_guest_go) != 1) return 0;
    }
    sb_run_worker(&sb_guest_run, vcpu);
    mvg_atomic_add(&sb_guest_done, 1);
    if (vcpu != 0) return 0;
    mvg_wait_ge(&sb_guest_done, bi->nr_vcpus);
    sb_run_finish(&sb_guest_run, &res);
    {
        struct sb_report_info info = {
            sb_test_name(test), mvg_cmdline(bi), sb_guest_run.opt.memory_block_size, 0, 0, 0, 0};
        size_t n = sb_report_format(sb_guest_report, sizeof sb_guest_report, &res, &info);
        mvg_write(sb_guest_report, n < sizeof sb_guest_report ? n : sizeof sb_guest_report - 1);
    }
    mvg_printf(SB_RESULT_FMT, SB_RESULT_ARGS(res));
    return 0;
}

#endif
