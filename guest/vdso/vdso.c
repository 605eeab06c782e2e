/* minivmm's vDSO for Linux programs (issue 16; docs/linux-programs.md).
 *
 * A freestanding position-independent shared object: no relocations, no
 * writable data, no libc. The clocks are computed from rdtsc and the
 * parameter page the VMM publishes one page below our ELF header
 * (minivmm/abi/vdso_data.h); whatever the page cannot answer is the real
 * `syscall` instruction, which the VMM serves. Return values are Linux's: 0,
 * or a negative errno straight from the system call. */
#include <minivmm/abi/vdso_data.h>

#define EXPORT __attribute__((visibility("default")))

/* The kernel's layouts (x86-64), which glibc and musl pass in. */
struct vdso_timespec {
    int64_t tv_sec;
    int64_t tv_nsec;
};
struct vdso_timeval {
    int64_t tv_sec;
    int64_t tv_usec;
};
struct vdso_timezone {
    int tz_minuteswest;
    int tz_dsttime;
};

enum {
    NR_gettimeofday = 96,
    NR_time = 201,
    NR_clock_gettime = 228,
    NR_clock_getres = 229,
    NR_getcpu = 309,
};

#define NSEC_PER_SEC 1000000000ull

/* Defined by vdso.lds: the page just below the image. Volatile: every field
 * is read anew, in program order, between the two reads of `seq`. */
extern const volatile struct mvg_vdso_data mvg_vdso_page __attribute__((visibility("hidden")));

static inline long sys3(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"(nr), "D"(a), "S"(b), "d"(c)
                     : "rcx", "r11", "memory");
    return ret;
}

/* lfence first: the TSC must not be read before the loads of `seq` and of
 * the reference point that came before it in program order. */
static inline uint64_t rdtsc_ordered(void) {
    uint32_t lo, hi;
    __asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return (uint64_t)hi << 32 | lo;
}

static inline uint64_t read_begin(void) {
    uint64_t seq;
    while ((seq = mvg_vdso_page.seq) & 1)
        __asm__ volatile("pause" ::: "memory");
    return seq;
}

static inline int read_retry(uint64_t seq) {
    __asm__ volatile("" ::: "memory");
    return mvg_vdso_page.seq != seq;
}

/* minivmm/abi/vdso_data.h gives the formula. */
static inline uint64_t timeline_ns(const volatile struct mvg_vdso_timeline* t, uint64_t tsc) {
    uint64_t ref = t->tsc_ref, slew_ticks = t->slew_ticks;
    uint64_t delta = tsc > ref ? tsc - ref : 0;
    uint64_t slewed = delta < slew_ticks ? delta : slew_ticks;
    unsigned __int128 scaled = (unsigned __int128)slewed * t->slew_mult +
                               (unsigned __int128)(delta - slewed) * t->mult + t->base_frac;
    return t->base_ns + (uint64_t)(scaled >> (t->shift & 63));
}

enum clock_kind { KIND_SYSCALL, KIND_HRES, KIND_COARSE };

static inline enum clock_kind kind_of(int clock) {
    switch (clock) {
    case MVG_VDSO_CLOCK_REALTIME:
    case MVG_VDSO_CLOCK_MONOTONIC:
    case MVG_VDSO_CLOCK_MONOTONIC_RAW:
    case MVG_VDSO_CLOCK_BOOTTIME:
        return KIND_HRES;
    case MVG_VDSO_CLOCK_REALTIME_COARSE:
    case MVG_VDSO_CLOCK_MONOTONIC_COARSE:
        return KIND_COARSE;
    default:
        return KIND_SYSCALL;
    }
}

/* The clock in nanoseconds; 0 when the page cannot answer (then *ns is
 * untouched and the caller makes the system call). */
static int read_clock(int clock, uint64_t* ns) {
    if (kind_of(clock) == KIND_SYSCALL) return 0;
    uint64_t seq, value;
    do {
        seq = read_begin();
        if (mvg_vdso_page.clock_mode != MVG_VDSO_CLOCK_TSC) return 0;
        uint64_t tsc = rdtsc_ordered();
        if (clock == MVG_VDSO_CLOCK_MONOTONIC_RAW) {
            value = timeline_ns(&mvg_vdso_page.monotonic_raw, tsc);
        } else {
            value = timeline_ns(&mvg_vdso_page.monotonic, tsc);
            if (kind_of(clock) == KIND_COARSE) {
                uint64_t res = mvg_vdso_page.coarse_res_ns;
                uint64_t phase = mvg_vdso_page.coarse_phase_ns;
                if (res != 0 && value >= phase) value -= (value - phase) % res;
            }
            if (clock == MVG_VDSO_CLOCK_REALTIME || clock == MVG_VDSO_CLOCK_REALTIME_COARSE)
                value += (uint64_t)mvg_vdso_page.realtime_offset_ns;
            else if (clock == MVG_VDSO_CLOCK_BOOTTIME)
                value += (uint64_t)mvg_vdso_page.boottime_offset_ns;
        }
    } while (read_retry(seq));
    *ns = value;
    return 1;
}

