/* sysbench 1.0's human-readable report of one run, made from a struct
 * sb_result: the same sections, labels and column positions as `sysbench
 * TEST ... run` prints after "Threads started!" (checked byte for byte
 * against a captured sysbench 1.0.20 report by the tests), so a native run,
 * a guest run and sysbench itself read alike side by side. The guests print
 * it before their sb-result line; the native runner formats it with the same
 * code. Plain C (also valid C++), no libc and no printf: fixed-point numbers
 * are formatted here, rounding half to even as glibc's printf does for
 * values that are exact ties. */
#ifndef MINIVMM_WORKLOADS_SB_REPORT_H
#define MINIVMM_WORKLOADS_SB_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "sb_run.h"

/* What the test-specific section needs besides the result. */
struct sb_report_info {
    const char* test;           /* "cpu", "memory", "mutex", "threads", "fileio" */
    const char* options;        /* the run's options as given (printed), or 0 */
    uint64_t memory_block_size; /* memory: bytes per event */
    uint64_t file_block_size;   /* fileio: bytes per read or write */
    uint64_t reads, writes, fsyncs;
};

/* A bounded text sink: `len` counts every character, also those past `cap`
 * (the caller can tell the text was cut, as with snprintf). */
struct sb_text {
    char* buf;
    size_t cap, len;
};

static inline void sb_text_char(struct sb_text* t, char c) {
    if (t->len + 1 < t->cap) t->buf[t->len] = c;
    t->len++;
}

static inline void sb_text_str(struct sb_text* t, const char* s) {
    while (*s)
        sb_text_char(t, *s++);
}

static inline void sb_text_u64(struct sb_text* t, uint64_t v) {
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        sb_text_char(t, tmp[--n]);
}

/* printf("%*.*f", width, decimals, v) for v >= 0 (v * 10^decimals is
 * clamped to 1.8e19, far beyond any figure of a run). */
static inline void sb_text_fixed(struct sb_text* t, double v, unsigned decimals, unsigned width) {
    uint64_t scale = 1, whole, frac, digits = 1, w;
    double scaled, fl;
    unsigned i;
    for (i = 0; i < decimals; i++)
        scale *= 10;
    if (!(v > 0)) v = 0; /* also NaN */
    scaled = v * (double)scale;
    if (scaled > 1.8e19) scaled = 1.8e19;
    fl = (double)(uint64_t)scaled;
    w = (uint64_t)fl;
    if (scaled - fl > 0.5 || (scaled - fl == 0.5 && (w & 1))) w++;
    whole = w / scale;
    frac = w % scale;
    for (w = whole; w >= 10; w /= 10)
        digits++;
    digits += decimals ? decimals + 1 : 0;
    for (; digits < width; digits++)
        sb_text_char(t, ' ');
    sb_text_u64(t, whole);
    if (decimals == 0) return;
    sb_text_char(t, '.');
    for (i = decimals; i > 0; i--) {
        uint64_t d = frac, k;
        for (k = 1; k < i; k++)
            d /= 10;
        sb_text_char(t, (char)('0' + d % 10));
    }
}

/* One "label value" line: the label, then the value right after it. */
static inline void sb_text_line(struct sb_text* t, const char* label, double v, unsigned decimals,
                                unsigned width, const char* unit) {
    sb_text_str(t, label);
    sb_text_fixed(t, v, decimals, width);
    sb_text_str(t, unit);
    sb_text_char(t, '\n');
}

