// The slot table of one KVM address space (private to the memory layer; the
// slots benchmark measures its lookups alone through minivmm_slot_internals).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "minivmm/kvm_slots.hpp"

namespace minivmm {

// The slot table of one address space. A value type: the rcu policy copies
/// it. Not synchronized (KvmSlots guards it by its lock policy).
class SlotTable {
  public:
    /// The slot holding `gpa`, or null. O(log n).
    const KvmSlot* find(std::uint64_t gpa) const noexcept;
    /// The slot with id `id`, or null. O(n).
    const KvmSlot* find_id(std::uint32_t id) const noexcept;
    /// Copies of the slots that start in [start, end), in address order.
    std::vector<KvmSlot> starting_in(std::uint64_t start, std::uint64_t end) const;
    /// The guest address of host address `hva`, through the host-interval
    /// index (host ranges may overlap, e.g. two aliases of one block).
    std::optional<std::uint64_t> gpa_of_host(const void* hva) const noexcept;
    /// Every slot, sorted by start_addr.
    const std::vector<KvmSlot>& slots() const noexcept { return by_gpa_; }

    /// Adds `slot` (which must not overlap another).
    void insert(const KvmSlot& slot);
    /// Removes the slot that starts at `start_addr`, if any.
    void erase(std::uint64_t start_addr);
    /// Sets the flags of the slot that starts at `start_addr` (and its old_flags).
    void set_flags(std::uint64_t start_addr, std::uint32_t flags);

  private:
    struct HostRange {
        std::uintptr_t start, end;
        std::uint64_t gpa;
    };
    void rebuild_max_end(std::size_t from);

    std::vector<KvmSlot> by_gpa_;         // sorted by start_addr
    std::vector<std::uint64_t> starts_;   // by_gpa_[i].start_addr, for the search
    std::vector<HostRange> by_host_;      // sorted by host start
    std::vector<std::uintptr_t> max_end_; // prefix maximum of by_host_[i].end
};

} // namespace minivmm
