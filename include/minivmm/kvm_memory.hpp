// The KVM side of guest memory: KVM memory slots kept in one table per KVM
// address space (QEMU's KVMSlot / KVMMemoryListener, accel/kvm/kvm-all.c),
// fed by a MemoryListener per address space, and guarded by a lock policy
// chosen at run time:
//   per-listener  one mutex per listener (QEMU 4.1 to 6.0, kvm_slots_lock(kml))
//   global        one mutex for every listener (QEMU 6.1+, kml_slots_lock)
//   rcu           readers never lock: they read an immutable published table;
//                 writers serialize on one mutex, publish a new table, wait
//                 for readers of the old one, then free it.
// Every operation has the same meaning under every policy.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "minivmm/latency_histogram.hpp"
#include "minivmm/memory_listener.hpp"
#include "minivmm/slot_backend.hpp"

namespace minivmm {

enum class LockPolicy { per_listener, global, rcu };
const char* to_string(LockPolicy policy) noexcept;
// "per-listener", "global", "rcu".
std::optional<LockPolicy> parse_lock_policy(std::string_view text) noexcept;

// KVM_MEM_* flags of a slot.
inline constexpr std::uint32_t kSlotLogDirty = 1u << 0; // KVM_MEM_LOG_DIRTY_PAGES
inline constexpr std::uint32_t kSlotReadonly = 1u << 1; // KVM_MEM_READONLY

struct KvmSlot {
    std::uint64_t start_addr = 0; // guest-physical
    std::uint64_t memory_size = 0;
    std::byte* ram = nullptr; // host address of start_addr
    std::uint32_t slot = 0;   // id within its address space
    std::uint32_t flags = 0;
    std::uint32_t old_flags = 0; // flags before the last change
    RamBlock* block = nullptr;
    std::uint64_t block_offset = 0; // of start_addr within block
};

// The slot table of one address space. A value type: the rcu policy copies it.
class SlotTable {
  public:
    const KvmSlot* find(std::uint64_t gpa) const noexcept; // O(log n)
    const KvmSlot* find_id(std::uint32_t id) const noexcept;
    // Copies of the slots that start in [start, end), in address order.
    std::vector<KvmSlot> starting_in(std::uint64_t start, std::uint64_t end) const;
    // The guest address of host address `hva`, through the host-interval
    // index (host ranges may overlap, e.g. two aliases of one block).
    std::optional<std::uint64_t> gpa_of_host(const void* hva) const noexcept;
    const std::vector<KvmSlot>& slots() const noexcept { return by_gpa_; }

    void insert(const KvmSlot& slot);
    void erase(std::uint64_t start_addr);
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

struct SlotLockStats {
    std::uint64_t contended = 0; // lock acquisitions that had to wait
    std::uint64_t wait_ns = 0;   // time spent waiting for them
};

class KvmMemoryListener;
class DirtyRing;

class KvmMemory {
  public:
    struct Options {
        LockPolicy policy = LockPolicy::global;
        // Split sections into slots of at most this size (0: no limit), as
        // kvm_max_slot_size does.
        std::uint64_t max_slot_size = 0;
        // Slots cover whole host pages (kvm_align_section).
        std::uint64_t page_size = 4096;
    };

    KvmMemory(SlotBackend& backend, Options options);
    ~KvmMemory();
    KvmMemory(const KvmMemory&) = delete;
    KvmMemory& operator=(const KvmMemory&) = delete;

    // The listener for KVM address space `as_id` (created on first use);
    // register it with MemoryTopology::add_listener. Throws ConfigError for
    // an address space KVM does not have.
    KvmMemoryListener& listener(unsigned as_id);
    LockPolicy policy() const noexcept;
    unsigned address_spaces() const noexcept;

    // Readers, from any thread.
    std::optional<KvmSlot> find_slot(unsigned as_id, std::uint64_t gpa) const;
    std::optional<std::uint64_t> gpa_of_host(unsigned as_id, const void* hva) const;
    // Is `hva` guest RAM in any address space? (Takes every table at once.)
    bool is_guest_ram(const void* hva) const;
    std::uint32_t free_slots(unsigned as_id) const;
    std::vector<KvmSlot> slots(unsigned as_id) const;

    // Pulls the dirty log of every logging slot of every address space into
    // the RAM blocks' bitmaps, with every table held at once (per-listener:
    // every listener's lock, in address-space order).
    void sync_dirty_all();
    // Ring mode: harvests every vCPU's dirty ring into the RAM blocks'
    // bitmaps with every table held at once (as kvm_dirty_ring_reap_locked),
    // then re-arms the collected pages. Returns the entries harvested.
    std::uint64_t harvest_dirty_rings();
    // Switches to ring mode: dirty pages come from these rings (one per
    // vCPU, owned by the caller, outliving this object), never from
    // KVM_GET_DIRTY_LOG, which KVM refuses once rings are on.
    void use_dirty_rings(std::vector<DirtyRing*> rings);
    SlotLockStats lock_stats() const noexcept;
    // The waits of the contended acquisitions counted in lock_stats.
    LatencySnapshot lock_waits() const noexcept;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

// One per KVM address space; as_id is encoded in the slot id KVM sees.
class KvmMemoryListener final : public MemoryListener {
  public:
    KvmMemoryListener(KvmMemory::Impl& memory, unsigned as_id) : memory_(memory), as_id_(as_id) {}
    unsigned as_id() const noexcept { return as_id_; }

    void begin() override;
    void region_add(const MemorySection& section) override;
    void region_del(const MemorySection& section) override;
    void log_start(const MemorySection& section) override;
    void log_stop(const MemorySection& section) override;
    void log_sync(const MemorySection& section) override;
    void log_clear(const MemorySection& section, std::uint64_t gpa, std::uint64_t size) override;
    void commit() override;

  private:
    KvmMemory::Impl& memory_;
    unsigned as_id_;
};

} // namespace minivmm
