/* The sysbench-style event loop shared by the workload guests and the
 * native runner: options in, one struct sb_result out. Plain C (also valid
 * C++), no libc, no OS or SDK calls; the caller supplies memory, threads,
 * a clock and a yield function.
 *
 * Use:
 *   1. sb_options_default + sb_parse_options (sb_opts.h);
 *   2. carve sb_run_bytes(test, opt, threads) bytes of zeroed or fresh memory,
 *      64-byte aligned (page aligned for the touch mode), and call
 *      sb_run_prepare on one thread (untimed: initialises locks and blocks);
 *   3. start `threads` threads, each calling sb_run_worker(run, tid), after
 *      which sb_run_finish (one thread, all workers done) fills the result.
 *
 * Events are handed out like sysbench does: a shared counter that every
 * thread increments before each event, so faster threads take more events;
 * the run ends when --events are taken or --time seconds have passed since
 * the start (whichever comes first). Each event is timed on its own with
 * the caller's clock; latency min/avg/max are exact, p95 comes from a
 * log-linear histogram (8 sub-buckets per power of two, about 12% wide,
 * reported as the bucket's upper bound clamped to the max; sysbench also
 * reports a histogram bucket). */
#ifndef MINIVMM_WORKLOADS_SB_RUN_H
#define MINIVMM_WORKLOADS_SB_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "sb_cpu.h"
#include "sb_memory.h"
#include "sb_mutex.h"
#include "sb_opts.h"
#include "sb_threads.h"

#define SB_HIST_BUCKETS 512u
/* Value the memory write test stores (sysbench stores 0). */
#define SB_MEM_WRITE_VALUE ((size_t)0x0101010101010101ull)

/* Per-thread statistics: one cache-line-aligned block per thread. */
struct sb_thread_stats {
    uint64_t events;
    uint64_t lat_sum_ns;
    uint64_t lat_min_ns;
    uint64_t lat_max_ns;
    uint64_t end_ns;
    uint64_t check;     /* cpu: prime count; memory read: sum of checksums */
    uint64_t check_bad; /* cpu: an event disagreed with the others */
    uint64_t pad;
    uint32_t hist[SB_HIST_BUCKETS];
} __attribute__((aligned(64)));

struct sb_result {
    int test; /* enum sb_test_kind */
    uint64_t threads;
    uint64_t events;  /* events executed */
    uint64_t time_ns; /* start to the last thread's end */
    uint64_t lat_min_ns, lat_avg_ns, lat_max_ns, lat_p95_ns;
    uint64_t lat_sum_ns;                   /* every event's latency, added up */
    uint64_t check;                        /* see sb_run_finish */
    uint64_t fairness_events_avg_milli;    /* events per thread, x1000 */
    uint64_t fairness_events_stddev_milli; /* population stddev, x1000 */
    /* Time each thread spent in events (its latency sum; sysbench's
     * "execution time"): mean and population stddev over the threads. */
    uint64_t fairness_time_avg_ns, fairness_time_stddev_ns;
};

/* Zeroes one thread's statistics (the minimum starts at UINT64_MAX). */
static inline void sb_stats_reset(struct sb_thread_stats* s) {
    uint32_t b;
    s->events = s->lat_sum_ns = s->lat_max_ns = s->end_ns = s->check = s->check_bad = 0;
    s->lat_min_ns = UINT64_MAX;
    for (b = 0; b < SB_HIST_BUCKETS; b++)
        s->hist[b] = 0;
}

/* The machine-readable result line; use with SB_RESULT_ARGS (or
 * SB_RESULT_ARGS_NAMED for a test outside enum sb_test_kind) in any
 * printf-like function (mvg_printf in the guest, printf natively). */
#define SB_RESULT_FMT                                                                              \
    "sb-result test=%s threads=%lu events=%lu time_ns=%lu lat_min_ns=%lu lat_avg_ns=%lu "          \
    "lat_max_ns=%lu lat_p95_ns=%lu lat_sum_ns=%lu check=%lu fairness_events_avg=%lu.%03lu "        \
    "fairness_events_stddev=%lu.%03lu fairness_time_avg_ns=%lu fairness_time_stddev_ns=%lu\n"
#define SB_RESULT_ARGS_NAMED(name, r)                                                              \
    (name), (unsigned long)(r).threads, (unsigned long)(r).events, (unsigned long)(r).time_ns,     \
        (unsigned long)(r).lat_min_ns, (unsigned long)(r).lat_avg_ns,                              \
        (unsigned long)(r).lat_max_ns, (unsigned long)(r).lat_p95_ns,                              \
        (unsigned long)(r).lat_sum_ns, (unsigned long)(r).check,                                   \
        (unsigned long)((r).fairness_events_avg_milli / 1000),                                     \
        (unsigned long)((r).fairness_events_avg_milli % 1000),                                     \
        (unsigned long)((r).fairness_events_stddev_milli / 1000),                                  \
        (unsigned long)((r).fairness_events_stddev_milli % 1000),                                  \
        (unsigned long)(r).fairness_time_avg_ns, (unsigned long)(r).fairness_time_stddev_ns
