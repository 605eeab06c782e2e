/// \file
/// A fake KVM slot backend that checks calls the way KVM does and records
/// them: for tests, for benchmarks of the slot manager alone, and to have more
/// address spaces than this kernel offers (KVM_CAP_MULTI_ADDRESS_SPACE is 1 here).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "minivmm/slot_backend.hpp"

namespace minivmm {

/// The fake. Thread-safe (one internal mutex). Calls KVM would refuse
/// (overlapping or reshaped slots, unknown flags, slots that do not log, ...)
/// throw KvmError with the errno KVM would give.
class RecordingSlotBackend final : public SlotBackend {
  public:
    /// One recorded call.
    struct Call {
        /// Which operation.
        enum class Op {
            set,             ///< set_slot
            get_dirty,       ///< get_dirty_log
            clear_dirty      ///< clear_dirty_log
        } op;                ///< which operation
        unsigned as_id;      ///< address space
        std::uint32_t slot;  ///< slot id
        std::uint32_t flags; ///< set: KVM_MEM_* flags
        /// set: the mapping.
        ///@{
        std::uint64_t gpa, size, hva;
        ///@}
    };

    /// A fake KVM with `address_spaces` address spaces of `max_slots` slots
    /// each, with or without manual dirty-log protection; `record` = false
    /// keeps no Call list (for benchmarks).
    RecordingSlotBackend(unsigned address_spaces = 2, std::uint32_t max_slots = 32764,
                         bool manual_protect = true, bool record = true);

    std::uint32_t max_slots() const override { return max_slots_; }
    unsigned address_spaces() const override { return address_spaces_; }
    void set_slot(unsigned as_id, std::uint32_t slot, std::uint32_t flags, std::uint64_t gpa,
                  std::uint64_t size, std::uint64_t hva) override;
    void get_dirty_log(unsigned as_id, std::uint32_t slot,
                       std::span<std::uint64_t> bitmap) override;
    bool manual_protect() const override { return manual_protect_; }
    void clear_dirty_log(unsigned as_id, std::uint32_t slot, std::uint64_t first_page,
                         std::uint32_t num_pages, std::span<const std::uint64_t> bitmap) override;

    /// Pretends the guest wrote guest-physical `gpa` of `as_id`: marks it
    /// dirty in the slot that maps it (if that slot logs). False if none does.
    bool guest_write(unsigned as_id, std::uint64_t gpa);

    /// One slot as the fake KVM holds it.
    struct Slot {
        std::uint32_t flags; ///< KVM_MEM_* flags
        /// The mapping.
        ///@{
        std::uint64_t gpa, size, hva;
        ///@}
        std::vector<std::uint64_t> dirty;      ///< pages dirtied, not yet fetched
        std::vector<std::uint64_t> protected_; ///< 1 = write-protected (tracked)
    };
    /// A copy of the recorded calls, in order.
    std::vector<Call> calls() const;
    /// A copy of the slots of `as_id`, by id (std::out_of_range for an unknown as_id).
    std::map<std::uint32_t, Slot> slots(unsigned as_id) const;
    /// Number of set_slot calls (counted even without recording).
    std::uint64_t set_calls() const;

  private:
    unsigned address_spaces_;
    std::uint32_t max_slots_;
    bool manual_protect_;
    bool record_;
    mutable std::mutex mutex_;
    std::vector<Call> calls_;
    std::uint64_t set_calls_ = 0;
    std::vector<std::map<std::uint32_t, Slot>> slots_; // per address space, by id
};

} // namespace minivmm
