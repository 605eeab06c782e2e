/* sysbench-style "fileio" test in a guest, on the paravirtual block device
 * (run with minivmm-run --disk FILE). Core: workloads/sb_fileio.h; device:
 * workloads/blk.h. Files are fixed extents of the disk: file i =
 * [i * file_size, (i + 1) * file_size). threads = vCPUs; every vCPU prepares
 * its own files, then vCPU 0 starts the clock and all run events; vCPU 0
 * prints the sb-result line (check = verified reads) and an sb-fileio line
 * with the I/O counts. Cleanup has nothing to do on a raw disk.
 * When the VMM serves request rings (blk_info flag), every vCPU sets up its
 * own ring (queue = vCPU index) and makes its requests through it;
 * otherwise one blk_io hypercall per request.
 * Exit codes: 0 ok, 2 bad command line, 3 not enough heap or disk, or a ring
 * could not be set up, 4 a read did not return what was last written, 5 a
 * request failed (I/O status). */
#include <mvg/mvg.h>

#include "blk.h"
#include "sb_fileio.h"
#include "sb_report.h"

#define FIO_MAX_RINGS 64

static struct sb_fio_run fio;
static char fio_report[4096];
static struct blk_ring fio_rings[FIO_MAX_RINGS];
static uint64_t fio_use_rings; /* set by vCPU 0 before releasing the others */
static uint64_t fio_go;        /* 1: prepare, 2: vCPU 0 gave up, 3: run */
static uint64_t fio_prepared;  /* vCPUs done with prepare */
static uint64_t fio_done;      /* vCPUs done with run */

static uint64_t fio_now(void* arg) {
    return sb_tsc_ns(((const struct mvg_boot_info*)arg)->tsc_khz);
}

static uint64_t fio_sector(uint64_t file, uint64_t off) {
    return (file * fio.file_size + off) / BLK_SECTOR_SIZE;
}

/* This vCPU's ring, or 0 for blk_io hypercalls. */
static struct blk_ring* fio_ring(uint32_t tid) {
    return fio_use_rings && tid < FIO_MAX_RINGS ? &fio_rings[tid] : 0;
}

static int fio_read(void* arg, uint32_t tid, uint64_t file, uint64_t off, void* buf, uint64_t len) {
    (void)arg;
    return (int)blk_q_request(fio_ring(tid), BLK_OP_READ, fio_sector(file, off), buf, len);
}

static int fio_write(void* arg, uint32_t tid, uint64_t file, uint64_t off, const void* buf,
                     uint64_t len) {
    (void)arg;
    return (int)blk_q_request(fio_ring(tid), BLK_OP_WRITE, fio_sector(file, off),
                              (void*)(uintptr_t)buf, len);
}

static int fio_sync(void* arg, uint32_t tid, uint64_t file) {
    (void)arg;
    (void)file;
    /* a raw disk flushes whole, as a guest file system's fsync would */
    return (int)blk_q_request(fio_ring(tid), BLK_OP_FLUSH, 0, 0, 0);
}

