// The fileio workload core (guest/workloads/sb_fileio.h) without KVM: option
// parsing, verification against an in-memory disk (and that it catches lost
// writes and I/O errors), and the native runner on real files.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "fileio_native.hpp"
#include "native_workloads.hpp"
#include "sb_fileio.h"

using Catch::Matchers::Contains;

namespace {

struct MemDisk {
    std::vector<unsigned char> bytes;
    std::uint64_t file_size = 0;
    bool drop_writes = false; // pretend writes succeed but keep old data
    bool fail_reads = false;  // every read returns an error
    std::uint64_t syncs = 0;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> synced; // (thread, file) in order

    static MemDisk* of(void* arg) { return static_cast<MemDisk*>(arg); }
    static int read(void* arg, std::uint32_t, std::uint64_t file, std::uint64_t off, void* buf,
                    std::uint64_t len) {
        auto* d = of(arg);
        if (d->fail_reads) return 4;
        std::memcpy(buf, d->bytes.data() + file * d->file_size + off, len);
        return 0;
    }
    static int write(void* arg, std::uint32_t, std::uint64_t file, std::uint64_t off,
                     const void* buf, std::uint64_t len) {
        auto* d = of(arg);
        if (!d->drop_writes) std::memcpy(d->bytes.data() + file * d->file_size + off, buf, len);
        return 0;
    }
    static int sync(void* arg, std::uint32_t tid, std::uint64_t file) {
        of(arg)->syncs++;
        of(arg)->synced.emplace_back(tid, file);
        return 0;
    }
};

std::uint64_t fake_clock(void* arg) {
    return (*static_cast<std::uint64_t*>(arg))++;
}

struct CoreRun {
    MemDisk disk;
    std::vector<std::uint64_t> mem;
    sb_fio_run run{};
    std::uint64_t clock = 0;

    CoreRun(const char* options, std::uint32_t threads) {
        const char* bad = nullptr;
        sb_fio_options_default(&run.opt);
        REQUIRE(sb_fio_parse_options(options, &run.opt, &bad));
        run.threads = threads;
        run.now_ns = fake_clock;
        run.now_arg = &clock;
        run.ops = {MemDisk::read, MemDisk::write, MemDisk::sync, &disk};
        mem.resize(sb_fio_bytes(&run.opt, threads) / 8 + 8);
        // 64-byte alignment for the per-thread statistics.
        auto addr = reinterpret_cast<std::uintptr_t>(mem.data());
        run.mem = reinterpret_cast<unsigned char*>((addr + 63) / 64 * 64);
        disk.file_size = sb_fio_file_size(&run.opt);
        disk.bytes.resize(disk.file_size * run.opt.file_num);
        REQUIRE(sb_fio_prepare(&run));
    }
    // prepare, run and finish with the threads one after the other.
    int go(sb_result& res) {
        for (std::uint32_t t = 0; t < run.threads; ++t)
            sb_fio_prepare_files(&run, t);
        sb_fio_start(&run);
        for (std::uint32_t t = 0; t < run.threads; ++t)
            sb_fio_worker(&run, t);
        return sb_fio_finish(&run, &res);
    }
};

} // namespace

TEST_CASE("fileio options: sysbench defaults and syntax", "[fileio]") {
    sb_fio_options o;
    sb_fio_options_default(&o);
    CHECK(o.file_num == 128);
    CHECK(o.file_block_size == 16384);
    CHECK(o.mode == SB_FIO_RNDRW);
    CHECK(o.rw_ratio_milli == 1500);
    CHECK(o.fsync_freq == 100);
    const char* bad = nullptr;
    REQUIRE(sb_fio_parse_options("--file-num=8 --file-total-size=64M --file-block-size=4K "
                                 "--file-test-mode=rndwr --file-rw-ratio=2.25 "
                                 "--file-fsync-freq=0 --file-fsync-end=off --events=5 --time=0",
                                 &o, &bad));
    CHECK(o.file_num == 8);
    CHECK(o.file_total_size == 64ull << 20);
    CHECK(o.file_block_size == 4096);
    CHECK(o.mode == SB_FIO_RNDWR);
    CHECK(o.rw_ratio_milli == 2250);
    CHECK(o.fsync_freq == 0);
    CHECK(o.fsync_end == 0);
    CHECK(sb_fio_file_size(&o) == 8ull << 20);
    for (const char* s : {"--file-block-size=1000", "--file-num=0", "--file-rw-ratio=0",
                          "--file-rw-ratio=1.2345", "--file-rw-ratio=.5", "--file-test-mode=seqrd",
                          "--file-total-size=1K", "--bogus=1", "file-num=8"}) {
        sb_fio_options d;
        sb_fio_options_default(&d);
        CAPTURE(s);
        CHECK_FALSE(sb_fio_parse_options(s, &d, &bad));
    }
}

