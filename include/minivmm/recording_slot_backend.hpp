// A fake KVM slot backend that checks calls the way KVM does and records
// them: for tests, for benchmarks of the slot manager alone, and to have more
// address spaces than this kernel offers (KVM_CAP_MULTI_ADDRESS_SPACE is 1 here).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "minivmm/slot_backend.hpp"

namespace minivmm {

class RecordingSlotBackend final : public SlotBackend {
  public:
    struct Call {
        enum class Op { set, get_dirty, clear_dirty } op;
        unsigned as_id;
        std::uint32_t slot;
        std::uint32_t flags;
        std::uint64_t gpa, size, hva;
    };

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

    // Pretends the guest wrote guest-physical `gpa` of `as_id`: marks it
    // dirty in the slot that maps it (if that slot logs). False if none does.
    bool guest_write(unsigned as_id, std::uint64_t gpa);

    struct Slot {
        std::uint32_t flags;
        std::uint64_t gpa, size, hva;
        std::vector<std::uint64_t> dirty;      // pages dirtied, not yet fetched
        std::vector<std::uint64_t> protected_; // 1 = write-protected (tracked)
    };
    // Copies, for inspection.
    std::vector<Call> calls() const;
    std::map<std::uint32_t, Slot> slots(unsigned as_id) const;
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