#define SB_RESULT_ARGS(r) SB_RESULT_ARGS_NAMED(sb_test_name((r).test), r)

typedef uint64_t (*sb_now_fn)(void* arg);

/* The workloads' clock, the same instructions on both sides: `lfence;
 * rdtsc` (ordered after earlier loads, like the kernel's rdtsc_ordered
 * behind clock_gettime), converted to ns with the TSC rate in kHz (the
 * guest's from the boot info, the native runner's calibrated); raw cycles
 * when the rate is unknown (0). Split so that nothing overflows and no
 * 128-bit division (a libgcc call in a guest) is needed. */
static inline uint64_t sb_tsc_read(void) {
    uint32_t lo, hi;
    __asm__ volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return ((uint64_t)hi << 32) | lo;
}
static inline uint64_t sb_tsc_ns(uint64_t khz) {
    uint64_t c = sb_tsc_read();
    if (khz == 0) return c;
    return c / khz * 1000000u + c % khz * 1000000u / khz;
}

struct sb_run {
    /* set by the caller before sb_run_prepare */
    int test;
    struct sb_options opt;
    uint32_t threads;
    sb_now_fn now_ns;
    void* now_arg;
    sb_yield_fn yield; /* threads test only */
    void* yield_arg;
    unsigned char* mem; /* sb_run_bytes() bytes */
    /* set by sb_run_prepare */
    struct sb_thread_stats* stats;
    struct sb_spinlock* locks;
    uint32_t nlocks;
    unsigned char* data;  /* memory blocks, or the touch region */
    uint64_t max_events;  /* 0 = unlimited */
    uint64_t start_ns;    /* set by sb_run_start */
    uint64_t deadline_ns; /* 0 = none */
    /* Shared, atomic, each on a cache line of its own: every event bumps
     * next_event, and a read-mostly field next to it (max_events, data,
     * opt) would then miss in the other thread's cache on every event; how
     * much depended on where the struct happened to sit (a stack natively,
     * .bss in a guest), measured at 181 vs 145 ns per 8K read event. */
    uint64_t next_event __attribute__((aligned(64)));
    uint64_t req_performed __attribute__((aligned(64)));
    unsigned char pad_[56]; /* nothing else shares req_performed's line */
};

static inline uint64_t sb_align_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}

static inline uint64_t sb_run_nlocks(int test, const struct sb_options* o) {
    if (test == SB_TEST_MUTEX) return o->mutex_num;
    if (test == SB_TEST_THREADS) return o->thread_locks;
    return 0;
}

static inline uint64_t sb_run_data_bytes(int test, const struct sb_options* o, uint32_t threads) {
    if (test != SB_TEST_MEMORY) return 0;
    if (o->memory_oper == SB_MEM_OP_TOUCH) return sb_align_up(o->memory_total_size, 4096);
    return o->memory_scope_global ? o->memory_block_size : o->memory_block_size * threads;
}

/* Offsets inside run->mem: stats, then locks, then data (page aligned). */
static inline uint64_t sb_run_data_offset(int test, const struct sb_options* o, uint32_t threads) {
    uint64_t off = (uint64_t)threads * sizeof(struct sb_thread_stats);
    off += sb_run_nlocks(test, o) * sizeof(struct sb_spinlock);
    return sb_align_up(off, 4096);
}

/* Bytes of memory the caller must supply (page aligned). */
static inline uint64_t sb_run_bytes(int test, const struct sb_options* o, uint32_t threads) {
    return sb_run_data_offset(test, o, threads) + sb_run_data_bytes(test, o, threads);
}

/* Untimed set-up on one thread. Returns 1, or 0 when the run could never end
 * (no event limit and no time limit) or threads is 0. */
