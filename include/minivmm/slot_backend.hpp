/// \file
/// The narrow interface through which the slot manager talks to KVM's memory
/// slot ioctls: the real VM fd, or a recording fake (tests, benchmarks, and
/// more address spaces than this KVM offers).
#pragma once

#include <cstdint>
#include <span>

#include "minivmm/latency_histogram.hpp"

namespace minivmm {

class KvmVm;

/// KVM's memory slot operations. KvmSlots calls them with the slot table of
/// `as_id` locked (sync and harvest: with every table locked), so calls for
/// one address space never overlap; implementations must allow calls for
/// different address spaces from different threads. Failures are thrown
/// (KvmError).
class SlotBackend {
  public:
    virtual ~SlotBackend() = default;
    /// Slots per address space (KVM_CAP_NR_MEMSLOTS).
    virtual std::uint32_t max_slots() const = 0;
    /// KVM_CAP_MULTI_ADDRESS_SPACE, or 1.
    virtual unsigned address_spaces() const = 0;
    /// KVM_SET_USER_MEMORY_REGION for slot `slot` of `as_id`; size 0 deletes.
    virtual void set_slot(unsigned as_id, std::uint32_t slot, std::uint32_t flags,
                          std::uint64_t gpa, std::uint64_t size, std::uint64_t hva) = 0;
    /// KVM_GET_DIRTY_LOG: one bit per page of the slot into `bitmap`.
    virtual void get_dirty_log(unsigned as_id, std::uint32_t slot,
                               std::span<std::uint64_t> bitmap) = 0;
    /// True when KVM_CLEAR_DIRTY_LOG is in use (manual protect): GET then
    /// does not re-protect pages; clear_dirty_log must.
    virtual bool manual_protect() const = 0;
    /// KVM_CLEAR_DIRTY_LOG; first_page and num_pages multiples of 64 (the
    /// last chunk may end at the slot's end).
    virtual void clear_dirty_log(unsigned as_id, std::uint32_t slot, std::uint64_t first_page,
                                 std::uint32_t num_pages,
                                 std::span<const std::uint64_t> bitmap) = 0;
    /// KVM_RESET_DIRTY_RINGS after harvesting (ring mode); returns entries re-armed.
    virtual std::uint64_t reset_dirty_rings() { return 0; }
};

/// The real thing: the ioctls on a VM fd (which it refers to; the KvmVm
/// must outlive it). Enables KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 when KVM
/// offers it. Every failing ioctl throws KvmError.
class KvmSlotBackend final : public SlotBackend {
  public:
    /// Reads the slot and address-space limits of `vm`.
    explicit KvmSlotBackend(const KvmVm& vm);
    std::uint32_t max_slots() const override { return max_slots_; }
    unsigned address_spaces() const override { return address_spaces_; }
    void set_slot(unsigned as_id, std::uint32_t slot, std::uint32_t flags, std::uint64_t gpa,
                  std::uint64_t size, std::uint64_t hva) override;
    void get_dirty_log(unsigned as_id, std::uint32_t slot,
                       std::span<std::uint64_t> bitmap) override;
    bool manual_protect() const override { return manual_protect_; }
    void clear_dirty_log(unsigned as_id, std::uint32_t slot, std::uint64_t first_page,
                         std::uint32_t num_pages, std::span<const std::uint64_t> bitmap) override;
    std::uint64_t reset_dirty_rings() override;
    /// Every set_slot call (KVM_SET_USER_MEMORY_REGION) and its duration.
    LatencySnapshot set_slot_latency() const noexcept { return set_slot_latency_.snapshot(); }

  private:
    LatencyHistogram set_slot_latency_;
    const KvmVm& vm_;
    std::uint32_t max_slots_;
    unsigned address_spaces_;
    bool manual_protect_ = false;
};

} // namespace minivmm
