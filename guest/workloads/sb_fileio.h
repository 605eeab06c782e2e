/* sysbench 1.0 "fileio"-style workload core, shared by the sb_fileio guest
 * (files on the paravirtual block device) and native runs (real files with
 * pread/pwrite/fdatasync). Plain C (also valid C++), no libc, no OS or SDK
 * calls: the caller supplies the I/O as a function table (struct
 * sb_fio_ops), memory, threads and a clock.
 *
 * Options (sysbench syntax, `--key=value`, defaults as sysbench 1.0 except
 * --file-total-size): --threads, --events (0 = no limit), --time (default
 * 10 s, 0 = no limit), --file-num=128, --file-total-size=64M,
 * --file-block-size=16K (a multiple of 512), --file-test-mode=rndrw
 * (also rndrd, rndwr), --file-rw-ratio=1.5 (reads:writes, up to 3
 * decimals), --file-fsync-freq=100 (0 = never), --file-fsync-end=on|off,
 * --file-io-mode=sync (the only mode).
 *
 * Files: file_size = file-total-size / file-num rounded down to a multiple of
 * the block size. In the guest the "file system" is trivial: file i is the
 * fixed contiguous extent [i * file_size, (i + 1) * file_size) of the disk.
 *
 * Phases, as sysbench's: prepare (each thread writes each of its files fully
 * once, block by block, and syncs it), run (timed events), cleanup (the
 * caller's: the guest has nothing to remove, natively the files are
 * unlinked).
 *
 * Events: handed out from a shared counter as in sb_run.h. One event is one
 * request: every --file-fsync-freq reads/writes a thread makes, its next
 * event is a sync of one file, its files taken in turn (sysbench's fsync
 * request also syncs one file, the files in turn, and counts as an
 * event); otherwise a read or a write of one block at a uniformly random
 * block of one of the thread's files (sysbench's default distribution is
 * "special"; this one is uniform). rndrw picks reads and writes with
 * per-thread counters so that reads:writes tends to --file-rw-ratio: the
 * request is a write when reads >= ratio * (writes + 1).
 *
 * Verification: thread t owns files t, t + T, t + 2T, ... (T threads), so
 * its view of them is exact. Each block written carries, at the start of
 * every 512-byte sector, a header {magic, file, block, generation, sector,
 * hash}; the core keeps each block's generation and every read checks the
 * headers of every sector against the last write. The result's check field
 * is the number of verified reads. */
#ifndef MINIVMM_WORKLOADS_SB_FILEIO_H
#define MINIVMM_WORKLOADS_SB_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "sb_opts.h"
#include "sb_run.h"

#define SB_TEST_FILEIO 4
#define SB_FIO_SECTOR 512u
#define SB_FIO_MAGIC 0x4f49454c49464253ull /* "SBFILEIO" */

enum sb_fio_mode { SB_FIO_RNDRW = 0, SB_FIO_RNDRD = 1, SB_FIO_RNDWR = 2 };

struct sb_fio_options {
    uint64_t threads; /* 0 = the runner decides */
    uint64_t events;
    uint64_t time_s;
    uint64_t file_num;
    uint64_t file_total_size;
    uint64_t file_block_size;
    uint64_t mode; /* enum sb_fio_mode */
    uint64_t rw_ratio_milli;
    uint64_t fsync_freq;
    uint64_t fsync_end;
};

static inline void sb_fio_options_default(struct sb_fio_options* o) {
    o->threads = 0;
    o->events = 0;
    o->time_s = 10;
    o->file_num = 128;
    o->file_total_size = 64ull << 20;
    o->file_block_size = 16384;
    o->mode = SB_FIO_RNDRW;
    o->rw_ratio_milli = 1500;
    o->fsync_freq = 100;
    o->fsync_end = 1;
}

