/* Options of the sysbench-style workloads (sb_cpu.h, sb_memory.h,
 * sb_mutex.h, sb_threads.h) and a tiny parser for them in sysbench syntax:
 *     --cpu-max-prime=20000 --events=100 --time=0
 * Plain C (also valid C++), no libc, no OS or SDK calls: the guests parse
 * their command line with it and the native runner parses the same string,
 * so both sides always agree on what an option means. */
#ifndef MINIVMM_WORKLOADS_SB_OPTS_H
#define MINIVMM_WORKLOADS_SB_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "sb_cpu.h"
#include "sb_memory.h"
#include "sb_mutex.h"
#include "sb_threads.h"

enum sb_test_kind { SB_TEST_CPU = 0, SB_TEST_MEMORY = 1, SB_TEST_MUTEX = 2, SB_TEST_THREADS = 3 };

enum sb_mem_oper { SB_MEM_OP_WRITE = 0, SB_MEM_OP_READ = 1, SB_MEM_OP_TOUCH = 2 };

/* What "yield" is in the threads test (--thread-yield): a burst of
 * --yield-pauses `pause` instructions (the same code natively and in a
 * guest), or giving the CPU to the scheduler (sched_yield() natively, as
 * sysbench; the yield hypercall in a guest, where the VMM's vCPU thread calls
 * sched_yield()). */
enum sb_yield_kind { SB_YIELD_PAUSE = 0, SB_YIELD_SCHED = 1 };

static inline const char* sb_test_name(int kind) {
    switch (kind) {
    case SB_TEST_CPU:
        return "cpu";
    case SB_TEST_MEMORY:
        return "memory";
    case SB_TEST_MUTEX:
        return "mutex";
    case SB_TEST_THREADS:
        return "threads";
    default:
        return "unknown";
    }
}

/* Defaults are sysbench 1.0's, except memory-block-size (8K here, 1K in
 * sysbench) and memory-total-size (64M here, 100G in sysbench). */
struct sb_options {
    uint64_t threads; /* --threads: 0 = the runner decides (guest: every vCPU) */
    uint64_t events;  /* --events: total events, 0 = no limit */
    uint64_t time_s;  /* --time: seconds, 0 = no limit */
    uint64_t cpu_max_prime;
    uint64_t memory_block_size;
    uint64_t memory_total_size;
    uint64_t memory_oper;         /* enum sb_mem_oper: write, read, touch */
    uint64_t memory_scope_global; /* 1 global (one shared block), 0 local */
    uint64_t mutex_num;
    uint64_t mutex_locks;
    uint64_t mutex_loops;
    uint64_t thread_yields;
    uint64_t thread_locks;
    uint64_t thread_yield; /* --thread-yield: enum sb_yield_kind */
    uint64_t yield_pauses; /* --yield-pauses: `pause` instructions of a pause yield */
};

static inline void sb_options_default(struct sb_options* o) {
    o->threads = 0;
    o->events = 0;
    o->time_s = 10;
    o->cpu_max_prime = SB_CPU_DEFAULT_MAX_PRIME;
    o->memory_block_size = 8192;
    o->memory_total_size = 64ull << 20;
    o->memory_oper = SB_MEM_OP_WRITE;
    o->memory_scope_global = 1;
    o->mutex_num = SB_MUTEX_DEFAULT_NUM;
    o->mutex_locks = SB_MUTEX_DEFAULT_LOCKS;
    o->mutex_loops = SB_MUTEX_DEFAULT_LOOPS;
    o->thread_yields = SB_THREADS_DEFAULT_YIELDS;
    o->thread_locks = SB_THREADS_DEFAULT_LOCKS;
    o->thread_yield = SB_YIELD_PAUSE;
    o->yield_pauses = 16;
}

/* [s, s + n) equals the NUL-terminated word w. */
static inline int sb_str_eq(const char* s, size_t n, const char* w) {
    size_t i;
    for (i = 0; i < n; i++)
        if (w[i] == '\0' || w[i] != s[i]) return 0;
    return w[n] == '\0';
}

/* One of `n` words: stores values[i] in *out for the word v names. 1 on a
 * match, 0 otherwise. */
static inline int sb_parse_choice(const char* v, size_t vn, const char* const* words,
                                  const uint64_t* values, size_t n, uint64_t* out) {
    size_t i;
    for (i = 0; i < n; i++)
        if (sb_str_eq(v, vn, words[i])) {
            *out = values[i];
            return 1;
        }
    return 0;
}

/* Decimal number with an optional sysbench size suffix (k/K, m/M, g/G, t/T:
 * powers of 1024) when `size` is set. 1 on success, 0 on junk or overflow. */
static inline int sb_parse_number(const char* s, size_t n, int size, uint64_t* out) {
    uint64_t v = 0, mult = 1;
    size_t i = 0;
    if (n == 0) return 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (i == 0) return 0;
    if (i + 1 == n && size) {
        switch (s[i]) {
        case 'k':
        case 'K':
            mult = 1ull << 10;
            break;
        case 'm':
        case 'M':
            mult = 1ull << 20;
            break;
        case 'g':
        case 'G':
            mult = 1ull << 30;
            break;
        case 't':
        case 'T':
            mult = 1ull << 40;
            break;
        default:
            return 0;
        }
        i++;
    }
    if (i != n) return 0;
    if (v > UINT64_MAX / mult) return 0;
    *out = v * mult;
    return 1;
}

