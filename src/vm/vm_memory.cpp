#include "vm/vm_memory.hpp"

#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "minivmm/error.hpp"

namespace minivmm {

VmMemory::VmMemory(const KvmVm& vm, const VmConfig& config)
    : ring_entries_(config.dirty_ring_entries), ram_options_(config.ram),
      boot_ram_((BootPlan::validate(config.mem_size, config.vcpus),
                 std::make_shared<RamBlock>("ram", config.mem_size, config.ram))),
      slot_backend_(vm), slots_(slot_backend_, {config.lock_policy, 0, 4096}) {
    if (ring_entries_ != 0) enable_dirty_ring(vm);
    // Guest RAM is a region of the system address space; the KVM listener
    // turns its sections into memory slots (api.rst 4.35).
    root_ = MemoryRegion::container("system", 1ull << 52);
    address_space_ = &topology_.add_address_space("memory", root_);
    ram_ = MemoryRegion::ram("ram", boot_ram_.block(), 0, boot_ram_.size());
    topology_.add_subregion(*root_, 0, ram_);
    topology_.add_listener(*address_space_, slots_.listener(0));
    boot_ram_.track_visibility(*address_space_, *ram_);
}

void VmMemory::enable_dirty_ring(const KvmVm& vm) {
    // api.rst 7.26: enabled on the VM, in bytes, before any vCPU exists.
    // Prefer the variant with acquire/release ordering where KVM has it.
    const auto entries = ring_entries_;
    if ((entries & (entries - 1)) != 0)
        throw ConfigError(fmt::format("dirty ring size {} is not a power of two", entries));
    std::uint32_t cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
    int max_bytes = vm.check_extension(cap);
    if (max_bytes <= 0) {
        cap = KVM_CAP_DIRTY_LOG_RING;
        max_bytes = vm.check_extension(cap);
    }
    if (max_bytes <= 0) throw ConfigError("this KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING)");
    std::uint64_t bytes = std::uint64_t{entries} * sizeof(kvm_dirty_gfn);
    if (bytes < 4096 || bytes > static_cast<std::uint64_t>(max_bytes))
        throw ConfigError(
            fmt::format("dirty ring of {} entries is outside what KVM takes: {} to "
                        "{} entries",
                        entries, 4096 / sizeof(kvm_dirty_gfn),
                        static_cast<std::uint64_t>(max_bytes) / sizeof(kvm_dirty_gfn)));
    vm.enable_cap(cap, bytes);
}

void VmMemory::attach_dirty_rings(const std::vector<const KvmVcpu*>& vcpus) {
    if (ring_entries_ == 0) return;
    std::vector<DirtyRing*> ptrs;
    rings_.reserve(vcpus.size());
    for (const auto* v : vcpus)
        ptrs.push_back(&rings_.emplace_back(*v, ring_entries_));
    slots_.use_dirty_rings(std::move(ptrs));
}

void VmMemory::enable_hotplug(std::uint64_t cr3) {
    hotplug_ = std::make_unique<RamHotplug>(boot_ram_, cr3, topology_, *root_, *address_space_,
                                            ram_options_, dirty_logging_);
}

void VmMemory::harvest_dirty_rings() {
    slots_.harvest_dirty_rings();
}

void VmMemory::dirty_log_start() {
    MemoryTopology::Transaction tx(topology_);
    dirty_logging_.store(true);
    auto view = address_space_->view();
    for (const auto& sec : view->sections())
        if (sec.block != nullptr) sec.block->dirty().take(); // start from a clean slate
    topology_.set_dirty_logging(*address_space_, true);
    tx.commit();
}

std::vector<std::uint64_t> VmMemory::dirty_log_sync() {
    // Pull KVM's log into the blocks' bitmaps, then map dirty block pages
    // back to guest addresses through the flat view (a page shown twice
    // through aliases is reported at both addresses). Under the topology
    // lock: the view's sections point at RAM blocks that a concurrent
    // remove_ram would free.
    MemoryTopology::Transaction tx(topology_);
    if (ring_entries_ != 0)
        slots_.harvest_dirty_rings();
    else
        topology_.log_sync();
    auto view = address_space_->view();
    std::map<RamBlock*, std::vector<std::uint64_t>> taken;
    std::vector<std::uint64_t> gpas;
    for (const auto& sec : view->sections()) {
        if (!sec.log_dirty || sec.block == nullptr) continue;
        auto [it, fresh] = taken.try_emplace(sec.block);
        if (fresh) it->second = sec.block->dirty().take();
        std::uint64_t first = sec.block_offset / 4096, last = (sec.block_offset + sec.size) / 4096;
        for (std::uint64_t page : it->second)
            if (page >= first && page < last) gpas.push_back(sec.gpa + (page - first) * 4096);
    }
    std::sort(gpas.begin(), gpas.end());
    // Re-arm tracking of exactly what we just reported (manual protect), one
    // clear per run of contiguous pages: a clear drops the dirty bit of every
    // page it names, so it must name no page that was not reported.
    if (ring_entries_ == 0)
        for (std::size_t i = 0; i < gpas.size();) {
            std::size_t j = i + 1;
            while (j < gpas.size() && gpas[j] == gpas[j - 1] + 4096)
                ++j;
            topology_.log_clear(*address_space_, gpas[i], (j - i) * 4096);
            i = j;
        }
    return gpas;
}

void VmMemory::dirty_log_stop() {
    MemoryTopology::Transaction tx(topology_);
    dirty_logging_.store(false);
    topology_.set_dirty_logging(*address_space_, false);
    tx.commit();
}

} // namespace minivmm
