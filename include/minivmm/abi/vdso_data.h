/* The vDSO's parameter page (docs/linux-programs.md, "The parameter page"): what the
 * VMM publishes for the vDSO it maps into a Linux program (issue 16), so
 * that clock_gettime and friends run in the guest without a VM exit.
 *
 * The page sits in the guest exactly one page (MVG_VDSO_DATA_SIZE) below the
 * vDSO's ELF header, read-only for the program. The VMM writes it under a
 * sequence counter: `seq` is odd while an update is under way, and a reader
 * retries when it saw an odd value or `seq` changed while it read. A page of
 * zeros is valid and means "no clock in the guest": every call becomes the
 * system call it stands for. */
#ifndef MINIVMM_ABI_VDSO_DATA_H
#define MINIVMM_ABI_VDSO_DATA_H

#include "abi.h"

#define MVG_VDSO_DATA_SIZE 4096ull /* the page; the structure is its start, the rest is zero */

/* clock_mode */
#define MVG_VDSO_CLOCK_NONE 0 /* every clock by system call */
#define MVG_VDSO_CLOCK_TSC 1  /* the timelines below hold, against the guest's rdtsc */

/* getcpu_mode */
#define MVG_VDSO_GETCPU_SYSCALL 0 /* getcpu is the system call */
#define MVG_VDSO_GETCPU_FIXED 1   /* `cpu` and `node` below (a single-vCPU guest) */
#define MVG_VDSO_GETCPU_RDTSCP 2  /* rdtscp's TSC_AUX = cpu | node << 12, as Linux sets it */

/* The clocks the vDSO serves from the page (Linux clock ids); any other id
 * is the system call. */
#define MVG_VDSO_CLOCK_REALTIME 0
#define MVG_VDSO_CLOCK_MONOTONIC 1
#define MVG_VDSO_CLOCK_MONOTONIC_RAW 4
#define MVG_VDSO_CLOCK_REALTIME_COARSE 5
#define MVG_VDSO_CLOCK_MONOTONIC_COARSE 6
#define MVG_VDSO_CLOCK_BOOTTIME 7

/* One clock as a function of the guest's TSC: for tsc >= tsc_ref, with
 * delta = tsc - tsc_ref, d1 = min(delta, slew_ticks) and d2 = delta - d1,
 * the clock reads
 *     base_ns + ((d1 * slew_mult + d2 * mult + base_frac) >> shift)
 * nanoseconds (the sum in 128 bits): the host's rate (mult), except that
 * for the first slew_ticks ticks it runs at slew_mult, which takes away the
 * error of the previous line without a jump (as NTP slews Linux's clock). A
 * tsc below tsc_ref reads as tsc_ref (TSCs of two vCPUs may differ by a few
 * cycles). */
struct mvg_vdso_timeline {
    uint64_t tsc_ref;    /* the guest TSC at the reference point */
    uint64_t base_ns;    /* the clock at tsc_ref, whole nanoseconds */
    uint64_t base_frac;  /* and the fraction, times 2^shift */
    uint64_t mult;       /* nanoseconds per TSC tick, times 2^shift */
    uint64_t shift;      /* < 64 */
    uint64_t slew_ticks; /* how long slew_mult applies, in ticks from tsc_ref */
    uint64_t slew_mult;  /* the rate meanwhile, as mult */
};
MVG_ABI_ASSERT(sizeof(struct mvg_vdso_timeline) == 56, "vdso timeline is 56 bytes");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_timeline, base_ns) == 8, "vdso timeline: base_ns at 8");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_timeline, base_frac) == 16,
               "vdso timeline: base_frac at 16");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_timeline, mult) == 24, "vdso timeline: mult at 24");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_timeline, shift) == 32, "vdso timeline: shift at 32");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_timeline, slew_ticks) == 40,
               "vdso timeline: slew_ticks at 40");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_timeline, slew_mult) == 48,
               "vdso timeline: slew_mult at 48");

struct mvg_vdso_data {
    uint64_t seq;        /* odd: being written; read it before and after the rest */
    uint64_t clock_mode; /* MVG_VDSO_CLOCK_* */
    /* CLOCK_MONOTONIC. REALTIME and BOOTTIME are it plus an offset, as in
     * Linux, where the three advance at one (NTP-adjusted) rate. */
    struct mvg_vdso_timeline monotonic;
    struct mvg_vdso_timeline monotonic_raw; /* CLOCK_MONOTONIC_RAW */
    int64_t realtime_offset_ns;             /* CLOCK_REALTIME - CLOCK_MONOTONIC */
    int64_t boottime_offset_ns;             /* CLOCK_BOOTTIME - CLOCK_MONOTONIC */
    /* The coarse clocks tick: MONOTONIC_COARSE is CLOCK_MONOTONIC rounded
     * down to the last instant t with t % coarse_res_ns == coarse_phase_ns
     * (the host's tick grid), REALTIME_COARSE that plus realtime_offset_ns. */
    uint64_t coarse_res_ns;   /* > 0; clock_getres of the coarse clocks */
    uint64_t coarse_phase_ns; /* < coarse_res_ns */
    uint64_t hres_res_ns;     /* clock_getres of the others (1) */
    int64_t tz_minuteswest;   /* gettimeofday's struct timezone */
    int64_t tz_dsttime;
    uint64_t getcpu_mode; /* MVG_VDSO_GETCPU_* */
    uint64_t cpu;         /* MVG_VDSO_GETCPU_FIXED: getcpu's answers */
    uint64_t node;
};
MVG_ABI_ASSERT(sizeof(struct mvg_vdso_data) == 208, "vdso data is 208 bytes");
MVG_ABI_ASSERT(sizeof(struct mvg_vdso_data) <= MVG_VDSO_DATA_SIZE, "vdso data fits its page");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, clock_mode) == 8, "vdso data: clock_mode at 8");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, monotonic) == 16, "vdso data: monotonic at 16");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, monotonic_raw) == 72,
               "vdso data: monotonic_raw at 72");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, realtime_offset_ns) == 128,
               "vdso data: realtime_offset_ns at 128");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, boottime_offset_ns) == 136,
               "vdso data: boottime_offset_ns at 136");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, coarse_res_ns) == 144,
               "vdso data: coarse_res_ns at 144");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, coarse_phase_ns) == 152,
               "vdso data: coarse_phase_ns at 152");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, hres_res_ns) == 160, "vdso data: hres_res_ns at 160");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, tz_minuteswest) == 168,
               "vdso data: tz_minuteswest at 168");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, tz_dsttime) == 176, "vdso data: tz_dsttime at 176");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, getcpu_mode) == 184, "vdso data: getcpu_mode at 184");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, cpu) == 192, "vdso data: cpu at 192");
MVG_ABI_ASSERT(offsetof(struct mvg_vdso_data, node) == 200, "vdso data: node at 200");

/* The version the vDSO's symbols carry, and its soname. */
#define MVG_VDSO_VERSION "LINUX_2.6"
#define MVG_VDSO_SONAME "linux-vdso.so.1"

#endif
