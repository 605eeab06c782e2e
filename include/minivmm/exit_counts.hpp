/// \file
/// What a VM's vCPUs exited for, counted.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace minivmm {

/// Exits counted by KVM exit reason (KVM_EXIT_*), summed over vCPUs, and the
/// port I/O exits broken down by hypercall number (a value type).
struct ExitCounts {
    static constexpr std::size_t kReasons = 64;      ///< reasons counted; higher ones count as 63
    static constexpr std::size_t kHypercalls = 256;  ///< ports 0x500 + nr
    std::array<std::uint64_t, kReasons> by_reason{}; ///< exits by KVM_EXIT_* reason
    /// KVM_EXIT_IO exits on hypercall port 0x500 + nr, by nr.
    std::array<std::uint64_t, kHypercalls> hypercalls{};
    /// KVM_EXIT_IO exits on any other port (exception reports, devices).
    std::uint64_t other_io = 0;
    /// Not exits to user space, but what replaced them on the block
    /// device's ring path: doorbells that ended in the kernel (ioeventfd
    /// signals, as the I/O threads read them)...
    std::uint64_t ioeventfd_signals = 0;
    /// ...and requests served from rings.
    std::uint64_t ring_requests = 0;

    /// Every exit, of any reason.
    std::uint64_t total() const noexcept;
    /// KVM_EXIT_IO exits.
    std::uint64_t io() const noexcept;
    /// KVM_EXIT_MMIO exits.
    std::uint64_t mmio() const noexcept;
    /// Adds every counter of `other`.
    ExitCounts& operator+=(const ExitCounts& other) noexcept;
    /// "hlt", "io", "mmio", ... for KVM_EXIT_* values; "reason<N>" for others.
    static std::string reason_name(std::size_t reason);
};

} // namespace minivmm
