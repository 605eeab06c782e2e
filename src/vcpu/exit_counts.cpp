#include "minivmm/exit_counts.hpp"

#include <linux/kvm.h>

#include <fmt/format.h>

#include "minivmm/boot_layout.hpp"

namespace minivmm {

static_assert(ExitCounts::kHypercalls == layout::kHypercallPortCount);

std::uint64_t ExitCounts::io() const noexcept {
    return by_reason[KVM_EXIT_IO];
}

std::uint64_t ExitCounts::mmio() const noexcept {
    return by_reason[KVM_EXIT_MMIO];
}

std::uint64_t ExitCounts::total() const noexcept {
    std::uint64_t n = 0;
    for (auto c : by_reason)
        n += c;
    return n;
}

ExitCounts& ExitCounts::operator+=(const ExitCounts& other) noexcept {
    for (std::size_t i = 0; i < by_reason.size(); ++i)
        by_reason[i] += other.by_reason[i];
    for (std::size_t i = 0; i < hypercalls.size(); ++i)
        hypercalls[i] += other.hypercalls[i];
    other_io += other.other_io;
    ioeventfd_signals += other.ioeventfd_signals;
    ring_requests += other.ring_requests;
    return *this;
}

std::string ExitCounts::reason_name(std::size_t reason) {
    // KVM_EXIT_* names in lower case, for the reasons an x86 VMM can see.
    static constexpr std::array<const char*, 38> kNames = {"unknown",
                                                           "exception",
                                                           "io",
                                                           "hypercall",
                                                           "debug",
                                                           "hlt",
                                                           "mmio",
                                                           "irq_window",
                                                           "shutdown",
                                                           "fail_entry",
                                                           "intr",
                                                           "set_tpr",
                                                           "tpr_access",
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           "nmi",
                                                           "internal_error",
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           nullptr,
                                                           "system_event",
                                                           nullptr,
                                                           "ioapic_eoi",
                                                           "hyperv",
                                                           nullptr,
                                                           "x86_rdmsr",
                                                           "x86_wrmsr",
                                                           "dirty_ring_full",
                                                           "ap_reset_hold",
                                                           "x86_bus_lock",
                                                           "xen",
                                                           nullptr,
                                                           nullptr,
                                                           "notify"};
    if (reason < kNames.size() && kNames[reason] != nullptr) return kNames[reason];
    return fmt::format("reason{}", reason);
}

} // namespace minivmm
