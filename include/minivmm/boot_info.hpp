// The boot info block of guest ABI v1, as the guest sees it at RDI.
#pragma once

#include <cstdint>

namespace minivmm {

struct BootInfo {
    // The ABI calls this "MINIVMM1"; stored little-endian its bytes spell "MNIVMMV1".
    // The number is what counts.
    static constexpr std::uint64_t kMagic = 0x31564d4d56494e4d;
    static constexpr std::uint64_t kVersion = 1;

    std::uint64_t magic = kMagic;
    std::uint64_t version = kVersion;
    std::uint64_t mem_size = 0;
    std::uint64_t nr_vcpus = 0;
    std::uint64_t tsc_khz = 0;
    std::uint64_t heap_start = 0;
    std::uint64_t heap_end = 0;
    std::uint64_t cmdline = 0;
};
static_assert(sizeof(BootInfo) == 64, "ABI v1 boot info is eight 8-byte fields");

// Hypercall numbers (port = layout::kHypercallPortBase + number).
enum class Hypercall : std::uint16_t {
    write = 0, // { u64 buf; u64 len; }
    exit = 1,  // { u64 code; }
    halt = 16, // implementation-defined: park this vCPU; all parked = exit(0)
    // 17, 18: the block device (minivmm/block_abi.hpp)
    yield = 19, // implementation-defined: { u64 reserved; } give the host CPU back (sched_yield)
    // 20, 21: block request rings (minivmm/block_abi.hpp)
    // implementation-defined, README "Memory hotplug":
    mem_map = 22,   // { u64 buf; u64 cap; u64 count; u64 generation; } list hot-added RAM
    mem_claim = 23, // { u64 gpa; u64 claim; u64 status; } mark hot-added RAM in use (1) or not (0)
};

} // namespace minivmm
