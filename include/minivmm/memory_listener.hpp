// What an address space tells its listeners when its flat view changes, in
// the shape of QEMU's MemoryListener: a section is one contiguous piece of
// guest-physical space backed by one leaf region.
#pragma once

#include <cstddef>
#include <cstdint>

#include "minivmm/memory_region.hpp"

namespace minivmm {

struct MemorySection {
    std::uint64_t gpa = 0;
    std::uint64_t size = 0;
    const MemoryRegion* region = nullptr; // the leaf (aliases resolved)
    std::uint64_t offset_in_region = 0;
    MemoryRegion::Kind kind = MemoryRegion::Kind::ram; // ram, rom or mmio
    RamBlock* block = nullptr;                         // ram, rom
    std::uint64_t block_offset = 0;                    // of gpa within block
    std::byte* host = nullptr;                         // host address of gpa (ram, rom)
    bool readonly = false;
    bool log_dirty = false;

    std::uint64_t end() const noexcept { return gpa + size; }
    bool is_ram() const noexcept { return kind != MemoryRegion::Kind::mmio; }
    // Same mapping (dirty logging aside): what "unchanged" means to a diff.
    bool same_mapping(const MemorySection& o) const noexcept {
        return gpa == o.gpa && size == o.size && region == o.region &&
               offset_in_region == o.offset_in_region && readonly == o.readonly;
    }
};

// Callbacks run on the thread that changed the topology, with the topology
// lock held: begin, then every region_del, then every region_add /
// log_start / log_stop, then commit (QEMU's address_space_update_topology_pass
// order: deletions first).
class MemoryListener {
  public:
    virtual ~MemoryListener() = default;
    virtual void begin() {}
    virtual void region_add(const MemorySection&) {}
    virtual void region_del(const MemorySection&) {}
    virtual void log_start(const MemorySection&) {}
    virtual void log_stop(const MemorySection&) {}
    // Pull the dirty log for this section into its RAM block's bitmap.
    virtual void log_sync(const MemorySection&) {}
    // Re-arm dirty tracking for [gpa, gpa + size) inside this section.
    virtual void log_clear(const MemorySection&, std::uint64_t /*gpa*/, std::uint64_t /*size*/) {}
    virtual void commit() {}
};

} // namespace minivmm
