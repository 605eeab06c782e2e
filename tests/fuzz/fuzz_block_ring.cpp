// Fuzz target: the block device's request parser and ring consumer
// (src/devices/block_device.cpp) behind the hypercall router, as Vm wires
// them: hypercalls 17, 18, 20 and 21 reach the BlockDevice, the others the
// ABI's hypercall device. The first input byte configures the disk
// (bit 0 read-only, bit 1 hypercall mode without rings, bit 2 two queues;
// rings otherwise use BlockIoMode::exit, served synchronously on the
// doorbell); the rest writes guest RAM (1.25 MiB, guarded) and makes up to
// 16 hypercalls (fuzz_support.hpp, next_op). The disk is a memfd of 128
// sectors and a partial one, restored after any input that wrote it.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "devices/block_device.hpp"
#include "devices/hypercalls.hpp"
#include "fuzz_support.hpp"
#include "minivmm/block_abi.hpp"
#include "minivmm/console.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

// Room above the reserved MiB for the largest ring (128 + 1024 * 64 bytes).
constexpr std::uint64_t kRam = (1ull << 20) + (256ull << 10);
constexpr std::size_t kDiskBytes = 128 * 512 + 100;

struct NullConsole final : ConsoleSink {
    void write(std::span<const std::byte>) override {}
};

// The disk: an anonymous memfd, reopened by path as BlockDevice opens files.
struct Disk {
    Disk() : fd(::memfd_create("minivmm-fuzz-disk", MFD_CLOEXEC)) {
        if (fd < 0) {
            std::perror("fuzz: memfd_create");
            std::abort();
        }
        contents.resize(kDiskBytes);
        for (std::size_t i = 0; i < contents.size(); ++i)
            contents[i] = static_cast<std::uint8_t>(i / 512 + i);
        restore();
        path = "/proc/self/fd/" + std::to_string(fd);
    }
    void restore() {
        if (::pwrite(fd, contents.data(), contents.size(), 0) !=
            static_cast<ssize_t>(contents.size())) {
            std::perror("fuzz: restoring the disk");
            std::abort();
        }
    }
    int fd;
    std::vector<std::uint8_t> contents;
    std::string path;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static GuardedMemory ram(kRam);
    static Disk disk;
    ram.clear();

    Reader in(std::span(data, size));
    const auto config = in.take<std::uint8_t>();
    const bool read_only = config & 1;
    BlockIoOptions io;
    io.mode = (config & 2) ? BlockIoMode::hypercall : BlockIoMode::exit;
    NullConsole console;
    FakeVcpuHost control;
    HypercallDevice hypercalls(ram.mem(), console, control);
    std::optional<BlockDevice> disk_device;
    disk_device.emplace(ram.mem(), control, disk.path, read_only, io, (config & 4) ? 2u : 1u);
    BlockHypercallRouter router(hypercalls, *disk_device);

    for (int calls = 0; !in.empty() && calls < 16;) {
        auto call = next_op(in, ram);
        if (!call) continue;
        ++calls;
        control.stop.reset();
        const ExitAction action = perform(router, *call);
        check_outcome(action, control.stop);
        if (action == ExitAction::stop) continue;
        // Status fields are written last: whatever a buffer overlapped, they
        // hold one of the ABI's values.
        switch (call->nr) {
        case blk::kInfoNr: {
            auto info = read_back<blk::Info>(ram, call->block);
            MINIVMM_FUZZ_CHECK(info.sectors == 128);
            MINIVMM_FUZZ_CHECK(((info.flags & blk::kFlagReadOnly) != 0) == read_only);
            break;
        }
        case blk::kIoNr:
            MINIVMM_FUZZ_CHECK(read_back<blk::Io>(ram, call->block).status <= blk::kBadLength);
            break;
        case blk::kRingSetupNr: {
            auto status = read_back<blk::RingSetup>(ram, call->block).status;
            MINIVMM_FUZZ_CHECK(status == blk::kOk || status == blk::kBadRing ||
                               status == blk::kBadQueue);
            break;
        }
        default:
            break;
        }
    }
    const bool wrote = disk_device->counters().writes != 0;
    disk_device.reset();
    if (wrote) disk.restore();
    ram.check_reserved_untouched();
    return 0;
}
