/* sb_static: the sysbench-style workload cores (guest/workloads/sb_*.h) as
 * an ordinary static Linux program, single-threaded, for running the same
 * binary natively and as a Linux program under minivmm (issue 16):
 *
 *     sb_static TEST [--key=value ...]
 *
 * TEST is cpu, memory, mutex, threads or fileio; the options are sysbench's,
 * parsed by the cores' own parsers (sb_opts.h, sb_fileio.h), --threads only
 * 0 or 1. It prints what the sb_* guests and minivmm-bench's native runner
 * print: sysbench's report (sb_report.h), then the "sb-result ..." line
 * (SB_RESULT_FMT; fileio also the "sb-fileio ..." line), which
 * minivmm::workloads::parse_result_line reads.
 *
 * It uses ordinary system calls only: memory from an anonymous mmap, events
 * timed with clock_gettime(CLOCK_MONOTONIC) (the vDSO's, natively and under
 * minivmm) where the guests and the native runner read the TSC themselves,
 * output with write. fileio works on test_file.0 .. N-1 in the current
 * directory with pread, pwrite and fdatasync, and removes them. The threads
 * test's --thread-yield=sched is sched_yield(2).
 *
 * Exit status: 0 done, 2 bad command line, 3 no memory or a file cannot be
 * created, 4 fileio read back something else than it wrote, 5 fileio I/O
 * error. */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "sb_fileio.h"
#include "sb_report.h"
#include "sb_run.h"

static uint64_t now_ns(void* arg) {
    struct timespec t;
    (void)arg;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void yield_pause(void* arg) {
    sb_pause_burst((uint32_t)(uintptr_t)arg);
}

static void yield_sched(void* arg) {
    (void)arg;
    sched_yield();
}

static void write_all(const char* s, size_t n) {
    while (n != 0) {
        ssize_t w = write(1, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) exit(1);
        s += w;
        n -= (size_t)w;
    }
}

/* Fresh anonymous memory, so that the memory test's touch mode includes the
 * first-touch faults (as the native runner's). */
static unsigned char* map_memory(uint64_t bytes) {
    size_t len = (size_t)sb_align_up(bytes ? bytes : 1, 4096);
    void* p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "sb_static: cannot map %zu bytes: %s\n", len, strerror(errno));
        exit(3);
    }
    return p;
}

static void print_report(const struct sb_result* res, const struct sb_report_info* info) {
    size_t n = sb_report_format(NULL, 0, res, info);
    char* buf = malloc(n + 1);
    if (buf == NULL) exit(3);
    sb_report_format(buf, n + 1, res, info);
    write_all(buf, n);
    free(buf);
}

