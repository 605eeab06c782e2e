// The paravirtual block device on a real VM, through minivmm-run --disk:
// the sb_fileio guest verifies its reads on 1 and 2 vCPUs, flushed data is
// in the host file after the VM exits, malformed requests fail with status
// codes while the guest goes on, and a missing or unusable disk is a
// one-line error with status 125.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cli/run_options.hpp"
#include "kvm_support.hpp"
#include "native_workloads.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using minivmm::test::describe;
using minivmm::test::guest_path;
using minivmm::test::line_count;
using minivmm::test::run_minivmm;

namespace {

// A sparse temporary disk image of `size` bytes, removed afterwards.
class TempDisk {
  public:
    explicit TempDisk(std::uint64_t size) {
        const char* dir = std::getenv("TMPDIR");
        path_ = std::string(dir && *dir ? dir : "/tmp") + "/minivmm-disk-XXXXXX";
        int fd = ::mkstemp(path_.data());
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, static_cast<off_t>(size)) == 0);
        ::close(fd);
    }
    ~TempDisk() { ::unlink(path_.c_str()); }
    TempDisk(const TempDisk&) = delete;
    TempDisk& operator=(const TempDisk&) = delete;
    const std::string& path() const noexcept { return path_; }

  private:
    std::string path_;
};

} // namespace

TEST_CASE("sb_fileio guest verifies every read on 1 and 2 vCPUs, in every I/O mode",
          "[kvm][block]") {
    unsigned vcpus = GENERATE(1u, 2u);
    std::string mode = GENERATE("hypercall", "exit", "ioeventfd", "poll", "poll-per-queue");
    TempDisk disk(64ull << 20);
    std::vector<std::string> args{"--vcpus", std::to_string(vcpus), "--mem",  "64M",
                                  "--disk",  disk.path(),           "--stats"};
    if (mode == "poll-per-queue")
        args.insert(args.end(), {"--blk-io=poll", "--blk-threads=per-queue"});
    else
        args.push_back("--blk-io=" + mode);
    args.insert(args.end(), {guest_path("sb_fileio.elf"), "--", "--file-num=8",
                             "--file-total-size=64M", "--events=1500", "--time=0"});
    auto r = run_minivmm(args, std::chrono::seconds(60));
    INFO(mode << ": " << describe(r));
    REQUIRE(r.status == 0);
    auto res = minivmm::workloads::parse_result_line(r.out);
    REQUIRE(res);
    CHECK(res->test == "fileio");
    CHECK(res->threads == vcpus);
    CHECK(res->events == 1500);
    CHECK(res->check > 500);
    CHECK_THAT(r.out, Contains("verify_failures=0 io_errors=0"));
    // sysbench's report first, with this run's event count
    CHECK(r.out.rfind("Running the test with following options:\n--file-num=8 ", 0) == 0);
    CHECK_THAT(r.out, Contains("\nFile operations:\n    reads/s:"));
    CHECK_THAT(r.out, Contains("    total number of events:              1500\n"));
    // Through a ring, requests do not exit to user space one by one: the
    // ioeventfd and poll doorbells end in the kernel (prepare and run
    // make > 2000 requests here).
    CHECK_THAT(r.err, Contains("minivmm-stats: "));
    if (mode == "hypercall") {
        CHECK_THAT(r.err, Contains("hypercall[18]="));
        CHECK_THAT(r.err, !Contains("hypercall[20]="));
    } else {
        CHECK_THAT(r.err, Contains("hypercall[20]=" + std::to_string(vcpus)));
        CHECK_THAT(r.err, !Contains("hypercall[18]="));
        if (mode != "exit") CHECK_THAT(r.err, !Contains("hypercall[21]="));
        CHECK_THAT(r.err, Contains(" ring_requests="));
    }
}

TEST_CASE("sb_fileio guest: a disk smaller than --file-total-size is refused", "[kvm][block]") {
    TempDisk disk(1ull << 20);
    auto r = run_minivmm({"--mem", "64M", "--disk", disk.path(), guest_path("sb_fileio.elf"), "--",
                          "--file-num=8", "--file-total-size=64M", "--events=10", "--time=0"});
    INFO(describe(r));
    CHECK(r.status == 3);
    CHECK_THAT(r.out, Contains("--file-total-size"));
}

