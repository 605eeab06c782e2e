// The block device without KVM: request validation (every error status,
// overflow-safe range checks, buffers outside RAM, read-only disks, the
// partial last sector), argument blocks outside RAM (which stop the guest),
// and the hypercall router.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "cli/run_options.hpp"
#include "devices/block_device.hpp"
#include "devices/hypercalls.hpp"
#include "fake_vcpu_host.hpp"
#include "minivmm/block_abi.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/console.hpp"
#include "minivmm/error.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "test_util.hpp"
#include "vcpu/vcpu_host.hpp"

using Catch::Matchers::Contains;
using minivmm::BlockDevice;
using minivmm::ExitAction;
using minivmm::VmExit;
namespace blk = minivmm::blk;

namespace {

constexpr std::uint64_t kMemSize = 4 << 20;
constexpr std::uint64_t kBlock = 0x200000; // argument block
constexpr std::uint64_t kBuf = 0x300000;   // data buffer
// 128 whole sectors and a partial one that the disk does not expose.
constexpr std::size_t kFileSize = 128 * 512 + 100;

using minivmm::test::FakeVcpuHost;

std::vector<std::byte> disk_contents() {
    std::vector<std::byte> v(kFileSize);
    for (std::size_t i = 0; i < v.size(); ++i)
        v[i] = static_cast<std::byte>(i / 512 + i);
    return v;
}

std::vector<std::byte> read_file(const std::string& path) {
    std::vector<std::byte> v(kFileSize);
    int fd = ::open(path.c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pread(fd, v.data(), v.size(), 0) == static_cast<ssize_t>(v.size()));
    ::close(fd);
    return v;
}

struct Rig {
    explicit Rig(bool read_only = false,
                 minivmm::BlockIoMode mode = minivmm::BlockIoMode::hypercall, unsigned queues = 1,
                 std::chrono::microseconds poll = std::chrono::microseconds(200))
        : Rig(read_only, minivmm::BlockIoOptions{mode, poll}, queues) {}
    Rig(bool read_only, minivmm::BlockIoOptions io, unsigned queues)
        : file(disk_contents()), device(mem, control, file.path(), read_only, io, queues) {}

    minivmm::test::TempFile file;
    minivmm::BootRam mem{kMemSize};
    FakeVcpuHost control;
    BlockDevice device;
    minivmm::KvmVcpu vcpu{minivmm::UniqueFd{}, minivmm::HostMapping{}, 0};

    // outl of `block` to the device's port `offset` (0 blk_info, 1 blk_io,
    // 3 blk_ring_setup, 4 blk_kick).
    ExitAction out(std::uint64_t offset, std::uint32_t block, std::size_t width = 4,
                   bool is_write = true) {
        std::array<std::byte, 4> data{};
        std::memcpy(data.data(), &block, sizeof block);
        minivmm::IoAccess access{0,      vcpu,     0x511 + offset,
                                 offset, is_write, std::span(data.data(), width)};
        return device.access(access);
    }
    // A blk_io request; returns its status (the VM must not stop).
    std::uint64_t io(std::uint64_t op, std::uint64_t sector, std::uint64_t buf, std::uint64_t len) {
        mem.write(kBlock, blk::Io{op, sector, buf, len, 0xdead});
        REQUIRE(out(1, kBlock) == ExitAction::resume);
        REQUIRE_FALSE(control.stop);
        auto after = mem.read<blk::Io>(kBlock);
        REQUIRE(after);
        // The VMM writes only the status.
        CHECK(after->op == op);
        CHECK(after->sector == sector);
        CHECK(after->buf == buf);
        CHECK(after->len == len);
        return after->status;
    }
};

} // namespace

TEST_CASE("block device: blk_info reports whole sectors and the read-only flag", "[block]") {
    for (bool ro : {false, true}) {
        Rig rig(ro);
        CHECK(rig.device.sectors() == 128); // the partial last sector is not exposed
        REQUIRE(rig.out(0, kBlock) == ExitAction::resume);
        auto info = rig.mem.read<blk::Info>(kBlock);
        REQUIRE(info);
        CHECK(info->sectors == 128);
        CHECK(info->flags == (ro ? blk::kFlagReadOnly : 0));
    }
}

TEST_CASE("block device: reads and writes go straight between file and guest RAM", "[block]") {
    Rig rig;
    auto want = disk_contents();
    rig.mem.block()->dirty().take();
    CHECK(rig.io(blk::kRead, 3, kBuf, 2 * 512) == blk::kOk);
    auto got = rig.mem.range(kBuf, 1024);
    REQUIRE(got);
    CHECK(std::memcmp(got->data(), want.data() + 3 * 512, 1024) == 0);
    // The VMM's write into guest RAM is visible to dirty logging.
    auto dirty = rig.mem.block()->dirty().take();
    CHECK(std::find(dirty.begin(), dirty.end(), kBuf / 4096) != dirty.end());

    rig.mem.fill(kBuf, 512, std::byte{0xab});
    CHECK(rig.io(blk::kWrite, 127, kBuf, 512) == blk::kOk); // the last whole sector
    CHECK(rig.io(blk::kFlush, 0, 0, 0) == blk::kOk);
    auto file = read_file(rig.file.path());
    for (std::size_t i = 127 * 512; i < 128 * 512; ++i)
        REQUIRE(file[i] == std::byte{0xab});
    // The partial sector after it is untouched.
    CHECK(std::memcmp(file.data() + 128 * 512, want.data() + 128 * 512, 100) == 0);
}