/* "1.5" -> 1500. 1 on success. */
static inline int sb_fio_parse_milli(const char* s, size_t n, uint64_t* out) {
    uint64_t whole = 0, frac = 0, scale = 100;
    size_t i = 0, dot = n;
    for (i = 0; i < n; i++)
        if (s[i] == '.') dot = i;
    if (dot == 0 || !sb_parse_number(s, dot, 0, &whole) || whole > 1000000000ull) return 0;
    if (dot < n) {
        if (dot + 1 == n || n - dot - 1 > 3) return 0;
        for (i = dot + 1; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') return 0;
            frac += (uint64_t)(s[i] - '0') * scale;
            scale /= 10;
        }
    }
    *out = whole * 1000 + frac;
    return 1;
}

static inline int sb_fio_apply_option(struct sb_fio_options* o, const char* k, size_t kn,
                                      const char* v, size_t vn) {
    const struct sb_num_opt nums[] = {
        {"threads", &o->threads, 0},
        {"events", &o->events, 0},
        {"time", &o->time_s, 0},
        {"file-num", &o->file_num, 0},
        {"file-total-size", &o->file_total_size, 1},
        {"file-block-size", &o->file_block_size, 1},
        {"file-fsync-freq", &o->fsync_freq, 0},
    };
    int r = sb_apply_numeric(nums, sizeof nums / sizeof nums[0], k, kn, v, vn);
    if (r >= 0) return r;
    if (sb_str_eq(k, kn, "file-rw-ratio")) return sb_fio_parse_milli(v, vn, &o->rw_ratio_milli);
    if (sb_str_eq(k, kn, "file-test-mode")) {
        static const char* const words[] = {"rndrw", "rndrd", "rndwr"};
        static const uint64_t values[] = {SB_FIO_RNDRW, SB_FIO_RNDRD, SB_FIO_RNDWR};
        return sb_parse_choice(v, vn, words, values, 3, &o->mode);
    }
    if (sb_str_eq(k, kn, "file-fsync-end")) {
        static const char* const words[] = {"on", "off"};
        static const uint64_t values[] = {1, 0};
        return sb_parse_choice(v, vn, words, values, 2, &o->fsync_end);
    }
    if (sb_str_eq(k, kn, "file-io-mode")) return sb_str_eq(v, vn, "sync");
    return 0;
}

/* Size of each file (0 if the options give less than one block per file). */
static inline uint64_t sb_fio_file_size(const struct sb_fio_options* o) {
    uint64_t per = o->file_total_size / o->file_num;
    return per / o->file_block_size * o->file_block_size;
}

static inline int sb_fio_apply_option_cb(void* ctx, const char* k, size_t kn, const char* v,
                                         size_t vn) {
    return sb_fio_apply_option((struct sb_fio_options*)ctx, k, kn, v, vn);
}

/* Parses space-separated `--key=value` tokens into *o (holding defaults).
 * 1 on success; 0 with *bad at the bad token, or at the end of the string
 * when the values are inconsistent (zero file count, a block size that is
 * not a multiple of 512, files smaller than one block, a zero rw ratio). */
static inline int sb_fio_parse_options(const char* s, struct sb_fio_options* o, const char** bad) {
    if (!sb_for_each_option(s, sb_fio_apply_option_cb, o, bad)) return 0;
    if (o->file_num == 0 || o->file_num > 0xffffffffull || o->file_block_size == 0 ||
        o->file_block_size % SB_FIO_SECTOR != 0 || o->file_block_size > (1ull << 30) ||
        o->rw_ratio_milli == 0)
        return 0;
    return sb_fio_file_size(o) != 0;
}

/* The I/O a runner supplies. Offsets are bytes within a file; every call
 * returns 0 on success or a non-zero error code (the guest: the device
 * status). sync makes everything written to `file` durable (natively
 * fdatasync of that file; a guest on a raw disk can only flush the whole
 * disk, as a guest file system's fsync ends in a disk flush too). */
struct sb_fio_ops {
    int (*read)(void* arg, uint32_t tid, uint64_t file, uint64_t off, void* buf, uint64_t len);
    int (*write)(void* arg, uint32_t tid, uint64_t file, uint64_t off, const void* buf,
                 uint64_t len);
    int (*sync)(void* arg, uint32_t tid, uint64_t file);
    void* arg;
};

