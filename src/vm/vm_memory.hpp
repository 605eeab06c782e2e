// The memory part of a VM (Cloud Hypervisor's memory manager, in our
// terms): boot RAM, the guest-physical topology that maps it, the KVM slots
// that follow the topology, dirty logging (bitmap or per-vCPU rings) and
// RAM hotplug. Knows nothing of threads or devices.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "minivmm/address_space.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/dirty_ring.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/kvm_slots.hpp"
#include "minivmm/memory_region.hpp"
#include "minivmm/vm.hpp"
#include "vm/ram_hotplug.hpp"

namespace minivmm {

class VmMemory {
  public:
    // Boot RAM of config.mem_size at guest-physical 0, shown to KVM through
    // the slots; enables the dirty ring on `vm` when the config asks for one
    // (api.rst 7.26: before any vCPU exists). \throws ConfigError for an
    // impossible size, vCPU count or ring size.
    VmMemory(const KvmVm& vm, const VmConfig& config);
    VmMemory(const VmMemory&) = delete;
    VmMemory& operator=(const VmMemory&) = delete;

    // Maps each vCPU's dirty ring (with a ring configured); the vCPUs must
    // outlive this object's use of the rings.
    void attach_dirty_rings(const std::vector<const KvmVcpu*>& vcpus);
    // RAM hotplug, once the boot page tables (at `cr3`) exist.
    void enable_hotplug(std::uint64_t cr3);

    BootRam& boot_ram() noexcept { return boot_ram_; }
    MemoryTopology& topology() noexcept { return topology_; }
    AddressSpace& address_space() noexcept { return *address_space_; }
    MemoryRegion& root() noexcept { return *root_; }
    MemoryRegion& ram() noexcept { return *ram_; }
    KvmSlots& slots() noexcept { return slots_; }
    const KvmSlots& slots() const noexcept { return slots_; }
    const KvmSlotBackend& slot_backend() const noexcept { return slot_backend_; }
    RamHotplug& hotplug() noexcept { return *hotplug_; }
    const RamHotplug& hotplug() const noexcept { return *hotplug_; }

    // KVM_EXIT_DIRTY_RING_FULL and syncs: collect every ring.
    void harvest_dirty_rings();
    void dirty_log_start();
    std::vector<std::uint64_t> dirty_log_sync();
    void dirty_log_stop();
    bool dirty_logging() const noexcept { return dirty_logging_.load(); }
    std::uint32_t dirty_ring_entries() const noexcept { return ring_entries_; }

  private:
    void enable_dirty_ring(const KvmVm& vm);

    std::uint32_t ring_entries_;
    RamBlockOptions ram_options_;
    BootRam boot_ram_;
    // Guest-physical space: root container with the RAM region at 0; KVM
    // slots follow it through the KVM listener.
    MemoryTopology topology_;
    std::shared_ptr<MemoryRegion> root_;
    std::shared_ptr<MemoryRegion> ram_;
    AddressSpace* address_space_ = nullptr;
    KvmSlotBackend slot_backend_;
    KvmSlots slots_;
    std::vector<DirtyRing> rings_;
    std::atomic<bool> dirty_logging_{false};
    std::unique_ptr<RamHotplug> hotplug_;
};

} // namespace minivmm