TEST_CASE("block device: eager write-back starts each write, lazy leaves it to the kernel",
          "[block]") {
    for (bool eager : {true, false}) {
        CAPTURE(eager);
        minivmm::BlockIoOptions io;
        io.mode = minivmm::BlockIoMode::hypercall;
        io.eager_writeback = eager;
        Rig rig(false, io, 1);
        rig.mem.fill(kBuf, 1024, std::byte{0x3c});
        CHECK(rig.io(blk::kWrite, 4, kBuf, 1024) == blk::kOk);
        CHECK(rig.io(blk::kWrite, 100, kBuf, 512) == blk::kOk);
        CHECK(rig.io(blk::kRead, 4, kBuf + 4096, 1024) == blk::kOk);    // no write-back
        CHECK(rig.io(blk::kWrite, 128, kBuf, 512) == blk::kOutOfRange); // failed: none
        CHECK(rig.device.counters().eager_writebacks == (eager ? 2u : 0u));
        CHECK(rig.io(blk::kFlush, 0, 0, 0) == blk::kOk);
        auto file = read_file(rig.file.path());
        CHECK(file[4 * 512] == std::byte{0x3c});
        CHECK(file[100 * 512 + 511] == std::byte{0x3c});
    }
}

TEST_CASE("block device: every malformed request fails with its status", "[block]") {
    Rig rig;
    const std::uint64_t max = UINT64_MAX;
    SECTION("bad op") {
        CHECK(rig.io(3, 0, kBuf, 512) == blk::kBadOp);
        CHECK(rig.io(max, 0, kBuf, 512) == blk::kBadOp);
    }
    SECTION("bad length: zero, not a multiple of 512") {
        CHECK(rig.io(blk::kRead, 0, kBuf, 0) == blk::kBadLength);
        CHECK(rig.io(blk::kWrite, 0, kBuf, 0) == blk::kBadLength);
        CHECK(rig.io(blk::kRead, 0, kBuf, 700) == blk::kBadLength);
        CHECK(rig.io(blk::kWrite, 0, kBuf, 511) == blk::kBadLength);
        CHECK(rig.io(blk::kRead, 0, kBuf, max) == blk::kBadLength);
    }
    SECTION("out of range, overflow-safe") {
        CHECK(rig.io(blk::kRead, 128, kBuf, 512) == blk::kOutOfRange); // the partial sector
        CHECK(rig.io(blk::kRead, 127, kBuf, 1024) == blk::kOutOfRange);
        CHECK(rig.io(blk::kWrite, 0, kBuf, 129 * 512) == blk::kOutOfRange);
        CHECK(rig.io(blk::kRead, max, kBuf, 512) == blk::kOutOfRange);
        CHECK(rig.io(blk::kRead, max - 1, kBuf, 1024) == blk::kOutOfRange);      // sector + 2 wraps
        CHECK(rig.io(blk::kRead, 1, kBuf, max - 511) == blk::kOutOfRange);       // huge length
        CHECK(rig.io(blk::kRead, max / 512 + 1, kBuf, 512) == blk::kOutOfRange); // * 512 wraps
    }
    SECTION("buffer outside guest RAM, or a read into the reserved first MiB") {
        CHECK(rig.io(blk::kRead, 0, kMemSize, 512) == blk::kBadBuffer);
        CHECK(rig.io(blk::kWrite, 0, kMemSize - 256, 512) == blk::kBadBuffer);
        CHECK(rig.io(blk::kRead, 0, max - 255, 512) == blk::kBadBuffer); // buf + len wraps
        CHECK(rig.io(blk::kRead, 0, 0x1000, 512) == blk::kBadBuffer);
        CHECK(rig.io(blk::kRead, 0, 0xffe00, 1024) == blk::kBadBuffer);
        CHECK(rig.io(blk::kRead, 0, kMemSize - 512, 512) == blk::kOk); // last bytes of RAM
    }
    SECTION("a failed request changes neither the file nor guest RAM") {
        rig.mem.fill(kBuf, 4096, std::byte{0x5a});
        CHECK(rig.io(blk::kWrite, 127, kBuf, 1024) == blk::kOutOfRange);
        CHECK(rig.io(blk::kRead, 128, kBuf, 512) == blk::kOutOfRange);
        CHECK(read_file(rig.file.path()) == disk_contents());
        auto buf = rig.mem.range(kBuf, 4096);
        for (auto b : *buf)
            REQUIRE(b == std::byte{0x5a});
    }
    // The device still serves good requests afterwards.
    CHECK(rig.io(blk::kRead, 0, kBuf, 512) == blk::kOk);
}

TEST_CASE("block device: a read-only disk refuses writes, serves reads and flushes", "[block]") {
    Rig rig(true);
    CHECK(rig.io(blk::kWrite, 0, kBuf, 512) == blk::kReadOnly);
    CHECK(rig.io(blk::kRead, 0, kBuf, 512) == blk::kOk);
    CHECK(rig.io(blk::kFlush, 0, 0, 0) == blk::kOk);
    CHECK(read_file(rig.file.path()) == disk_contents());
}