/* Per-thread state, one cache line. */
struct sb_fio_thread {
    uint64_t reads, writes, syncs, since_sync;
    uint64_t next_sync; /* the thread's next file to sync: tid + next_sync * T */
    uint64_t verify_failures, io_errors;
    uint64_t first_error_file, first_error_status; /* first I/O error */
} __attribute__((aligned(64)));

struct sb_fio_run {
    /* set by the caller before sb_fio_prepare */
    struct sb_fio_options opt;
    uint32_t threads;
    sb_now_fn now_ns;
    void* now_arg;
    struct sb_fio_ops ops;
    unsigned char* mem; /* sb_fio_bytes() bytes, page aligned */
    /* set by sb_fio_prepare */
    struct sb_run base; /* stats, clock, event counter; test = SB_TEST_FILEIO */
    struct sb_fio_thread* th;
    uint32_t* gen; /* generation of every block, file-major */
    unsigned char* bufs;
    uint64_t file_size, file_blocks;
};

static inline uint64_t sb_fio_gen_offset(uint32_t threads) {
    return (uint64_t)threads * (sizeof(struct sb_thread_stats) + sizeof(struct sb_fio_thread));
}
static inline uint64_t sb_fio_buf_offset(const struct sb_fio_options* o, uint32_t threads) {
    uint64_t blocks = o->file_num * (sb_fio_file_size(o) / o->file_block_size);
    return sb_align_up(sb_fio_gen_offset(threads) + blocks * sizeof(uint32_t), 4096);
}
/* Memory the caller must supply (options already validated). */
static inline uint64_t sb_fio_bytes(const struct sb_fio_options* o, uint32_t threads) {
    return sb_fio_buf_offset(o, threads) + (uint64_t)threads * o->file_block_size;
}

/* Untimed set-up on one thread. 0 if threads is 0, there are fewer files
 * than threads, or the run could never end. */
static inline int sb_fio_prepare(struct sb_fio_run* r) {
    struct sb_run* b = &r->base;
    uint32_t i;
    uint64_t k, nblocks;
    if (r->threads == 0 || r->opt.file_num < r->threads) return 0;
    r->file_size = sb_fio_file_size(&r->opt);
    r->file_blocks = r->file_size / r->opt.file_block_size;
    sb_options_default(&b->opt);
    b->opt.events = r->opt.events;
    b->opt.time_s = r->opt.time_s;
    b->opt.threads = r->threads;
    b->test = SB_TEST_FILEIO;
    b->threads = r->threads;
    b->now_ns = r->now_ns;
    b->now_arg = r->now_arg;
    b->yield = 0;
    b->yield_arg = 0;
    b->mem = r->mem;
    b->stats = (struct sb_thread_stats*)(void*)r->mem;
    b->locks = 0;
    b->nlocks = 0;
    b->data = 0;
    for (i = 0; i < r->threads; i++)
        sb_stats_reset(&b->stats[i]);
    r->th = (struct sb_fio_thread*)(void*)(r->mem +
                                           (uint64_t)r->threads * sizeof(struct sb_thread_stats));
    for (i = 0; i < r->threads; i++) {
        struct sb_fio_thread* t = &r->th[i];
        t->reads = t->writes = t->syncs = t->since_sync = t->next_sync = 0;
        t->verify_failures = t->io_errors = t->first_error_file = t->first_error_status = 0;
    }
    r->gen = (uint32_t*)(void*)(r->mem + sb_fio_gen_offset(r->threads));
    nblocks = r->opt.file_num * r->file_blocks;
    for (k = 0; k < nblocks; k++)
        r->gen[k] = 0;
    r->bufs = r->mem + sb_fio_buf_offset(&r->opt, r->threads);
    b->max_events = r->opt.events;
    b->next_event = 0;
    b->req_performed = 0;
    b->deadline_ns = 0;
    return b->max_events != 0 || r->opt.time_s != 0;
}

