/// \file
/// What an address space tells its listeners when its flat view changes, in
/// the shape of QEMU's MemoryListener: a section is one contiguous piece of
/// guest-physical space backed by one leaf region.
#pragma once

#include <cstddef>
#include <cstdint>

#include "minivmm/memory_region.hpp"

namespace minivmm {

/// One piece of a flat view (a value type; its pointers are valid while
/// the view that holds it is).
struct MemorySection {
    std::uint64_t gpa = 0;                             ///< guest-physical start
    std::uint64_t size = 0;                            ///< bytes
    const MemoryRegion* region = nullptr;              ///< the leaf (aliases resolved)
    std::uint64_t offset_in_region = 0;                ///< of gpa within region
    MemoryRegion::Kind kind = MemoryRegion::Kind::ram; ///< ram, rom or mmio
    RamBlock* block = nullptr;                         ///< ram, rom
    std::uint64_t block_offset = 0;                    ///< of gpa within block
    std::byte* host = nullptr;                         ///< host address of gpa (ram, rom)
    bool readonly = false;                             ///< rom
    bool log_dirty = false;                            ///< dirty logging on

    /// First byte past the section.
    std::uint64_t end() const noexcept { return gpa + size; }
    /// RAM or ROM (not MMIO).
    bool is_ram() const noexcept { return kind != MemoryRegion::Kind::mmio; }
    /// Same mapping (dirty logging aside): what "unchanged" means to a diff.
    bool same_mapping(const MemorySection& o) const noexcept {
        return gpa == o.gpa && size == o.size && region == o.region &&
               offset_in_region == o.offset_in_region && readonly == o.readonly;
    }
};

/// Callbacks run on the thread that changed the topology, with the topology
/// lock held: begin, then every region_del, then every region_add /
/// log_start / log_stop, then commit (QEMU's address_space_update_topology_pass
/// order: deletions first). A callback that throws makes the topology change
/// fail (MemoryTopology undoes it where it can). Every default does nothing.
class MemoryListener {
  public:
    virtual ~MemoryListener() = default;
    /// A batch of changes starts.
    virtual void begin() {}
    /// A section appeared.
    virtual void region_add(const MemorySection&) {}
    /// A section went away.
    virtual void region_del(const MemorySection&) {}
    /// Dirty logging was turned on for a section.
    virtual void log_start(const MemorySection&) {}
    /// Dirty logging was turned off for a section.
    virtual void log_stop(const MemorySection&) {}
    /// Pull the dirty log for this section into its RAM block's bitmap.
    virtual void log_sync(const MemorySection&) {}
    /// Re-arm dirty tracking for [gpa, gpa + size) inside this section.
    virtual void log_clear(const MemorySection&, std::uint64_t /*gpa*/, std::uint64_t /*size*/) {}
    /// The batch is complete.
    virtual void commit() {}
};

} // namespace minivmm