TEST_CASE("block device: a host I/O failure is status 4, not a VMM failure", "[block]") {
    Rig rig;
    REQUIRE(::truncate(rig.file.path().c_str(), 0) == 0); // the disk shrinks under the VM
    CHECK(rig.io(blk::kRead, 0, kBuf, 512) == blk::kIoError);
}

TEST_CASE("block device: an argument block outside RAM stops the guest", "[block]") {
    struct Case {
        std::uint64_t offset;
        std::uint32_t block;
        const char* name;
    };
    for (auto c : {Case{0, static_cast<std::uint32_t>(kMemSize), "blk_info"},
                   Case{0, static_cast<std::uint32_t>(kMemSize - 8), "blk_info"},
                   Case{1, static_cast<std::uint32_t>(kMemSize - 32), "blk_io"},
                   Case{1, 0xfffffff0u, "blk_io"}}) {
        Rig rig;
        CAPTURE(c.offset, c.block);
        CHECK(rig.out(c.offset, c.block) == ExitAction::stop);
        REQUIRE(rig.control.stop);
        CHECK(rig.control.stop->kind == VmExit::Kind::guest_fault);
        CHECK_THAT(rig.control.stop->message, Contains(c.name));
        CHECK_THAT(rig.control.stop->message, Contains("outside guest RAM"));
    }
    Rig rig;
    CHECK(rig.out(1, kBlock, 2) == ExitAction::stop); // not an outl
    Rig rig2;
    CHECK(rig2.out(1, kBlock, 4, false) == ExitAction::stop); // an inl
}

TEST_CASE("block device: an argument block in the reserved first MiB stops the guest", "[block]") {
    // The VMM writes into argument blocks (info, status): never into the
    // guest's read-only descriptor and page tables.
    for (std::uint64_t nr : {0u, 1u}) {
        for (std::uint32_t block : {0x0u, 0x3000u, 0x12000u, 0xffff0u}) {
            Rig rig;
            CAPTURE(nr, block);
            CHECK(rig.out(nr, block) == ExitAction::stop);
            REQUIRE(rig.control.stop);
            CHECK_THAT(rig.control.stop->message, Contains("reserved first MiB"));
        }
    }
}

TEST_CASE("block device: a missing file or a directory is a configuration error", "[block]") {
    minivmm::BootRam mem{kMemSize};
    FakeVcpuHost control;
    CHECK_THROWS_AS(BlockDevice(mem, control, "/nonexistent/minivmm-disk", false),
                    minivmm::ConfigError);
    CHECK_THROWS_AS(BlockDevice(mem, control, "/tmp", false), minivmm::ConfigError);
    CHECK_THROWS_AS(BlockDevice(mem, control, "/tmp", true), minivmm::ConfigError);
}

namespace {

constexpr std::uint64_t kRing = 0x280000; // 64-byte aligned, in RAM, past the reserved MiB

std::uint64_t setup(Rig& rig, std::uint64_t ring, std::uint64_t entries, std::uint64_t queue) {
    rig.mem.write(kBlock, blk::RingSetup{ring, entries, queue, 0xdead});
    REQUIRE(rig.out(3, kBlock) == ExitAction::resume);
    REQUIRE_FALSE(rig.control.stop);
    return rig.mem.read<blk::RingSetup>(kBlock)->status;
}

std::uint64_t entry_gpa(std::uint64_t k, std::uint64_t entries) {
    return kRing + sizeof(blk::RingHeader) + (k % entries) * sizeof(blk::RingEntry);
}

// The guest's side of publishing requests: a release store of sq_tail (the
// VMM's I/O thread reads it concurrently).
void publish_tail(minivmm::BootRam& mem, std::uint64_t ring, std::uint64_t tail) {
    auto span = mem.range(ring + offsetof(blk::RingHeader, sq_tail), 8);
    REQUIRE(span);
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(span->data()))
        .store(tail, std::memory_order_release);
}

// Writes request k into the ring (status pending) and publishes tail k + 1.
void submit(Rig& rig, std::uint64_t k, std::uint64_t entries, std::uint64_t op,
            std::uint64_t sector, std::uint64_t buf, std::uint64_t len) {
    rig.mem.write(entry_gpa(k, entries),
                  blk::RingEntry{op, sector, buf, len, blk::kPending, k, {}});
    publish_tail(rig.mem, kRing, k + 1);
}

std::uint64_t status_of(Rig& rig, std::uint64_t k, std::uint64_t entries) {
    auto span = rig.mem.range(entry_gpa(k, entries) + offsetof(blk::RingEntry, status), 8);
    REQUIRE(span);
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(span->data()))
        .load(std::memory_order_acquire);
}

std::uint64_t header(Rig& rig, std::size_t field) {
    auto span = rig.mem.range(kRing + field, 8);
    REQUIRE(span);
    return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(span->data()))
        .load(std::memory_order_acquire);
}