/* A numeric option: its name, where its value goes, whether it takes a
 * size suffix (sb_parse_number). */
struct sb_num_opt {
    const char* name;
    uint64_t* field;
    int size;
};

/* Applies `key=value` if the key is one of opts[0..n): 1 applied, 0 a bad
 * value, -1 not one of these keys. */
static inline int sb_apply_numeric(const struct sb_num_opt* opts, size_t n, const char* k,
                                   size_t kn, const char* v, size_t vn) {
    size_t i;
    for (i = 0; i < n; i++)
        if (sb_str_eq(k, kn, opts[i].name))
            return sb_parse_number(v, vn, opts[i].size, opts[i].field);
    return -1;
}

/* Applies one `key=value` (without the leading "--"). 1 ok, 0 bad. */
static inline int sb_apply_option(struct sb_options* o, const char* k, size_t kn, const char* v,
                                  size_t vn) {
    const struct sb_num_opt nums[] = {
        {"threads", &o->threads, 0},
        {"events", &o->events, 0},
        {"time", &o->time_s, 0},
        {"cpu-max-prime", &o->cpu_max_prime, 0},
        {"memory-block-size", &o->memory_block_size, 1},
        {"memory-total-size", &o->memory_total_size, 1},
        {"mutex-num", &o->mutex_num, 0},
        {"mutex-locks", &o->mutex_locks, 0},
        {"mutex-loops", &o->mutex_loops, 0},
        {"thread-yields", &o->thread_yields, 0},
        {"thread-locks", &o->thread_locks, 0},
        {"yield-pauses", &o->yield_pauses, 0},
    };
    int r = sb_apply_numeric(nums, sizeof nums / sizeof nums[0], k, kn, v, vn);
    if (r >= 0) return r;
    if (sb_str_eq(k, kn, "memory-oper")) {
        static const char* const words[] = {"write", "read", "touch"};
        static const uint64_t values[] = {SB_MEM_OP_WRITE, SB_MEM_OP_READ, SB_MEM_OP_TOUCH};
        return sb_parse_choice(v, vn, words, values, 3, &o->memory_oper);
    }
    if (sb_str_eq(k, kn, "memory-scope")) {
        static const char* const words[] = {"global", "local"};
        static const uint64_t values[] = {1, 0};
        return sb_parse_choice(v, vn, words, values, 2, &o->memory_scope_global);
    }
    if (sb_str_eq(k, kn, "memory-access-mode")) return sb_str_eq(v, vn, "seq"); /* only seq */
    if (sb_str_eq(k, kn, "thread-yield")) {
        static const char* const words[] = {"pause", "sched"};
        static const uint64_t values[] = {SB_YIELD_PAUSE, SB_YIELD_SCHED};
        return sb_parse_choice(v, vn, words, values, 2, &o->thread_yield);
    }
    return 0;
}

/* Calls apply(ctx, key, key_len, value, value_len) for every space-separated
 * `--key=value` token of s. 1 when every token is well formed and applied;
 * else 0 with *bad (when bad != NULL) at the first bad token. */
typedef int (*sb_apply_fn)(void* ctx, const char* k, size_t kn, const char* v, size_t vn);
static inline int sb_for_each_option(const char* s, sb_apply_fn apply, void* ctx,
                                     const char** bad) {
    while (*s) {
        const char *tok, *eq = 0;
        size_t len;
        while (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        if (!*s) break;
        tok = s;
        while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
            if (*s == '=' && !eq) eq = s;
            s++;
        }
        len = (size_t)(s - tok);
        if (len < 4 || tok[0] != '-' || tok[1] != '-' || !eq ||
            !apply(ctx, tok + 2, (size_t)(eq - tok - 2), eq + 1, (size_t)(s - eq - 1))) {
            if (bad) *bad = tok;
            return 0;
        }
    }
    if (bad) *bad = s;
    return 1;
}

static inline int sb_apply_option_cb(void* ctx, const char* k, size_t kn, const char* v,
                                     size_t vn) {
    return sb_apply_option((struct sb_options*)ctx, k, kn, v, vn);
}

/* Parses a whole command line of space-separated `--key=value` tokens into
 * *o (which should hold the defaults). Returns 1 on success; on failure 0,
 * with *bad at the first bad token (when bad != NULL). Then checks the
 * values: zero sizes/counts and a block size that is not a multiple of 8
 * (4096 for touch) are errors. */
static inline int sb_parse_options(const char* s, struct sb_options* o, const char** bad) {
    if (!sb_for_each_option(s, sb_apply_option_cb, o, bad)) return 0;
    if (o->cpu_max_prime == 0 || o->memory_block_size == 0 || o->memory_total_size == 0 ||
        o->mutex_num == 0 || o->mutex_num > 0xffffffffull || o->mutex_locks > 0xffffffffull ||
        o->mutex_loops > 0xffffffffull || o->thread_locks == 0 || o->thread_locks > 0xffffffffull ||
        o->thread_yields > 0xffffffffull || o->yield_pauses > 0xffffffffull)
        return 0;
    if (o->memory_block_size % (o->memory_oper == SB_MEM_OP_TOUCH ? SB_MEM_PAGE_SIZE : 8u))
        return 0;
    return 1;
}

#endif