static inline int sb_run_prepare(struct sb_run* r) {
    const struct sb_options* o = &r->opt;
    uint32_t i;
    if (r->threads == 0) return 0;
    r->stats = (struct sb_thread_stats*)(void*)r->mem;
    for (i = 0; i < r->threads; i++)
        sb_stats_reset(&r->stats[i]);
    r->locks = (struct sb_spinlock*)(void*)(r->mem +
                                            (uint64_t)r->threads * sizeof(struct sb_thread_stats));
    r->nlocks = (uint32_t)sb_run_nlocks(r->test, o);
    for (i = 0; i < r->nlocks; i++)
        sb_spin_init(&r->locks[i]);
    r->data = r->mem + sb_run_data_offset(r->test, o, r->threads);
    r->max_events = o->events;
    if (r->test == SB_TEST_MEMORY) {
        uint64_t n = o->memory_total_size / o->memory_block_size;
        if (o->memory_oper == SB_MEM_OP_TOUCH) {
            n = (o->memory_total_size + o->memory_block_size - 1) / o->memory_block_size;
        } else {
            uint64_t nblocks = o->memory_scope_global ? 1 : r->threads, b;
            for (b = 0; b < nblocks; b++) /* every block starts alike */
                sb_mem_init_block(r->data + b * o->memory_block_size, (size_t)o->memory_block_size);
        }
        if (r->max_events == 0 || n < r->max_events) r->max_events = n;
    }
    if (r->test == SB_TEST_MUTEX && r->max_events == 0) r->max_events = r->threads;
    r->next_event = 0;
    r->req_performed = 0;
    r->deadline_ns = 0;
    return r->max_events != 0 || o->time_s != 0;
}

/* Marks the start of the timed run (call right before releasing the workers). */
static inline void sb_run_start(struct sb_run* r) {
    r->start_ns = r->now_ns(r->now_arg);
    r->deadline_ns = r->opt.time_s ? r->start_ns + r->opt.time_s * 1000000000ull : 0;
}

static inline uint32_t sb_hist_bucket(uint64_t ns) {
    uint32_t msb;
    if (ns < 8) return (uint32_t)ns;
    msb = 63u - (uint32_t)__builtin_clzll(ns);
    return (msb - 2u) * 8u + (uint32_t)((ns >> (msb - 3u)) & 7u);
}

/* Adds one event of latency `lat` (ns) to a thread's statistics. */
static inline void sb_stats_record(struct sb_thread_stats* s, uint64_t lat) {
    s->events++;
    s->lat_sum_ns += lat;
    if (lat < s->lat_min_ns) s->lat_min_ns = lat;
    if (lat > s->lat_max_ns) s->lat_max_ns = lat;
    s->hist[sb_hist_bucket(lat)]++;
}

/* Largest value that falls into bucket b. */
static inline uint64_t sb_hist_upper(uint32_t b) {
    uint32_t msb, sub;
    if (b < 8) return b;
    msb = b / 8u + 2u;
    sub = b % 8u;
    return ((uint64_t)(8u + sub) << (msb - 3u)) + ((1ull << (msb - 3u)) - 1u);
}

static inline void sb_run_one_event(struct sb_run* r, uint32_t tid, uint64_t idx, uint64_t* rng,
                                    struct sb_thread_stats* s) {
    const struct sb_options* o = &r->opt;
    switch (r->test) {
    case SB_TEST_CPU: {
        uint64_t n = sb_cpu_event(o->cpu_max_prime);
        if (s->events != 0 && n != s->check) s->check_bad = 1;
        s->check = n;
        break;
    }
    case SB_TEST_MEMORY: {
        size_t bs = (size_t)o->memory_block_size;
        if (o->memory_oper == SB_MEM_OP_TOUCH) {
            uint64_t off = idx * bs, left = o->memory_total_size - off;
            s->check += sb_mem_touch_pages(r->data + off, (size_t)(left < bs ? left : bs));
        } else {
            unsigned char* block = r->data + (o->memory_scope_global ? 0 : (size_t)tid * bs);
            if (o->memory_oper == SB_MEM_OP_READ)
                s->check += sb_mem_read_event(block, bs);
            else
                sb_mem_write_event(block, bs, SB_MEM_WRITE_VALUE);
        }
        break;
    }
    case SB_TEST_MUTEX:
        sb_mutex_event(r->locks, r->nlocks, (uint32_t)o->mutex_locks, (uint32_t)o->mutex_loops,
                       rng);
        break;
    case SB_TEST_THREADS: {
        uint32_t lock = sb_threads_next_lock(&r->req_performed, r->nlocks);
        sb_threads_event(r->locks, lock, (uint32_t)o->thread_yields, r->yield, r->yield_arg);
        break;
    }
    default:
        break;
    }
}

/* The work of event `idx` on worker `tid`, recorded in s (its check). */
typedef void (*sb_event_fn)(void* ctx, uint32_t tid, uint64_t idx, uint64_t* rng,
                            struct sb_thread_stats* s);

/* The event loop of every worker (this core's and sb_fileio.h's): takes
 * event numbers from the shared counter until the event limit or the
 * deadline and times each event alone. The caller sets end_ns. `event` is
 * a constant at each (inlined) call site, so the compiler calls it
 * directly. */
static inline void sb_run_events(struct sb_run* r, uint32_t tid, uint64_t rng, sb_event_fn event,
                                 void* ctx) {
    struct sb_thread_stats* s = &r->stats[tid];
    for (;;) {
        uint64_t idx = __atomic_fetch_add(&r->next_event, 1, __ATOMIC_RELAXED);
        uint64_t t0, t1, lat;
        if (r->max_events && idx >= r->max_events) break;
        t0 = r->now_ns(r->now_arg);
        if (r->deadline_ns && t0 >= r->deadline_ns) break;
        event(ctx, tid, idx, &rng, s);
        t1 = r->now_ns(r->now_arg);
        lat = t1 - t0;
        sb_stats_record(s, lat);
    }
}