static inline int sb_report_is(const char* a, const char* b) {
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* Writes the report into buf (NUL-terminated, cut at cap - 1 characters);
 * returns the length the whole report needs. */
static inline size_t sb_report_format(char* buf, size_t cap, const struct sb_result* r,
                                      const struct sb_report_info* info) {
    struct sb_text t = {buf, cap, 0};
    const double secs = (double)r->time_ns / 1e9;
    const double per_s = secs > 0 ? 1.0 / secs : 0;
    const double mib = 1024.0 * 1024.0;
    sb_text_str(&t, "Running the test with following options:\n");
    if (info->options) {
        sb_text_str(&t, info->options);
        sb_text_char(&t, '\n');
    }
    sb_text_str(&t, "Number of threads: ");
    sb_text_u64(&t, r->threads);
    sb_text_str(&t, "\n\nThreads started!\n\n");
    if (sb_report_is(info->test, "cpu")) {
        sb_text_str(&t, "CPU speed:\n");
        sb_text_line(&t, "    events per second: ", (double)r->events * per_s, 2, 8, "\n");
    } else if (sb_report_is(info->test, "memory")) {
        double moved = (double)r->events * (double)info->memory_block_size / mib;
        sb_text_str(&t, "Total operations: ");
        sb_text_u64(&t, r->events);
        sb_text_str(&t, " (");
        sb_text_fixed(&t, (double)r->events * per_s, 2, 8);
        sb_text_str(&t, " per second)\n\n");
        sb_text_fixed(&t, moved, 2, 4);
        sb_text_str(&t, " MiB transferred (");
        sb_text_fixed(&t, moved * per_s, 2, 4);
        sb_text_str(&t, " MiB/sec)\n\n\n");
    } else if (sb_report_is(info->test, "fileio")) {
        sb_text_str(&t, "\nFile operations:\n");
        sb_text_line(&t, "    reads/s:                      ", (double)info->reads * per_s, 2, 4,
                     "");
        sb_text_line(&t, "    writes/s:                     ", (double)info->writes * per_s, 2, 4,
                     "");
        sb_text_line(&t, "    fsyncs/s:                     ", (double)info->fsyncs * per_s, 2, 4,
                     "");
        sb_text_str(&t, "\nThroughput:\n");
        sb_text_line(&t, "    read, MiB/s:                  ",
                     (double)info->reads * (double)info->file_block_size / mib * per_s, 2, 4, "");
        sb_text_line(&t, "    written, MiB/s:               ",
                     (double)info->writes * (double)info->file_block_size / mib * per_s, 2, 4, "");
        sb_text_char(&t, '\n');
    } else {
        sb_text_char(&t, '\n');
    }
    sb_text_str(&t, "General statistics:\n");
    sb_text_line(&t, "    total time:                          ", secs, 4, 0, "s");
    sb_text_str(&t, "    total number of events:              ");
    sb_text_u64(&t, r->events);
    sb_text_str(&t, "\n\nLatency (ms):\n");
    sb_text_line(&t, "         min: ", (double)r->lat_min_ns / 1e6, 2, 39, "");
    sb_text_line(&t, "         avg: ", (double)r->lat_avg_ns / 1e6, 2, 39, "");
    sb_text_line(&t, "         max: ", (double)r->lat_max_ns / 1e6, 2, 39, "");
    sb_text_line(&t, "         95th percentile: ", (double)r->lat_p95_ns / 1e6, 2, 27, "");
    sb_text_line(&t, "         sum: ", (double)r->lat_sum_ns / 1e6, 2, 39, "");
    sb_text_str(&t, "\nThreads fairness:\n    events (avg/stddev):           ");
    sb_text_fixed(&t, (double)r->fairness_events_avg_milli / 1000.0, 4, 0);
    sb_text_char(&t, '/');
    sb_text_fixed(&t, (double)r->fairness_events_stddev_milli / 1000.0, 2, 3);
    sb_text_str(&t, "\n    execution time (avg/stddev):   ");
    sb_text_fixed(&t, (double)r->fairness_time_avg_ns / 1e9, 4, 0);
    sb_text_char(&t, '/');
    sb_text_fixed(&t, (double)r->fairness_time_stddev_ns / 1e9, 2, 3);
    sb_text_str(&t, "\n\n");
    if (cap) buf[t.len < cap ? t.len : cap - 1] = '\0';
    return t.len;
}

#endif
