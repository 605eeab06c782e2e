/// \file
/// Where the VMM puts things in guest-physical memory: the private layout of
/// [0, 1 MiB) behind guest ABI v1 (docs/guest-abi.md), plus the selectors and
/// ports the ABI and the boot code agree on. What a guest may rely on (the
/// reserved MiB, the image base, the hypercall ports) comes from minivmm/abi/.
#pragma once

#include <cstdint>

#include "minivmm/abi/abi.h"
#include "minivmm/abi/hypercall.h"

/// Guest-physical layout, GDT selectors and ports of guest ABI v1.
namespace minivmm::layout {

inline constexpr std::uint64_t kPageSize = 0x1000;        ///< 4 KiB
inline constexpr std::uint64_t kLargePageSize = 0x200000; ///< 2 MiB

/// [0, kReservedEnd) belongs to the VMM and is read-only for the guest; page 0
/// is left unmapped so that null pointers fault.
inline constexpr std::uint64_t kReservedEnd = MVG_RESERVED_END;
inline constexpr std::uint64_t kImageBase = MVG_IMAGE_BASE; ///< flat images load here

inline constexpr std::uint64_t kBootInfo = 0x1000;       ///< the BootInfo block
inline constexpr std::uint64_t kCmdline = 0x2000;        ///< the command line (NUL-terminated)
inline constexpr std::uint64_t kCmdlineMax = 0x1000;     ///< including the NUL
inline constexpr std::uint64_t kGdt = 0x3000;            ///< two pages
inline constexpr std::uint64_t kIdt = 0x5000;            ///< 256 gates of 16 bytes
inline constexpr std::uint64_t kExceptionStubs = 0x6000; ///< ring-0 exception stubs
inline constexpr std::uint64_t kTssArray = 0x7000;       ///< one 104-byte TSS per vCPU...
inline constexpr std::uint64_t kTssStride = 128;         ///< ...every 128 bytes
/// One I/O permission bitmap (all zero: every port allowed) shared by every
/// TSS through its iomap_base, followed by the 0xff byte the CPU requires.
inline constexpr std::uint64_t kIoBitmap = 0xf000;
inline constexpr std::uint64_t kIoBitmapSize = 0x2000;   ///< 65536 ports, one bit each
inline constexpr std::uint64_t kPageTables = 0x12000;    ///< page-table pool
inline constexpr std::uint64_t kPageTablesEnd = 0x80000; ///< end of the page-table pool
/// Ring-0 stacks for exception delivery: supervisor-only, writable.
inline constexpr std::uint64_t kExceptionStacks = 0x80000;
inline constexpr std::uint64_t kExceptionStackSize = 0x800; ///< per vCPU

inline constexpr unsigned kMaxVcpus = 256; ///< bounded by the TSS and stack areas above
/// 256 KiB per vCPU, contiguous at the top of RAM: the ABI maps all RAM from
/// 1 MiB up, so there are no guard pages between stacks.
inline constexpr std::uint64_t kVcpuStackSize = 0x40000;
inline constexpr std::uint64_t kMaxMemSize = 64ull << 30; ///< what the page-table pool covers

// GDT selectors.
inline constexpr std::uint16_t kKernelCs = 0x08;   ///< ring-0 64-bit code
inline constexpr std::uint16_t kKernelDs = 0x10;   ///< ring-0 data
inline constexpr std::uint16_t kUserDs = 0x18 | 3; ///< ring-3 data (RPL 3)
inline constexpr std::uint16_t kUserCs = 0x20 | 3; ///< ring-3 64-bit code (RPL 3)
inline constexpr std::uint16_t kFirstTss = 0x28;   ///< 16-byte descriptors, one per vCPU
inline constexpr unsigned kGdtFixedEntries = 5;    ///< null, 4 segments; the TSSs follow

// Ports. Hypercall nr N is an outl to kHypercallPortBase + N.
inline constexpr std::uint16_t kHypercallPortBase = MVG_HC_PORT_BASE;   ///< port of hypercall 0
inline constexpr std::uint16_t kHypercallPortCount = MVG_HC_PORT_COUNT; ///< hypercalls 0..255
/// The exception stubs (ring 0, in VMM memory) report through this port.
inline constexpr std::uint16_t kExceptionPort = 0x4ff;

} // namespace minivmm::layout
