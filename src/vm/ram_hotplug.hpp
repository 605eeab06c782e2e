// Hot-added RAM (README "Control socket", "Memory hotplug"): regions added to
// and removed from the guest-physical space while vCPUs run, mapped into the
// guest's page tables, and the guest side of the protocol: hypercall 22
// (mem_map) lists them with a generation number, hypercall 23 (mem_claim)
// marks one in use. A claimed region cannot be removed: the guest must
// release it first, which is what makes removal safe for a guest that
// follows the protocol.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "devices/hotplug_registry.hpp"
#include "minivmm/address_space.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/hotplug_ram.hpp"
#include "minivmm/latency_histogram.hpp"
#include "minivmm/ram_block.hpp"

namespace minivmm {

class RamHotplug final : public HotplugRegistry {
  public:
    static constexpr std::size_t kMaxRegions = 32;
    static constexpr std::uint64_t kAlign = 2ull << 20; // 2 MiB: one large page

    // `base` is the boot RAM (its page tables at `cr3`); regions go into
    // `root` of `space` through `topology`, backed like boot RAM (`ram`). A
    // new region starts with dirty logging on when `dirty_logging` is set
    // (read under the topology lock, which whoever flips it holds).
    RamHotplug(BootRam& base, std::uint64_t cr3, MemoryTopology& topology, MemoryRegion& root,
               AddressSpace& space, RamBlockOptions ram, const std::atomic<bool>& dirty_logging)
        : base_(base), cr3_(cr3), topology_(topology), root_(root), space_(space), ram_(ram),
          dirty_logging_(dirty_logging) {}

    // Throw ConfigError with a one-line reason and change nothing on failure.
    // Never call them inside a MemoryTopology::Transaction: the slot must
    // exist before the guest's page tables map it (and be gone before the
    // memory is freed), which only the outermost transaction guarantees.
    void add(std::uint64_t gpa, std::uint64_t size);
    void remove(std::uint64_t gpa);

    std::vector<HotplugRam> list() const;
    Snapshot snapshot() const override;
    std::uint64_t claim(std::uint64_t gpa, bool claimed) override;

    // add + remove operations, and how long each took.
    const LatencyHistogram& add_latency() const noexcept { return add_latency_; }
    const LatencyHistogram& remove_latency() const noexcept { return remove_latency_; }

  private:
    struct Region {
        std::uint64_t gpa, size;
        bool claimed = false;
        std::shared_ptr<MemoryRegion> region;
    };

    BootRam& base_;
    std::uint64_t cr3_;
    MemoryTopology& topology_;
    MemoryRegion& root_;
    AddressSpace& space_;
    RamBlockOptions ram_;
    const std::atomic<bool>& dirty_logging_;
    mutable std::mutex mutex_;
    std::vector<Region> regions_; // guarded by mutex_, sorted by gpa
    std::uint64_t generation_ = 0;
    std::uint64_t next_id_ = 0;
    LatencyHistogram add_latency_, remove_latency_;
};

} // namespace minivmm