static int setup(const struct mvg_boot_info* bi) {
    struct sb_fio_run* r = &fio;
    const char* bad = "";
    struct blk_info info;
    uint64_t need;
    sb_fio_options_default(&r->opt);
    if (!sb_fio_parse_options(mvg_cmdline(bi), &r->opt, &bad)) {
        mvg_printf("sb_fileio: bad option at '%s' (syntax: --key=value ...)\n", bad);
        return 2;
    }
    if (r->opt.threads != 0 && r->opt.threads != bi->nr_vcpus) {
        mvg_printf("sb_fileio: --threads=%lu but the VM has %lu vCPUs (threads = vCPUs)\n",
                   r->opt.threads, bi->nr_vcpus);
        return 2;
    }
    r->threads = (uint32_t)bi->nr_vcpus;
    if (r->opt.file_num < r->threads) {
        mvg_printf("sb_fileio: --file-num=%lu is less than the %u threads\n", r->opt.file_num,
                   r->threads);
        return 2;
    }
    blk_get_info(&info);
    if (info.sectors > UINT64_MAX / BLK_SECTOR_SIZE ||
        info.sectors * BLK_SECTOR_SIZE < r->opt.file_total_size) {
        mvg_printf("sb_fileio: the disk has %lu sectors, --file-total-size=%lu needs %lu\n",
                   info.sectors, r->opt.file_total_size,
                   (r->opt.file_total_size + BLK_SECTOR_SIZE - 1) / BLK_SECTOR_SIZE);
        return 3;
    }
    if (info.flags & BLK_FLAG_READONLY) {
        mvg_printf("sb_fileio: the disk is read-only\n");
        return 3;
    }
    fio_use_rings = (info.flags & BLK_FLAG_RING) != 0;
    need = sb_fio_bytes(&r->opt, r->threads);
    if (need > bi->heap_end - bi->heap_start) {
        mvg_printf("sb_fileio: needs %lu bytes of heap, has %lu\n", need,
                   bi->heap_end - bi->heap_start);
        return 3;
    }
    r->now_ns = fio_now;
    r->now_arg = (void*)(uintptr_t)bi;
    r->ops.read = fio_read;
    r->ops.write = fio_write;
    r->ops.sync = fio_sync;
    r->ops.arg = 0;
    r->mem = (unsigned char*)(uintptr_t)bi->heap_start;
    if (!sb_fio_prepare(r)) {
        mvg_printf("sb_fileio: needs --events or --time\n");
        return 2;
    }
    return 0;
}

int main(const struct mvg_boot_info* bi, unsigned vcpu) {
    struct sb_result res;
    int rc;
    if (vcpu == 0) {
        rc = setup(bi);
        if (rc != 0) {
            mvg_atomic_store(&fio_go, 2);
            return rc;
        }
        mvg_atomic_store(&fio_go, 1);
    } else {
        mvg_wait_ge(&fio_go, 1);
        if (mvg_atomic_load(&fio_go) == 2) return 0;
    }
    if (fio_ring(vcpu)) {
        uint64_t st = blk_ring_init(fio_ring(vcpu), vcpu);
        if (st != BLK_OK) {
            mvg_printf("sb_fileio: vCPU %u: ring set-up failed, status %lu\n", vcpu, st);
            mvg_exit(3); /* stops every vCPU: the others would wait for this one */
        }
    }
    sb_fio_prepare_files(&fio, vcpu);
    mvg_atomic_add(&fio_prepared, 1);
    if (vcpu == 0) {
        mvg_wait_ge(&fio_prepared, bi->nr_vcpus);
        sb_fio_start(&fio);
        mvg_atomic_store(&fio_go, 3);
    } else {
        mvg_wait_ge(&fio_go, 3);
    }
    sb_fio_worker(&fio, vcpu);
    mvg_atomic_add(&fio_done, 1);
    if (vcpu != 0) return 0;
    mvg_wait_ge(&fio_done, bi->nr_vcpus);
    rc = sb_fio_finish(&fio, &res);
    {
        struct sb_report_info info = {"fileio",
                                      mvg_cmdline(bi),
                                      0,
                                      fio.opt.file_block_size,
                                      sb_fio_total(&fio, 0),
                                      sb_fio_total(&fio, 1),
                                      sb_fio_total(&fio, 2)};
        size_t n = sb_report_format(fio_report, sizeof fio_report, &res, &info);
        mvg_write(fio_report, n < sizeof fio_report ? n : sizeof fio_report - 1);
    }
    mvg_printf(SB_RESULT_FMT, SB_FIO_RESULT_ARGS(res));
    mvg_printf(SB_FIO_STATS_FMT, SB_FIO_STATS_ARGS(&fio));
    if (rc == 4) mvg_printf("sb_fileio: verification FAILED\n");
    if (rc == 5) mvg_printf("sb_fileio: I/O errors\n");
    return rc;
}
