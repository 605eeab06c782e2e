/// \file
/// One vCPU's dirty ring (api.rst 8.29, KVM_CAP_DIRTY_LOG_RING): KVM pushes
/// {slot, offset} for every page the vCPU dirties; the VMM harvests entries
/// in order, marks each collected, and later asks KVM (KVM_RESET_DIRTY_RINGS)
/// to re-protect the collected pages.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>

#include "minivmm/host_mapping.hpp"

namespace minivmm {

class KvmVcpu;

/// One vCPU's dirty ring: owns its mapping of the ring (unmapped when
/// destroyed); the vCPU must outlive it. One consumer at a time.
class DirtyRing {
  public:
    /// Maps the ring of `vcpu`; `entries` is what the VM enabled (a power of two).
    /// \throws KvmError if the mmap fails (e.g. the ring was not enabled).
    DirtyRing(const KvmVcpu& vcpu, std::uint32_t entries);
    /// A ring in memory the caller owns and keeps alive (a test playing KVM's
    /// part); its size must be a power of two.
    /// \throws ConfigError otherwise.
    explicit DirtyRing(std::span<kvm_dirty_gfn> gfns);

    /// Calls fn(slot, offset) for each dirty entry, from the last harvested
    /// one on, marking each collected; returns how many there were. Single
    /// consumer per ring.
    template <typename Fn>
    std::uint64_t harvest(Fn&& fn) {
        std::uint64_t n = 0;
        for (;;) {
            auto& e = gfns_[fetch_ & (entries_ - 1)];
            // Acquire pairs with KVM's release of the flags (ACQ_REL ordering).
            auto flags = __atomic_load_n(&e.flags, __ATOMIC_ACQUIRE);
            if ((flags & KVM_DIRTY_GFN_F_DIRTY) == 0) break;
            fn(e.slot, e.offset);
            __atomic_store_n(&e.flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
            ++fetch_;
            ++n;
        }
        return n;
    }

  private:
    HostMapping mapping_;
    kvm_dirty_gfn* gfns_;
    std::uint32_t entries_;
    std::uint64_t fetch_ = 0;
};

} // namespace minivmm