static inline uint64_t sb_fio_hash(uint64_t file, uint64_t block, uint64_t gen, uint64_t sector) {
    uint64_t z = file * 0x9e3779b97f4a7c15ull ^ block * 0xbf58476d1ce4e5b9ull ^
                 gen * 0x94d049bb133111ebull ^ sector;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Writes the header of every sector of a block. */
static inline void sb_fio_stamp(unsigned char* buf, uint64_t len, uint64_t file, uint64_t block,
                                uint64_t gen) {
    uint64_t s;
    for (s = 0; s < len / SB_FIO_SECTOR; s++) {
        uint64_t* w = (uint64_t*)(void*)(buf + s * SB_FIO_SECTOR);
        w[0] = SB_FIO_MAGIC;
        w[1] = file;
        w[2] = block;
        w[3] = gen;
        w[4] = s;
        w[5] = sb_fio_hash(file, block, gen, s);
    }
}

/* 1 if every sector of the block carries the expected header. */
static inline int sb_fio_verify(const unsigned char* buf, uint64_t len, uint64_t file,
                                uint64_t block, uint64_t gen) {
    uint64_t s;
    for (s = 0; s < len / SB_FIO_SECTOR; s++) {
        const uint64_t* w = (const uint64_t*)(const void*)(buf + s * SB_FIO_SECTOR);
        if (w[0] != SB_FIO_MAGIC || w[1] != file || w[2] != block || w[3] != gen || w[4] != s ||
            w[5] != sb_fio_hash(file, block, gen, s))
            return 0;
    }
    return 1;
}

static inline void sb_fio_io_error(struct sb_fio_thread* t, uint64_t file, int status) {
    if (t->io_errors++ == 0) {
        t->first_error_file = file;
        t->first_error_status = (uint64_t)(unsigned)status;
    }
}

static inline void sb_fio_sync(struct sb_fio_run* r, uint32_t tid, uint64_t file) {
    int rc = r->ops.sync(r->ops.arg, tid, file);
    r->th[tid].syncs++;
    if (rc != 0) sb_fio_io_error(&r->th[tid], file, rc);
}

/* Every file thread `tid` owns, one sync each (sysbench's end-of-run fsync). */
static inline void sb_fio_sync_all(struct sb_fio_run* r, uint32_t tid) {
    uint64_t f;
    for (f = tid; f < r->opt.file_num; f += r->threads)
        sb_fio_sync(r, tid, f);
}

static inline void sb_fio_write_block(struct sb_fio_run* r, uint32_t tid, uint64_t file,
                                      uint64_t block) {
    uint64_t bs = r->opt.file_block_size;
    unsigned char* buf = r->bufs + (uint64_t)tid * bs;
    uint32_t* g = &r->gen[file * r->file_blocks + block];
    int rc;
    *g = *g + 1 == 0 ? 1 : *g + 1;
    sb_fio_stamp(buf, bs, file, block, *g);
    rc = r->ops.write(r->ops.arg, tid, file, block * bs, buf, bs);
    if (rc != 0) {
        *g = 0; /* contents unknown now: not verified again */
        sb_fio_io_error(&r->th[tid], file, rc);
    }
}

/* Prepare phase of thread `tid`: writes each of its files fully and syncs it
 * (as sysbench's prepare). */
static inline void sb_fio_prepare_files(struct sb_fio_run* r, uint32_t tid) {
    uint64_t f, b;
    for (f = tid; f < r->opt.file_num; f += r->threads) {
        for (b = 0; b < r->file_blocks; b++)
            sb_fio_write_block(r, tid, f, b);
        sb_fio_sync(r, tid, f);
    }
}

static inline void sb_fio_event(struct sb_fio_run* r, uint32_t tid, uint64_t* rng,
                                struct sb_thread_stats* s) {
    struct sb_fio_thread* t = &r->th[tid];
    uint64_t owned = (r->opt.file_num - tid + r->threads - 1) / r->threads;
    uint64_t file, block, bs = r->opt.file_block_size;
    int write;
    if (r->opt.fsync_freq && t->since_sync >= r->opt.fsync_freq) {
        t->since_sync = 0;
        sb_fio_sync(r, tid, tid + t->next_sync * r->threads);
        t->next_sync = t->next_sync + 1 == owned ? 0 : t->next_sync + 1;
        return;
    }
    t->since_sync++;
    if (r->opt.mode == SB_FIO_RNDRD)
        write = 0;
    else if (r->opt.mode == SB_FIO_RNDWR)
        write = 1;
    else
        write = t->reads * 1000 >= r->opt.rw_ratio_milli * (t->writes + 1);
    file = tid + (sb_xorshift64(rng) % owned) * r->threads;
    block = sb_xorshift64(rng) % r->file_blocks;
    if (write) {
        t->writes++;
        sb_fio_write_block(r, tid, file, block);
    } else {
        unsigned char* buf = r->bufs + (uint64_t)tid * bs;
        uint32_t g = r->gen[file * r->file_blocks + block];
        int rc;
        t->reads++;
        rc = r->ops.read(r->ops.arg, tid, file, block * bs, buf, bs);
        if (rc != 0) {
            sb_fio_io_error(t, file, rc);
        } else if (g != 0) { /* 0: an earlier write failed, nothing to compare with */
            if (sb_fio_verify(buf, bs, file, block, g))
                s->check++;
            else
                t->verify_failures++;
        }
    }
}

/* Marks the start of the timed run (after every thread's prepare). */
static inline void sb_fio_start(struct sb_fio_run* r) {
    sb_run_start(&r->base);
}

static inline void sb_fio_event_cb(void* ctx, uint32_t tid, uint64_t idx, uint64_t* rng,
                                   struct sb_thread_stats* s) {
    (void)idx;
    sb_fio_event((struct sb_fio_run*)ctx, tid, rng, s);
}

/* The run phase of worker `tid` (then the final sync with --file-fsync-end). */
static inline void sb_fio_worker(struct sb_fio_run* r, uint32_t tid) {
    sb_run_events(&r->base, tid, sb_rng_seed(tid + 0x5eed), sb_fio_event_cb, r);
    if (r->opt.fsync_end && r->opt.mode != SB_FIO_RNDRD) sb_fio_sync_all(r, tid);
    r->base.stats[tid].end_ns = r->base.now_ns(r->base.now_arg);
}

/* Aggregates once every worker has returned: check = verified reads.
 * Returns 0, 4 on any verification failure, 5 on any I/O error (failures
 * win), which are also the guest's exit codes. */
static inline int sb_fio_finish(struct sb_fio_run* r, struct sb_result* out) {
    uint64_t bad = 0, io = 0;
    uint32_t i;
    sb_run_finish(&r->base, out);
    for (i = 0; i < r->threads; i++) {
        bad += r->th[i].verify_failures;
        io += r->th[i].io_errors;
    }
    if (bad) return 4;
    return io ? 5 : 0;
}

static inline uint64_t sb_fio_total(const struct sb_fio_run* r, int what) {
    uint64_t n = 0;
    uint32_t i;
    for (i = 0; i < r->threads; i++)
        n += what == 0   ? r->th[i].reads
             : what == 1 ? r->th[i].writes
             : what == 2 ? r->th[i].syncs
             : what == 3 ? r->th[i].verify_failures
                         : r->th[i].io_errors;
    return n;
}

/* The result line (SB_RESULT_FMT from sb_run.h) with test=fileio. */
#define SB_FIO_RESULT_ARGS(r) SB_RESULT_ARGS_NAMED("fileio", r)

/* A second line with the I/O counts: reads writes syncs failures errors. */
#define SB_FIO_STATS_FMT                                                                           \
    "sb-fileio reads=%lu writes=%lu fsyncs=%lu verify_failures=%lu io_errors=%lu\n"
#define SB_FIO_STATS_ARGS(r)                                                                       \
    (unsigned long)sb_fio_total(r, 0), (unsigned long)sb_fio_total(r, 1),                          \
        (unsigned long)sb_fio_total(r, 2), (unsigned long)sb_fio_total(r, 3),                      \
        (unsigned long)sb_fio_total(r, 4)

#endif