EXPORT int __vdso_clock_gettime(int clock, struct vdso_timespec* ts) {
    uint64_t ns;
    if (!read_clock(clock, &ns)) return (int)sys3(NR_clock_gettime, clock, (long)ts, 0);
    ts->tv_sec = (int64_t)(ns / NSEC_PER_SEC);
    ts->tv_nsec = (int64_t)(ns % NSEC_PER_SEC);
    return 0;
}

EXPORT int __vdso_gettimeofday(struct vdso_timeval* tv, struct vdso_timezone* tz) {
    if (tv) {
        uint64_t ns;
        if (!read_clock(MVG_VDSO_CLOCK_REALTIME, &ns))
            return (int)sys3(NR_gettimeofday, (long)tv, (long)tz, 0);
        tv->tv_sec = (int64_t)(ns / NSEC_PER_SEC);
        tv->tv_usec = (int64_t)(ns % NSEC_PER_SEC / 1000);
    }
    if (tz) {
        uint64_t seq;
        do {
            seq = read_begin();
            tz->tz_minuteswest = (int)mvg_vdso_page.tz_minuteswest;
            tz->tz_dsttime = (int)mvg_vdso_page.tz_dsttime;
        } while (read_retry(seq));
    }
    return 0;
}

EXPORT int64_t __vdso_time(int64_t* t) {
    uint64_t ns;
    if (!read_clock(MVG_VDSO_CLOCK_REALTIME, &ns)) return sys3(NR_time, (long)t, 0, 0);
    int64_t seconds = (int64_t)(ns / NSEC_PER_SEC);
    if (t) *t = seconds;
    return seconds;
}

EXPORT int __vdso_clock_getres(int clock, struct vdso_timespec* res) {
    enum clock_kind kind = kind_of(clock);
    if (kind == KIND_SYSCALL) return (int)sys3(NR_clock_getres, clock, (long)res, 0);
    uint64_t seq, ns;
    do {
        seq = read_begin();
        if (mvg_vdso_page.clock_mode != MVG_VDSO_CLOCK_TSC)
            return (int)sys3(NR_clock_getres, clock, (long)res, 0);
        ns = kind == KIND_COARSE ? mvg_vdso_page.coarse_res_ns : mvg_vdso_page.hres_res_ns;
    } while (read_retry(seq));
    if (res) {
        res->tv_sec = (int64_t)(ns / NSEC_PER_SEC);
        res->tv_nsec = (int64_t)(ns % NSEC_PER_SEC);
    }
    return 0;
}

/* `cache` is unused since Linux 2.6.24, here as there. */
EXPORT long __vdso_getcpu(unsigned* cpu, unsigned* node, void* cache) {
    uint64_t seq, mode, fixed_cpu, fixed_node;
    do {
        seq = read_begin();
        mode = mvg_vdso_page.getcpu_mode;
        fixed_cpu = mvg_vdso_page.cpu;
        fixed_node = mvg_vdso_page.node;
    } while (read_retry(seq));
    if (mode == MVG_VDSO_GETCPU_FIXED) {
        if (cpu) *cpu = (unsigned)fixed_cpu;
        if (node) *node = (unsigned)fixed_node;
        return 0;
    }
    if (mode == MVG_VDSO_GETCPU_RDTSCP) {
        uint32_t lo, hi, aux;
        __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
        if (cpu) *cpu = aux & 0xfff;
        if (node) *node = aux >> 12;
        return 0;
    }
    return sys3(NR_getcpu, (long)cpu, (long)node, (long)cache);
}

/* The unprefixed names Linux's vDSO exports too. */
EXPORT int clock_gettime(int, struct vdso_timespec*)
    __attribute__((weak, alias("__vdso_clock_gettime")));
EXPORT int gettimeofday(struct vdso_timeval*, struct vdso_timezone*)
    __attribute__((weak, alias("__vdso_gettimeofday")));
EXPORT int64_t time(int64_t*) __attribute__((weak, alias("__vdso_time")));
EXPORT int clock_getres(int, struct vdso_timespec*)
    __attribute__((weak, alias("__vdso_clock_getres")));
EXPORT long getcpu(unsigned*, unsigned*, void*) __attribute__((weak, alias("__vdso_getcpu")));