TEST_CASE("block device: flushed data is in the host file after the VM exits", "[kvm][block]") {
    std::string mode = GENERATE("hypercall", "exit", "ioeventfd", "poll");
    TempDisk disk(1ull << 20);
    auto r = run_minivmm({"--mem", "64M", "--disk", disk.path(), "--blk-io=" + mode,
                          guest_path("blkcheck.elf"), "--", "pattern"});
    INFO(mode << ": " << describe(r));
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, Contains("blk-pattern: ok"));
    std::vector<unsigned char> bytes(16 * 512);
    int fd = ::open(disk.path().c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pread(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    for (std::size_t i = 0; i < bytes.size(); ++i)
        REQUIRE(bytes[i] == static_cast<unsigned char>((i / 512) * 7 + i));
}

TEST_CASE("block device: malformed requests get error statuses, the guest goes on",
          "[kvm][block]") {
    std::string mode = GENERATE("hypercall", "exit", "ioeventfd", "poll");
    TempDisk disk(1ull << 20);
    auto r = run_minivmm({"--mem", "64M", "--disk", disk.path(), "--blk-io=" + mode,
                          guest_path("blkcheck.elf"), "--", "bad"});
    INFO(mode << ": " << describe(r));
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Contains(mode == "hypercall" ? "blk-bad: ok 8\n" : "blk-bad: ok 8 (ring)"));
    CHECK(r.err.empty());
}

TEST_CASE("block rings: a batch with one doorbell, and a doorbell for no ring stops the guest",
          "[kvm][block]") {
    std::string mode = GENERATE("exit", "ioeventfd", "poll");
    TempDisk disk(1ull << 20);
    auto r = run_minivmm({"--mem", "64M", "--disk", disk.path(), "--blk-io=" + mode, "--stats",
                          guest_path("blkcheck.elf"), "--", "batch"});
    INFO(mode << ": " << describe(r));
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Contains("blk-batch: ok"));
    // exit mode: 16 requests + a flush in 3 doorbells.
    if (mode == "exit") CHECK_THAT(r.err, Contains("hypercall[21]=3 ring_requests=17"));
    auto bad = run_minivmm({"--mem", "64M", "--disk", disk.path(), "--blk-io=" + mode,
                            guest_path("blkcheck.elf"), "--", "badkick"});
    INFO(describe(bad));
    CHECK(bad.status == minivmm::cli::kExitGuestFault);
    CHECK(line_count(bad.err) == 1);
    CHECK_THAT(bad.err, Contains("bad hypercall 21 (blk_kick)"));
    CHECK_THAT(bad.err, Contains("no ring is set up"));
}

TEST_CASE("block device: --disk-readonly", "[kvm][block]") {
    TempDisk disk(1ull << 20);
    auto r = run_minivmm({"--mem", "64M", "--disk", disk.path(), "--disk-readonly",
                          guest_path("blkcheck.elf"), "--", "readonly"});
    INFO(describe(r));
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Contains("blk-readonly: ok"));
}

TEST_CASE("block device: info, and an argument block outside RAM stops the guest", "[kvm][block]") {
    TempDisk disk((1ull << 20) + 100);
    auto info = run_minivmm(
        {"--mem", "64M", "--disk", disk.path(), guest_path("blkcheck.elf"), "--", "info"});
    INFO(describe(info));
    CHECK(info.status == 0);
    CHECK_THAT(info.out, Contains("blk: sectors=2048 flags=2")); // rings by default
    auto plain = run_minivmm({"--mem", "64M", "--disk", disk.path(), "--blk-io=hypercall",
                              guest_path("blkcheck.elf"), "--", "info"});
    CHECK_THAT(plain.out, Contains("blk: sectors=2048 flags=0"));
    auto bad = run_minivmm(
        {"--mem", "64M", "--disk", disk.path(), guest_path("blkcheck.elf"), "--", "badblock"});
    INFO(describe(bad));
    CHECK(bad.status == minivmm::cli::kExitGuestFault);
    CHECK(line_count(bad.err) == 1);
    CHECK_THAT(bad.err, Contains("bad hypercall 18 (blk_io)"));
}