static void print_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void print_line(const char* fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) write_all(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static int single_thread(uint64_t threads) {
    if (threads <= 1) return 1;
    fprintf(stderr, "sb_static: single-threaded: --threads=%llu is not supported\n",
            (unsigned long long)threads);
    return 0;
}

static int run_core(int test, const char* options) {
    struct sb_run r;
    struct sb_result res;
    const char* bad = "";
    memset(&r, 0, sizeof r);
    sb_options_default(&r.opt);
    if (!sb_parse_options(options, &r.opt, &bad)) {
        fprintf(stderr, "sb_static: bad option at '%s' (syntax: --key=value ...)\n", bad);
        return 2;
    }
    if (!single_thread(r.opt.threads)) return 2;
    r.test = test;
    r.threads = 1;
    r.now_ns = now_ns;
    r.yield = r.opt.thread_yield == SB_YIELD_SCHED ? yield_sched : yield_pause;
    r.yield_arg = (void*)(uintptr_t)r.opt.yield_pauses;
    r.mem = map_memory(sb_run_bytes(test, &r.opt, 1));
    if (!sb_run_prepare(&r)) {
        fprintf(stderr, "sb_static: needs --events or --time\n");
        return 2;
    }
    sb_run_start(&r);
    sb_run_worker(&r, 0);
    sb_run_finish(&r, &res);
    struct sb_report_info info = {sb_test_name(test), options, r.opt.memory_block_size, 0, 0, 0, 0};
    print_report(&res, &info);
    print_line(SB_RESULT_FMT, SB_RESULT_ARGS(res));
    return 0;
}

/* fileio: file i is test_file.i in the current directory. */
struct files {
    int* fd;
    uint64_t n;
};

static int file_io(int write, int fd, uint64_t off, void* buf, uint64_t len) {
    char* p = buf;
    while (len != 0) {
        ssize_t n = write ? pwrite(fd, p, len, (off_t)off) : pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n == 0 ? EIO : errno;
        p += n;
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    return 0;
}

static int fio_read(void* arg, uint32_t tid, uint64_t file, uint64_t off, void* buf, uint64_t len) {
    (void)tid;
    return file_io(0, ((struct files*)arg)->fd[file], off, buf, len);
}

static int fio_write(void* arg, uint32_t tid, uint64_t file, uint64_t off, const void* buf,
                     uint64_t len) {
    (void)tid;
    return file_io(1, ((struct files*)arg)->fd[file], off, (void*)(uintptr_t)buf, len);
}

static int fio_sync(void* arg, uint32_t tid, uint64_t file) {
    (void)tid;
    return fdatasync(((struct files*)arg)->fd[file]) != 0 ? errno : 0;
}

static void remove_files(struct files* f) {
    char name[64];
    for (uint64_t i = 0; i < f->n; ++i) {
        close(f->fd[i]);
        snprintf(name, sizeof name, "test_file.%llu", (unsigned long long)i);
        unlink(name);
    }
    free(f->fd);
}

static int run_fileio(const char* options) {
    static struct sb_fio_run r;
    struct sb_result res;
    struct files files = {NULL, 0};
    const char* bad = "";
    sb_fio_options_default(&r.opt);
    if (!sb_fio_parse_options(options, &r.opt, &bad)) {
        fprintf(stderr, "sb_static: bad option at '%s' (syntax: --key=value ...)\n", bad);
        return 2;
    }
    if (!single_thread(r.opt.threads)) return 2;
    files.fd = calloc((size_t)r.opt.file_num, sizeof *files.fd);
    if (files.fd == NULL) return 3;
    for (; files.n < r.opt.file_num; ++files.n) {
        char name[64];
        snprintf(name, sizeof name, "test_file.%llu", (unsigned long long)files.n);
        int fd = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "sb_static: cannot create %s: %s\n", name, strerror(errno));
            remove_files(&files);
            return 3;
        }
        files.fd[files.n] = fd;
    }
    r.threads = 1;
    r.now_ns = now_ns;
    r.ops.read = fio_read;
    r.ops.write = fio_write;
    r.ops.sync = fio_sync;
    r.ops.arg = &files;
    r.mem = map_memory(sb_fio_bytes(&r.opt, 1));
    if (!sb_fio_prepare(&r)) {
        fprintf(stderr, "sb_static: needs --events or --time\n");
        remove_files(&files);
        return 2;
    }
    sb_fio_prepare_files(&r, 0);
    sb_fio_start(&r);
    sb_fio_worker(&r, 0);
    int rc = sb_fio_finish(&r, &res);
    remove_files(&files);
    struct sb_report_info info = {"fileio",
                                  options,
                                  0,
                                  r.opt.file_block_size,
                                  sb_fio_total(&r, 0),
                                  sb_fio_total(&r, 1),
                                  sb_fio_total(&r, 2)};
    print_report(&res, &info);
    print_line(SB_RESULT_FMT, SB_FIO_RESULT_ARGS(res));
    print_line(SB_FIO_STATS_FMT, SB_FIO_STATS_ARGS(&r));
    if (rc == 4) fprintf(stderr, "sb_static: fileio verification FAILED\n");
    if (rc == 5) fprintf(stderr, "sb_static: fileio I/O errors\n");
    return rc;
}

int main(int argc, char** argv) {
    static const char* const tests[] = {"cpu", "memory", "mutex", "threads", "fileio"};
    int test = -1;
    for (int t = 0; argc > 1 && t < 5; ++t)
        if (strcmp(argv[1], tests[t]) == 0) test = t;
    if (test < 0) {
        fprintf(stderr, "usage: sb_static cpu|memory|mutex|threads|fileio [--key=value ...]\n");
        return 2;
    }
    /* The options as one string, as a guest's command line. */
    size_t len = 1;
    for (int i = 2; i < argc; ++i)
        len += strlen(argv[i]) + 1;
    char* options = calloc(len, 1);
    if (options == NULL) return 3;
    for (int i = 2; i < argc; ++i) {
        if (i > 2) strcat(options, " ");
        strcat(options, argv[i]);
    }
    int rc = test == SB_TEST_FILEIO ? run_fileio(options) : run_core(test, options);
    free(options);
    return rc;
}