// Waits up to 5 s for request k to complete (an I/O thread serves it).
std::uint64_t wait_status(Rig& rig, std::uint64_t k, std::uint64_t entries) {
    for (int i = 0; i < 5000; ++i) {
        auto st = status_of(rig, k, entries);
        if (st != blk::kPending) return st;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return blk::kPending;
}

} // namespace

TEST_CASE("block ring: set-up checks address, size, alignment and queue", "[block]") {
    Rig rig(false, minivmm::BlockIoMode::exit, 2);
    REQUIRE(rig.out(0, kBlock) == ExitAction::resume);
    CHECK(rig.mem.read<blk::Info>(kBlock)->flags == blk::kFlagRing);
    CHECK(setup(rig, kRing + 8, 4, 0) == blk::kBadRing);      // not 64-byte aligned
    CHECK(setup(rig, 0x10000, 4, 0) == blk::kBadRing);        // reserved first MiB
    CHECK(setup(rig, kRing, 3, 0) == blk::kBadRing);          // not a power of two
    CHECK(setup(rig, kRing, 0, 0) == blk::kBadRing);          // empty
    CHECK(setup(rig, kRing, 2048, 0) == blk::kBadRing);       // above kMaxRingEntries
    CHECK(setup(rig, kMemSize - 128, 4, 0) == blk::kBadRing); // runs past RAM
    CHECK(setup(rig, kRing, 4, 2) == blk::kBadQueue);         // 2 queues: 0 and 1
    CHECK(setup(rig, kRing, 4, 0) == blk::kOk);
    CHECK(header(rig, offsetof(blk::RingHeader, need_kick)) == 1);
    CHECK(setup(rig, kRing + 4096, 4, 0) == blk::kBadQueue); // queue 0 again
    CHECK(setup(rig, kRing, 4, 1) == blk::kBadRing);         // the same ring twice
    // In hypercall mode there are no rings at all.
    Rig plain;
    REQUIRE(plain.out(0, kBlock) == ExitAction::resume);
    CHECK(plain.mem.read<blk::Info>(kBlock)->flags == 0);
    CHECK(setup(plain, kRing, 4, 0) == blk::kBadQueue);
}