TEST_CASE("minivmm-run --disk: a missing file or a directory is a one-line error, status 125",
          "[kvm][block]") {
    for (std::string path : {std::string("/nonexistent/minivmm-disk.img"), std::string("/tmp")}) {
        auto r = run_minivmm({"--disk", path, guest_path("hello.elf")});
        INFO(describe(r));
        CHECK(r.status == minivmm::cli::kExitVmmError);
        CHECK(line_count(r.err) == 1);
        CHECK_THAT(r.err, StartsWith("minivmm-run: error: --disk " + path));
        CHECK(r.out.empty());
    }
    auto usage = run_minivmm({"--disk-readonly", guest_path("hello.elf")});
    CHECK(usage.status == minivmm::cli::kExitUsage);
}

namespace {

// The highest round the blkcheck "durable" writer reported flushed.
std::uint64_t last_flushed(const std::string& out) {
    std::uint64_t last = 0;
    std::size_t at = 0;
    const std::string tag = "durable: flushed ";
    while ((at = out.find(tag, at)) != std::string::npos) {
        at += tag.size();
        last = std::max<std::uint64_t>(last, std::strtoull(out.c_str() + at, nullptr, 10));
    }
    return last;
}

// Rounds 1..rounds of the durable writer are in the file, every byte.
std::uint64_t bad_sectors(const std::string& path, std::uint64_t rounds) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    std::uint64_t bad = 0;
    std::vector<unsigned char> sector(512);
    for (std::uint64_t r = 1; r <= rounds; ++r)
        for (std::uint64_t s = 8 * (r - 1); s < 8 * r; ++s) {
            REQUIRE(::pread(fd, sector.data(), 512, static_cast<off_t>(s * 512)) == 512);
            std::uint64_t head[3];
            std::memcpy(head, sector.data(), sizeof head);
            bool ok = head[0] == 0x64757261626c6521ull && head[1] == s && head[2] == r;
            for (std::size_t i = sizeof head; ok && i < 512; ++i)
                ok = sector[i] == static_cast<unsigned char>(s * 31 + r);
            if (!ok) ++bad;
        }
    ::close(fd);
    return bad;
}

} // namespace

TEST_CASE("crash consistency: what the guest saw flushed survives a SIGKILL of the VMM",
          "[kvm][block][crash]") {
    // SIGKILL right after a flush completed, and at points while the guest
    // keeps writing (some rounds then die half-written): every round the
    // guest was told is flushed must be in the host file, in every I/O mode.
    // (A SIGKILL cannot lose the host's page cache; what this proves is that
    // the VMM keeps nothing of its own between a request's completion and
    // the file. Power loss is the kernel's and the disk's part of fdatasync.)
    int runs = 0;
    for (std::string mode : {"hypercall", "exit", "poll"})
        for (std::uint64_t kill_after : {1u, 7u, 60u, 300u}) {
            CAPTURE(mode, kill_after);
            TempDisk disk(8u << 20); // 2048 rounds of 8 sectors
            minivmm::test::Child child({MINIVMM_RUN_PATH, "--mem", "64M", "--disk", disk.path(),
                                        "--blk-io=" + mode, "--timeout", "60",
                                        guest_path("blkcheck.bin"), "--", "durable"});
            REQUIRE(child.wait_for_stdout("durable: flushed " + std::to_string(kill_after) + "\n",
                                          std::chrono::seconds(30)));
            child.send(SIGKILL);
            auto r = child.finish(std::chrono::seconds(10));
            CHECK(r.signal == SIGKILL);
            auto flushed = last_flushed(r.out);
            CHECK(flushed >= kill_after);
            CHECK(bad_sectors(disk.path(), flushed) == 0);
            ++runs;
        }
    CHECK(runs == 12);
}
