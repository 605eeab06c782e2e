#include "vm/ram_hotplug.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "boot/builders.hpp"
#include "minivmm/abi/hypercall.h"
#include "minivmm/boot.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/error.hpp"

namespace minivmm {

namespace {
std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point t0) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count());
}
} // namespace

void RamHotplug::add(std::uint64_t gpa, std::uint64_t size) {
    const auto t0 = std::chrono::steady_clock::now();
    // Lock order: topology, then this table (the guest's hypercalls take only
    // the table). The topology lock also orders us against dirty-log
    // start/stop, which flip dirty_logging_ under it.
    MemoryTopology::Transaction tx(topology_);
    std::lock_guard lock(mutex_);
    if (size == 0) throw ConfigError("memory-add: size must not be 0");
    if (gpa % kAlign != 0 || size % kAlign != 0)
        throw ConfigError(fmt::format(
            "memory-add: gpa {:#x} and size {:#x} must both be multiples of 2 MiB", gpa, size));
    if (gpa < base_.size())
        throw ConfigError(
            fmt::format("memory-add: gpa {:#x} is inside boot RAM [0, {:#x})", gpa, base_.size()));
    if (gpa > layout::kMaxMemSize || size > layout::kMaxMemSize - gpa)
        throw ConfigError(fmt::format("memory-add: [{:#x}, +{:#x}) ends above {:#x}, the top of "
                                      "what the guest's page tables can map",
                                      gpa, size, layout::kMaxMemSize));
    if (regions_.size() >= kMaxRegions)
        throw ConfigError(
            fmt::format("memory-add: already {} hot-added regions (the limit)", kMaxRegions));
    // Nothing else may be mapped there: other hot-added RAM, or a region a
    // library user put into the address space.
    auto view = space_.view();
    for (const auto& sec : view->sections())
        if (sec.gpa < gpa + size && gpa < sec.end())
            throw ConfigError(fmt::format("memory-add: [{:#x}, +{:#x}) overlaps '{}' at [{:#x}, "
                                          "{:#x})",
                                          gpa, size, sec.region->name(), sec.gpa, sec.end()));
    auto block = std::make_shared<RamBlock>(fmt::format("hotplug{}", next_id_), size, ram_);
    auto region = MemoryRegion::ram(block->name(), block, 0, size);
    topology_.add_subregion(root_, gpa, region);
    if (dirty_logging_.load()) topology_.set_dirty_logging(*region, true);
    try {
        tx.commit(); // the outermost transaction: KVM has the slot after this
    } catch (...) {
        // A listener refused the slot (KVM out of slots, or out of memory):
        // the topology kept the new view, so take the region out of the
        // tree again, or the range would stay blocked and unremovable.
        try {
            topology_.remove_subregion(root_, *region);
        } catch (...) {
        }
        throw;
    }
    // Mapped for the guest only once KVM has the slot, so the guest never
    // sees a mapping without memory behind it.
    try {
        map_hotplug_ram(base_, cr3_, gpa, size, true);
    } catch (...) {
        topology_.remove_subregion(root_, *region);
        throw;
    }
    ++next_id_;
    ++generation_;
    Region r{gpa, size, false, std::move(region)};
    regions_.insert(std::upper_bound(regions_.begin(), regions_.end(), gpa,
                                     [](std::uint64_t g, const Region& x) { return g < x.gpa; }),
                    std::move(r));
    add_latency_.record(elapsed_ns(t0));
}

void RamHotplug::remove(std::uint64_t gpa) {
    const auto t0 = std::chrono::steady_clock::now();
    MemoryTopology::Transaction tx(topology_);
    std::lock_guard lock(mutex_);
    auto it = std::find_if(regions_.begin(), regions_.end(),
                           [&](const Region& r) { return r.gpa == gpa; });
    if (it == regions_.end())
        throw ConfigError(fmt::format("memory-remove: no hot-added RAM starts at {:#x}", gpa));
    if (it->claimed)
        throw ConfigError(fmt::format("memory-remove: the guest has claimed the RAM at {:#x} "
                                      "(hypercall 23) and must release it first",
                                      gpa));
    // Unmap for the guest first, then drop the KVM slot: deleting a slot
    // flushes every vCPU's TLB (and shadow pages), so after this no vCPU
    // can reach the memory, and an access faults in the guest.
    map_hotplug_ram(base_, cr3_, it->gpa, it->size, false);
    topology_.remove_subregion(root_, *it->region);
    tx.commit(); // slot gone, new view published, readers of the old one done
    regions_.erase(it);
    ++generation_;
    remove_latency_.record(elapsed_ns(t0));
}

std::vector<HotplugRam> RamHotplug::list() const {
    return snapshot().regions;
}

RamHotplug::Snapshot RamHotplug::snapshot() const {
    std::lock_guard lock(mutex_);
    Snapshot out{{}, generation_};
    for (const auto& r : regions_)
        out.regions.push_back({r.gpa, r.size, r.claimed});
    return out;
}

std::uint64_t RamHotplug::claim(std::uint64_t gpa, bool claimed) {
    std::lock_guard lock(mutex_);
    for (auto& r : regions_) {
        if (r.gpa != gpa) continue;
        r.claimed = claimed;
        return MVG_MEM_CLAIM_OK;
    }
    return MVG_MEM_CLAIM_NO_REGION;
}

} // namespace minivmm