TEST_CASE("block ring: exit mode serves a batch, each malformed entry fails alone", "[block]") {
    Rig rig(false, minivmm::BlockIoMode::exit, 1);
    constexpr std::uint64_t n = 8;
    REQUIRE(setup(rig, kRing, n, 0) == blk::kOk);
    rig.mem.fill(kBuf, 1024, std::byte{0x5a});
    submit(rig, 0, n, blk::kWrite, 10, kBuf, 1024);
    submit(rig, 1, n, 9, 0, kBuf, 512);                    // bad op
    submit(rig, 2, n, blk::kRead, 200, kBuf, 512);         // past the end
    submit(rig, 3, n, blk::kRead, 0, kMemSize - 256, 512); // buffer leaves RAM
    submit(rig, 4, n, blk::kRead, 0, 0x1000, 512);         // into the reserved MiB
    submit(rig, 5, n, blk::kWrite, 0, kBuf, 100);          // partial sector
    submit(rig, 6, n, blk::kFlush, 0, 0, 0);
    submit(rig, 7, n, blk::kRead, 10, kBuf + 4096, 1024); // reads back request 0
    CHECK(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume); // one doorbell
    REQUIRE_FALSE(rig.control.stop);
    const std::uint64_t want[n] = {blk::kOk,        blk::kBadOp,     blk::kOutOfRange,
                                   blk::kBadBuffer, blk::kBadBuffer, blk::kBadLength,
                                   blk::kOk,        blk::kOk};
    for (std::uint64_t k = 0; k < n; ++k) {
        CAPTURE(k);
        CHECK(status_of(rig, k, n) == want[k]);
    }
    CHECK(header(rig, offsetof(blk::RingHeader, sq_head)) == n);
    auto back = rig.mem.range(kBuf + 4096, 1024);
    REQUIRE(back);
    for (auto b : *back)
        REQUIRE(b == std::byte{0x5a});
    auto file = read_file(rig.file.path());
    CHECK(file[10 * 512] == std::byte{0x5a});
    CHECK(rig.device.counters().ring_requests == n);
    CHECK(rig.device.counters().user_kicks == 1);
    // The ring wraps: 8 more in the same slots.
    for (std::uint64_t k = n; k < 2 * n; ++k)
        submit(rig, k, n, blk::kRead, k, kBuf, 512);
    CHECK(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
    for (std::uint64_t k = n; k < 2 * n; ++k)
        CHECK(status_of(rig, k, n) == blk::kOk);
    // A tail more than a ring ahead is not trusted: one ring's worth (each
    // slot once), then the tail is taken as the new head.
    publish_tail(rig.mem, kRing, 1000);
    CHECK(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
    REQUIRE_FALSE(rig.control.stop);
    CHECK(header(rig, offsetof(blk::RingHeader, sq_head)) == 1000);
    CHECK(rig.device.counters().ring_requests == 3 * n);
    // Also one far ahead (found by fuzz_block_ring too: served one ring at a
    // time until the head caught up, this doorbell would never return).
    publish_tail(rig.mem, kRing, 1000 + (1ull << 62));
    CHECK(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
    CHECK(header(rig, offsetof(blk::RingHeader, sq_head)) == 1000 + (1ull << 62));
    CHECK(rig.device.counters().ring_requests == 4 * n);
    CHECK(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume); // nothing new
    CHECK(rig.device.counters().ring_requests == 4 * n);
    // A doorbell for an address that is no ring stops the guest.
    CHECK(rig.out(4, 0x300000) == ExitAction::stop);
    REQUIRE(rig.control.stop);
    CHECK_THAT(rig.control.stop->message, Contains("no ring is set up at 0x300000"));
}

TEST_CASE("block ring: ioeventfd and poll modes serve from an I/O thread", "[block]") {
    for (auto mode : {minivmm::BlockIoMode::ioeventfd, minivmm::BlockIoMode::poll}) {
        CAPTURE(minivmm::to_string(mode));
        // A poll time long enough that a test thread delayed by a loaded CI
        // machine (sanitizer builds in parallel) still finds the thread polling.
        Rig rig(false, mode, 1, std::chrono::seconds(3));
        constexpr std::uint64_t n = 4;
        REQUIRE(setup(rig, kRing, n, 0) == blk::kOk);
        submit(rig, 0, n, blk::kRead, 1, kBuf, 512);
        submit(rig, 1, n, 3, 0, kBuf, 512); // bad op
        // No KvmVm here: the doorbell reaches access(), which wakes the thread.
        CHECK(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
        CHECK(wait_status(rig, 0, n) == blk::kOk);
        CHECK(wait_status(rig, 1, n) == blk::kBadOp);
        if (mode == minivmm::BlockIoMode::poll) {
            // While it polls (3 s here) it asks for no doorbell, and a
            // request without one is still served.
            CHECK(header(rig, offsetof(blk::RingHeader, need_kick)) == 0);
            submit(rig, 2, n, blk::kFlush, 0, 0, 0);
            CHECK(wait_status(rig, 2, n) == blk::kOk);
            // Idle for its poll time, it asks for doorbells again.
            for (int i = 0; i < 10000 && header(rig, offsetof(blk::RingHeader, need_kick)) == 0;
                 ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            CHECK(header(rig, offsetof(blk::RingHeader, need_kick)) == 1);
        }
        CHECK(rig.device.counters().wakeups >= 1);
        REQUIRE_FALSE(rig.control.stop);
        rig.device.stop(); // joins the thread; the destructor does it again, harmlessly
    }
}

// CPU time this process has used so far, in ns.
std::uint64_t process_cpu_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

// Issue 14, finding 5: once the VM is stopping, drain() serves nothing and
// returns 0, so a poll-mode I/O thread with requests still in its ring saw
// them pending, re-armed, and went round again without ever sleeping: a
// core at 100% (SCHED_FIFO where permitted) until the device was destroyed.
TEST_CASE("block ring: a poll-mode I/O thread sleeps once the VM is stopping", "[block]") {
    Rig rig(false, minivmm::BlockIoMode::poll, 1, std::chrono::microseconds(50));
    REQUIRE(setup(rig, kRing, 4, 0) == blk::kOk);
    rig.control.request_stop({VmExit::Kind::signal, 15, -1, "stopped by the test"});
    // A request the stopping VM must not serve, and its doorbell.
    rig.mem.write(entry_gpa(0, 4), blk::RingEntry{blk::kRead, 0, kBuf, 512, blk::kPending, 0, {}});
    publish_tail(rig.mem, kRing, 1);
    REQUIRE(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
    for (int i = 0; i < 2000 && rig.device.counters().wakeups == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE(rig.device.counters().wakeups >= 1); // the thread took the doorbell
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto before = process_cpu_ns();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto used_ms = (process_cpu_ns() - before) / 1'000'000;
    CAPTURE(used_ms);
    CHECK(used_ms < 100); // a spinning thread uses all 300
    CHECK(status_of(rig, 0, 4) == blk::kPending);
    rig.device.stop();
}

// Issue 14, finding 6: counters() (query-stats, from the control thread)
// walked the queues and I/O threads while a vCPU's ring set-up grew them.
// Under TSan the old code reported the race here; anywhere it could read a
// vector being reallocated.
TEST_CASE("block ring: counters read while rings are set up on other queues", "[block]") {
    constexpr unsigned kQueues = 8;
    for (bool shared : {true, false}) {
        CAPTURE(shared);
        minivmm::BlockIoOptions io{minivmm::BlockIoMode::poll, std::chrono::microseconds(50)};
        io.shared_thread = shared;
        Rig rig(false, io, kQueues);
        std::atomic<bool> done{false};
        std::atomic<std::uint64_t> reads{0}, served{0};
        std::thread reader([&] { // no Catch assertions off the test's thread
            while (!done.load(std::memory_order_acquire)) {
                served.fetch_add(rig.device.counters().ring_requests);
                reads.fetch_add(1, std::memory_order_release);
            }
        });
        // Each set-up starts while the reader is between two reads.
        for (unsigned q = 0; q < kQueues; ++q) {
            const auto seen = reads.load(std::memory_order_acquire);
            while (reads.load(std::memory_order_acquire) == seen)
                std::this_thread::yield();
            CHECK(setup(rig, kRing + q * 0x1000, 4, q) == blk::kOk);
        }
        done.store(true, std::memory_order_release);
        reader.join();
        CHECK(reads.load() >= kQueues);
        CHECK(served.load() == 0); // no request was ever submitted
        CHECK(rig.device.counters().ring_requests == 0);
    }
}

TEST_CASE("block ring: one shared I/O thread or one per queue, two queues either way", "[block]") {
    for (bool shared : {true, false}) {
        CAPTURE(shared);
        minivmm::test::TempFile file(disk_contents());
        minivmm::BootRam mem{kMemSize};
        FakeVcpuHost control;
        minivmm::BlockIoOptions io;
        io.mode = minivmm::BlockIoMode::poll;
        io.poll_time = std::chrono::microseconds(50);
        io.shared_thread = shared;
        BlockDevice dev(mem, control, file.path(), false, io, 2);
        minivmm::KvmVcpu vcpu{minivmm::UniqueFd{}, minivmm::HostMapping{}, 0};
        auto out = [&](std::uint64_t offset, std::uint32_t v) {
            std::array<std::byte, 4> data{};
            std::memcpy(data.data(), &v, sizeof v);
            minivmm::IoAccess a{0, vcpu, 0x511 + offset, offset, true, std::span(data.data(), 4)};
            return dev.access(a);
        };
        constexpr std::uint64_t rings[2] = {0x280000, 0x290000}, n = 4;
        for (std::uint64_t qi = 0; qi < 2; ++qi) {
            mem.write(kBlock, blk::RingSetup{rings[qi], n, qi, 0xdead});
            REQUIRE(out(3, kBlock) == ExitAction::resume);
            REQUIRE(mem.read<blk::RingSetup>(kBlock)->status == blk::kOk);
        }
        auto status = [&](std::uint64_t ring, std::uint64_t k) {
            auto span = mem.range(ring + sizeof(blk::RingHeader) + k * sizeof(blk::RingEntry) +
                                      offsetof(blk::RingEntry, status),
                                  8);
            return std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(span->data()))
                .load(std::memory_order_acquire);
        };
        for (std::uint64_t k = 0; k < 3; ++k) {
            for (std::uint64_t qi = 0; qi < 2; ++qi) {
                mem.write(rings[qi] + sizeof(blk::RingHeader) + k * sizeof(blk::RingEntry),
                          blk::RingEntry{k == 1 ? std::uint64_t{7} : std::uint64_t{blk::kRead},
                                         qi * 8 + k,
                                         kBuf + 4096 * qi,
                                         512,
                                         blk::kPending,
                                         0,
                                         {}});
                publish_tail(mem, rings[qi], k + 1);
                REQUIRE(out(4, static_cast<std::uint32_t>(rings[qi])) == ExitAction::resume);
            }
        }
        for (std::uint64_t qi = 0; qi < 2; ++qi)
            for (std::uint64_t k = 0; k < 3; ++k) {
                std::uint64_t st = blk::kPending;
                for (int i = 0; i < 5000 && st == blk::kPending; ++i) {
                    st = status(rings[qi], k);
                    if (st == blk::kPending)
                        std::this_thread::sleep_for(std::chrono::milliseconds(1));
                }
                CHECK(st == (k == 1 ? blk::kBadOp : blk::kOk));
            }
        CHECK(dev.counters().ring_requests == 6);
        CHECK_FALSE(control.stop);
    }
}

TEST_CASE("block device: the router sends 17, 18, 20, 21 to the disk, the rest to the hypercalls",
          "[block]") {
    Rig rig;
    minivmm::StringConsole console;
    minivmm::HypercallDevice hypercalls(rig.mem, console, rig.control);
    minivmm::BlockHypercallRouter router(hypercalls, rig.device);
    auto call = [&](std::uint64_t nr, std::uint32_t block) {
        std::array<std::byte, 4> data{};
        std::memcpy(data.data(), &block, sizeof block);
        minivmm::IoAccess a{0, rig.vcpu, 0x500 + nr, nr, true, std::span(data.data(), 4)};
        return router.access(a);
    };
    CHECK(call(17, kBlock) == ExitAction::resume);
    CHECK(rig.mem.read<blk::Info>(kBlock)->sectors == 128);
    rig.mem.write(kBlock, blk::Io{blk::kFlush, 0, 0, 0, 99});
    CHECK(call(18, kBlock) == ExitAction::resume);
    CHECK(rig.mem.read<blk::Io>(kBlock)->status == blk::kOk);
    rig.mem.write_bytes(kBuf, minivmm::test::to_bytes("hi"));
    rig.mem.write<std::uint64_t>(kBlock, kBuf);
    rig.mem.write<std::uint64_t>(kBlock + 8, 2);
    CHECK(call(0, kBlock) == ExitAction::resume); // write
    CHECK(console.text() == "hi");
    CHECK(call(19, kBlock) == ExitAction::resume); // yield
    rig.mem.write(kBlock, blk::RingSetup{0x280000, 4, 0, 0xdead});
    CHECK(call(20, kBlock) == ExitAction::resume); // ring set-up reaches the disk
    CHECK(rig.mem.read<blk::RingSetup>(kBlock)->status == blk::kBadQueue); // hypercall mode
    CHECK(call(22, kBlock) == ExitAction::stop);
    REQUIRE(rig.control.stop);
    CHECK_THAT(rig.control.stop->message, Contains("no such hypercall"));
}

TEST_CASE("minivmm-run options: --disk and --disk-readonly", "[block]") {
    auto parse = [](std::vector<const char*> args) {
        args.insert(args.begin(), "minivmm-run");
        return minivmm::cli::parse_run_options(static_cast<int>(args.size()), args.data());
    };
    auto plain = parse({"img"});
    REQUIRE(std::holds_alternative<minivmm::cli::RunOptions>(plain));
    CHECK(std::get<minivmm::cli::RunOptions>(plain).disk.empty());
    auto ro = parse({"--disk", "d.img", "--disk-readonly", "img"});
    REQUIRE(std::holds_alternative<minivmm::cli::RunOptions>(ro));
    CHECK(std::get<minivmm::cli::RunOptions>(ro).disk == "d.img");
    CHECK(std::get<minivmm::cli::RunOptions>(ro).disk_readonly);
    auto bad = parse({"--disk-readonly", "img"});
    REQUIRE(std::holds_alternative<minivmm::cli::EarlyExit>(bad));
    CHECK(std::get<minivmm::cli::EarlyExit>(bad).status == minivmm::cli::kExitUsage);
}

TEST_CASE("minivmm-run options: --blk-io, --blk-priority, --blk-poll-us, --blk-writeback",
          "[block]") {
    using minivmm::BlockIoMode;
    using minivmm::cli::EarlyExit;
    using minivmm::cli::RunOptions;
    auto parse = [](std::vector<const char*> args) {
        args.insert(args.begin(), "minivmm-run");
        return minivmm::cli::parse_run_options(static_cast<int>(args.size()), args.data());
    };
    auto def = parse({"--disk", "d.img", "img"});
    REQUIRE(std::holds_alternative<RunOptions>(def));
    CHECK(std::get<RunOptions>(def).disk_io.mode == minivmm::BlockIoOptions{}.mode);
    for (auto [name, mode] :
         {std::pair{"hypercall", BlockIoMode::hypercall}, std::pair{"exit", BlockIoMode::exit},
          std::pair{"ioeventfd", BlockIoMode::ioeventfd}, std::pair{"poll", BlockIoMode::poll}}) {
        std::string flag = std::string("--blk-io=") + name;
        auto r = parse({"--disk", "d.img", flag.c_str(), "img"});
        REQUIRE(std::holds_alternative<RunOptions>(r));
        CHECK(std::get<RunOptions>(r).disk_io.mode == mode);
        CHECK(minivmm::parse_block_io_mode(name) == mode);
    }
    auto rt = parse(
        {"--disk", "d.img", "--blk-io=poll", "--blk-priority=fifo", "--blk-poll-us=50", "img"});
    REQUIRE(std::holds_alternative<RunOptions>(rt));
    CHECK(std::get<RunOptions>(rt).disk_io.priority == minivmm::BlockIoOptions::Priority::fifo);
    CHECK(std::get<RunOptions>(rt).disk_io.poll_time == std::chrono::microseconds(50));
    auto normal = parse({"--disk", "d.img", "--blk-io=ioeventfd", "--blk-priority=normal", "img"});
    REQUIRE(std::holds_alternative<RunOptions>(normal));
    CHECK(std::get<RunOptions>(normal).disk_io.priority ==
          minivmm::BlockIoOptions::Priority::normal);
    CHECK(std::get<RunOptions>(def).disk_io.priority ==
          minivmm::BlockIoOptions::Priority::automatic);
    CHECK_FALSE(std::get<RunOptions>(def).disk_io.eager_writeback);
    auto lazy = parse({"--disk", "d.img", "--blk-io=hypercall", "--blk-writeback=lazy", "img"});
    REQUIRE(std::holds_alternative<RunOptions>(lazy));
    CHECK_FALSE(std::get<RunOptions>(lazy).disk_io.eager_writeback);
    auto eager = parse({"--disk", "d.img", "--blk-writeback=eager", "img"});
    REQUIRE(std::holds_alternative<RunOptions>(eager));
    CHECK(std::get<RunOptions>(eager).disk_io.eager_writeback);
    // Each is a usage error where it would be ignored, or with a bad value.
    for (std::vector<const char*> bad : {
             std::vector<const char*>{"--blk-io=poll", "img"},
             {"--blk-priority=fifo", "img"},
             {"--blk-poll-us=10", "img"},
             {"--disk", "d.img", "--blk-io=fast", "img"},
             {"--disk", "d.img", "--blk-io=exit", "--blk-priority=fifo", "img"},
             {"--disk", "d.img", "--blk-io=ioeventfd", "--blk-poll-us=10", "img"},
             {"--disk", "d.img", "--blk-poll-us=0", "img"},
             {"--disk", "d.img", "--blk-priority=high", "img"},
             {"--blk-writeback=lazy", "img"},
             {"--disk", "d.img", "--disk-readonly", "--blk-writeback=eager", "img"},
             {"--disk", "d.img", "--blk-writeback=never", "img"},
         }) {
        auto r = parse(bad);
        REQUIRE(std::holds_alternative<EarlyExit>(r));
        CHECK(std::get<EarlyExit>(r).status == minivmm::cli::kExitUsage);
    }
    CHECK_FALSE(minivmm::parse_block_io_mode("Poll"));
}

TEST_CASE("block ring: hostile rings: a tail 2^63 ahead, the ring as a buffer, overlapping rings",
          "[block]") {
    Rig rig(false, minivmm::BlockIoMode::exit, 2);
    constexpr std::uint64_t n = 8;
    REQUIRE(setup(rig, kRing, n, 0) == blk::kOk);
    const std::uint64_t ring_bytes = sizeof(blk::RingHeader) + n * sizeof(blk::RingEntry);
    // A second ring overlapping the first is refused, one right after it is not.
    CHECK(setup(rig, kRing + 64, n, 1) == blk::kBadRing);
    CHECK(setup(rig, kRing - 512, n, 1) == blk::kBadRing); // its end runs into the first
    // Buffers naming the ring: the header, an entry, straddling its end.
    submit(rig, 0, n, blk::kRead, 0, kRing, 512);
    submit(rig, 1, n, blk::kRead, 0, kRing + ring_bytes - 64, 512);
    submit(rig, 2, n, blk::kWrite, 0, kRing - 256, 512);       // ends inside the header
    submit(rig, 3, n, blk::kRead, 0, kRing + ring_bytes, 512); // just after it: fine
    CHECK(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
    CHECK(status_of(rig, 0, n) == blk::kBadBuffer);
    CHECK(status_of(rig, 1, n) == blk::kBadBuffer);
    CHECK(status_of(rig, 2, n) == blk::kBadBuffer);
    CHECK(status_of(rig, 3, n) == blk::kOk);
    // The same through blk_io.
    CHECK(rig.io(blk::kRead, 0, kRing + 128, 512) == blk::kBadBuffer);
    // A tail 2^63 ahead: one ring's worth is served (each slot once), the
    // phantom rest skipped, and the doorbell returns at once.
    const auto served = rig.device.counters().ring_requests;
    const std::uint64_t far = 4 + (std::uint64_t{1} << 63);
    publish_tail(rig.mem, kRing, far);
    auto t0 = std::chrono::steady_clock::now();
    CHECK(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
    CHECK(rig.device.counters().ring_requests - served == n);
    CHECK(header(rig, offsetof(blk::RingHeader, sq_head)) == far);
    REQUIRE_FALSE(rig.control.stop);
    // The ring still works afterwards.
    submit(rig, far, n, blk::kRead, 1, kBuf, 512);
    CHECK(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
    CHECK(status_of(rig, far, n) == blk::kOk);
}

// Issue 14, finding 2: a page the VMM writes is marked dirty once the store
// is complete, never before (a sync in between would take the bit and copy
// the old bytes), and every store counts: the ring header's sq_head too.
TEST_CASE("block ring: the VMM's stores into guest RAM are marked once made", "[block]") {
    Rig rig(false, minivmm::BlockIoMode::exit, 1);
    constexpr std::uint64_t n = 128; // header and entries 0-62 on the ring's first page
    REQUIRE(setup(rig, kRing, n, 0) == blk::kOk);
    for (std::uint64_t k = 0; k < 64; ++k) // move the head to entry 64, on the second page
        submit(rig, k, n, blk::kFlush, 0, 0, 0);
    REQUIRE(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
    auto& dirty = rig.mem.block()->dirty();
    (void)dirty.take();
    // A read into a page of its own, from an entry on the ring's second page.
    rig.mem.write(entry_gpa(64, n),
                  blk::RingEntry{blk::kRead, 0, kBuf, 512, blk::kPending, 64, {}});
    publish_tail(rig.mem, kRing, 65);
    (void)dirty.take(); // the test's own stores
    REQUIRE(rig.out(4, static_cast<std::uint32_t>(kRing)) == ExitAction::resume);
    REQUIRE(status_of(rig, 64, n) == blk::kOk);
    const std::vector<std::uint64_t> pages = dirty.take();
    const std::vector<std::uint64_t> want = {kRing / 4096,            // header: sq_head
                                             entry_gpa(64, n) / 4096, // the entry's status
                                             kBuf / 4096};            // the data read
    CHECK(pages == want);
}

TEST_CASE("GuestMemory: writable_range checks, mark_written marks", "[block]") {
    minivmm::BootRam mem{kMemSize};
    auto& dirty = mem.block()->dirty();
    (void)dirty.take();
    auto span = mem.writable_range(0x201ff8, 16); // two pages
    REQUIRE(span);
    CHECK(dirty.count() == 0); // nothing is marked before the store is made
    std::memset(span->data(), 1, span->size());
    mem.mark_written(0x201ff8, 16);
    CHECK(dirty.take() == std::vector<std::uint64_t>{0x201, 0x202});
    mem.write<std::uint64_t>(0x203000, 7); // write and fill mark their own stores
    mem.fill(0x204000, 1, std::byte{1});
    CHECK(dirty.take() == std::vector<std::uint64_t>{0x203, 0x204});
    CHECK_FALSE(mem.writable_range(kMemSize - 8, 16));
}