TEST_CASE("fileio core: every read is verified against the last write", "[fileio]") {
    for (std::uint32_t threads : {1u, 2u, 3u}) {
        CoreRun c("--file-num=6 --file-total-size=3M --file-block-size=16K --events=3000 --time=0",
                  threads);
        sb_result res{};
        CAPTURE(threads);
        REQUIRE(c.go(res) == 0);
        CHECK(res.events == 3000);
        CHECK(res.check == sb_fio_total(&c.run, 0)); // every read verified
        CHECK(res.check > 1000);
        // reads:writes tends to 1.5 and a sync every 100 requests.
        double ratio = static_cast<double>(sb_fio_total(&c.run, 0)) /
                       static_cast<double>(sb_fio_total(&c.run, 1));
        CHECK(ratio == Approx(1.5).epsilon(0.05));
        CHECK(sb_fio_total(&c.run, 2) >= 3000 / 101);
        CHECK(c.disk.syncs == sb_fio_total(&c.run, 2));
        // As sysbench: one file per sync request, each thread's own files in
        // turn; every file synced after prepare and again at the end.
        std::vector<std::uint64_t> per_file(6);
        std::vector<std::uint64_t> last(threads, ~std::uint64_t{0});
        bool in_turn = true;
        for (auto [tid, file] : c.disk.synced) {
            REQUIRE(file < 6);
            CHECK(file % threads == tid);
            per_file[file]++;
        }
        for (auto n : per_file)
            CHECK(n >= 2);
        // The run's periodic syncs (after each thread's prepare syncs, before
        // its end-of-run syncs) walk the thread's files in order.
        std::vector<std::uint64_t> seen(threads);
        for (auto [tid, file] : c.disk.synced) {
            if (seen[tid]++ < (6 + threads - 1 - tid) / threads) continue; // prepare
            if (last[tid] != ~std::uint64_t{0} && file != last[tid] + threads && file != tid)
                in_turn = false;
            last[tid] = file;
        }
        CHECK(in_turn);
    }
}

TEST_CASE("fileio core: lost writes and I/O errors are caught", "[fileio]") {
    const char* opts = "--file-num=2 --file-total-size=256K --file-block-size=16K --events=500 "
                       "--time=0";
    {
        CoreRun c(opts, 1);
        for (std::uint32_t t = 0; t < 1; ++t)
            sb_fio_prepare_files(&c.run, t);
        c.disk.drop_writes = true; // writes after prepare vanish
        sb_fio_start(&c.run);
        sb_fio_worker(&c.run, 0);
        sb_result res{};
        CHECK(sb_fio_finish(&c.run, &res) == 4);
        CHECK(sb_fio_total(&c.run, 3) > 0);
    }
    {
        CoreRun c(opts, 1);
        c.disk.fail_reads = true;
        sb_result res{};
        CHECK(c.go(res) == 5);
        CHECK(res.check == 0);
        CHECK(sb_fio_total(&c.run, 4) > 0);
    }
}

TEST_CASE("fileio native runner: real files with pread/pwrite/fdatasync", "[fileio]") {
    std::string tmpl = (std::filesystem::temp_directory_path() / "minivmm-fileio-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    for (unsigned threads : {1u, 2u}) {
        auto r = minivmm::workloads::run_fileio_native(
            tmpl, "--file-num=4 --file-total-size=4M --events=400 --time=0", threads);
        INFO(r.output);
        CHECK(r.status == 0);
        auto res = minivmm::workloads::parse_result_line(r.output);
        REQUIRE(res);
        CHECK(res->test == "fileio");
        CHECK(res->threads == threads);
        CHECK(res->events == 400);
        CHECK(res->check > 100);
        CHECK_THAT(r.output, Contains("verify_failures=0 io_errors=0"));
    }
    CHECK(std::filesystem::is_empty(tmpl)); // cleanup removed the files
    std::filesystem::remove(tmpl);
    CHECK_THROWS_AS(minivmm::workloads::run_fileio_native("/tmp", "--file-num=x"),
                    std::invalid_argument);
}
