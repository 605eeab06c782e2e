/// \file
/// The boot info block of guest ABI v1, as the guest sees it at RDI.
#pragma once

#include <cstdint>

namespace minivmm {

/// The boot info block of guest ABI v1 (shared/design/guest-abi.md), at
/// layout::kBootInfo in guest RAM; the guest gets its address in RDI.
struct BootInfo {
    /// The ABI calls this "MINIVMM1"; stored little-endian its bytes spell "MNIVMMV1".
    /// The number is what counts.
    static constexpr std::uint64_t kMagic = 0x31564d4d56494e4d;
    static constexpr std::uint64_t kVersion = 1; ///< ABI version; later ones only append fields

    std::uint64_t magic = kMagic;     ///< kMagic
    std::uint64_t version = kVersion; ///< kVersion
    std::uint64_t mem_size = 0;       ///< guest RAM in bytes
    std::uint64_t nr_vcpus = 0;       ///< number of vCPUs
    std::uint64_t tsc_khz = 0;        ///< TSC rate in kHz; 0 if KVM does not know it
    std::uint64_t heap_start = 0;     ///< first page after the image
    std::uint64_t heap_end = 0;       ///< end of the free RAM, below the vCPU stacks
    std::uint64_t cmdline = 0;        ///< guest-physical address of the command line, or 0
};
static_assert(sizeof(BootInfo) == 64, "ABI v1 boot info is eight 8-byte fields");

/// Hypercall numbers (port = layout::kHypercallPortBase + number).
enum class Hypercall : std::uint16_t {
    write = 0, ///< { u64 buf; u64 len; }
    exit = 1,  ///< { u64 code; }
    halt = 16, ///< implementation-defined: park this vCPU; all parked = exit(0)
    // 17, 18: the block device (minivmm/block_abi.hpp)
    yield = 19, ///< implementation-defined: { u64 reserved; } give the host CPU back (sched_yield)
    // 20, 21: block request rings (minivmm/block_abi.hpp)
    mem_map = 22,   ///< implementation-defined, README "Memory hotplug": { u64 buf; u64 cap;
                    ///< u64 count; u64 generation; } lists hot-added RAM
    mem_claim = 23, ///< implementation-defined: { u64 gpa; u64 claim; u64 status; } marks
                    ///< hot-added RAM in use (1) or not (0)
};

} // namespace minivmm