static inline void sb_run_one_event_cb(void* ctx, uint32_t tid, uint64_t idx, uint64_t* rng,
                                       struct sb_thread_stats* s) {
    sb_run_one_event((struct sb_run*)ctx, tid, idx, rng, s);
}

/* The body of worker thread `tid` (0 .. threads-1). */
static inline void sb_run_worker(struct sb_run* r, uint32_t tid) {
    sb_run_events(r, tid, sb_rng_seed(tid), sb_run_one_event_cb, r);
    r->stats[tid].end_ns = r->now_ns(r->now_arg);
}

/* Aggregates once every worker has returned. check is:
 *   cpu: the prime count of every event (UINT64_MAX if two events disagreed);
 *   memory read: sum of all events' checksums; memory write: the sum of the
 *   words of a written block after the run (every block written in the run
 *   must agree, else UINT64_MAX); memory touch: pages touched;
 *   mutex, threads: sum of the per-lock counters (events * locks per event). */
static inline void sb_run_finish(struct sb_run* r, struct sb_result* out) {
    uint64_t events = 0, sum = 0, mn = UINT64_MAX, mx = 0, end = r->start_ns, check = 0;
    uint64_t p95 = 0, seen = 0, want, b;
    double avg, var = 0, tavg, tvar = 0;
    int bad = 0;
    uint32_t i;
    for (i = 0; i < r->threads; i++) {
        const struct sb_thread_stats* s = &r->stats[i];
        events += s->events;
        sum += s->lat_sum_ns;
        if (s->events && s->lat_min_ns < mn) mn = s->lat_min_ns;
        if (s->lat_max_ns > mx) mx = s->lat_max_ns;
        if (s->end_ns > end) end = s->end_ns;
        if (r->test == SB_TEST_CPU) {
            if (s->check_bad || (s->events && check && s->check != check)) bad = 1;
            if (s->events) check = s->check;
        } else {
            check += s->check;
        }
    }
    if (r->test == SB_TEST_CPU && bad) check = UINT64_MAX;
    if (r->test == SB_TEST_MEMORY && r->opt.memory_oper == SB_MEM_OP_WRITE) {
        /* Every block a thread wrote to must now sum to the same value. */
        size_t bs = (size_t)r->opt.memory_block_size;
        check = 0;
        for (i = 0; i < r->threads; i++) {
            uint64_t c;
            if (r->stats[i].events == 0) continue;
            c = sb_mem_read_event(r->data + (r->opt.memory_scope_global ? 0 : i * bs), bs);
            if (check != 0 && c != check) bad = 1;
            check = c;
        }
        if (bad) check = UINT64_MAX;
    }
    if (r->test == SB_TEST_MUTEX || r->test == SB_TEST_THREADS)
        check = sb_locks_total(r->locks, r->nlocks);
    /* p95: the smallest bucket at which the running count reaches 95%. */
    want = (events * 95 + 99) / 100;
    for (b = 0; b < SB_HIST_BUCKETS && events; b++) {
        for (i = 0; i < r->threads; i++)
            seen += r->stats[i].hist[b];
        if (seen >= want) {
            p95 = sb_hist_upper((uint32_t)b);
            break;
        }
    }
    if (p95 > mx) p95 = mx;
    if (events && p95 < mn) p95 = mn;
    avg = (double)events / (double)r->threads;
    for (i = 0; i < r->threads; i++) {
        double d = (double)r->stats[i].events - avg;
        var += d * d;
    }
    var /= (double)r->threads;
    tavg = (double)sum / (double)r->threads;
    for (i = 0; i < r->threads; i++) {
        double d = (double)r->stats[i].lat_sum_ns - tavg;
        tvar += d * d;
    }
    tvar /= (double)r->threads;
    out->test = r->test;
    out->threads = r->threads;
    out->events = events;
    out->time_ns = end - r->start_ns;
    out->lat_min_ns = events ? mn : 0;
    out->lat_avg_ns = events ? sum / events : 0;
    out->lat_max_ns = mx;
    out->lat_p95_ns = p95;
    out->lat_sum_ns = sum;
    out->check = check;
    out->fairness_events_avg_milli = events * 1000 / r->threads;
    out->fairness_events_stddev_milli = (uint64_t)(sb_sqrt(var) * 1000.0 + 0.5);
    out->fairness_time_avg_ns = sum / r->threads;
    out->fairness_time_stddev_ns = (uint64_t)(sb_sqrt(tvar) + 0.5);
}

#endif
