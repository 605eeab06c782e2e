// What hypercalls 22 and 23 ask of hot-added RAM (a devices-layer interface,
// so that the hypercall device needs nothing from the vm layer above it).
#pragma once

#include <cstdint>
#include <vector>

#include "minivmm/hotplug_ram.hpp"

namespace minivmm {

// Hot-added RAM as hypercalls 22 and 23 see it; the VM's RamHotplug answers
// (the vm layer, above this one).
class HotplugRegistry {
  public:
    // The list and the generation it has, taken under one lock (hypercall
    // 22: a guest re-reads the list when the generation changes).
    struct Snapshot {
        std::vector<HotplugRam> regions;
        std::uint64_t generation;
    };
    virtual Snapshot snapshot() const = 0;
    // Guest side (hypercall 23): MVG_MEM_CLAIM_OK or MVG_MEM_CLAIM_NO_REGION.
    virtual std::uint64_t claim(std::uint64_t gpa, bool claimed) = 0;

  protected:
    ~HotplugRegistry() = default;
};

} // namespace minivmm
