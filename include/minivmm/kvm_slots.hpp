/// \file
/// The KVM side of guest memory: KVM memory slots kept in one table per KVM
/// address space (QEMU's KVMSlot / KVMMemoryListener, accel/kvm/kvm-all.c),
/// fed by a MemoryListener per address space, and guarded by a lock policy
/// chosen at run time:
/// - per-listener: one mutex per listener (QEMU 4.1 to 6.0, kvm_slots_lock(kml))
/// - global: one mutex for every listener (QEMU 6.1+, kml_slots_lock)
/// - rcu: readers never lock: they read an immutable published table;
///   writers serialize on one mutex, publish a new table, wait
///   for readers of the old one, then free it.
///
/// Every operation has the same meaning under every policy.
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

/// How the KVM slot tables are guarded.
enum class LockPolicy {
    per_listener, ///< one mutex per address space's table
    global,       ///< one mutex for all tables
    rcu           ///< lock-free readers; writers publish copies
};
/// "per-listener", "global", "rcu".
const char* to_string(LockPolicy policy) noexcept;
/// "per-listener", "global", "rcu"; nullopt for anything else.
std::optional<LockPolicy> parse_lock_policy(std::string_view text) noexcept;

// KVM_MEM_* flags of a slot.
inline constexpr std::uint32_t kSlotLogDirty = 1u << 0; ///< KVM_MEM_LOG_DIRTY_PAGES
inline constexpr std::uint32_t kSlotReadonly = 1u << 1; ///< KVM_MEM_READONLY

/// One KVM memory slot (a value type; `ram` and `block` point into the
/// RamBlock the slot maps).
struct KvmSlot {
    std::uint64_t start_addr = 0;   ///< guest-physical
    std::uint64_t memory_size = 0;  ///< bytes
    std::byte* ram = nullptr;       ///< host address of start_addr
    std::uint32_t slot = 0;         ///< id within its address space
    std::uint32_t flags = 0;        ///< kSlotLogDirty, kSlotReadonly
    std::uint32_t old_flags = 0;    ///< flags before the last change
    RamBlock* block = nullptr;      ///< the backing block
    std::uint64_t block_offset = 0; ///< of start_addr within block
};

/// Contention on the slot-table locks, since the KvmSlots was created.
struct SlotLockStats {
    std::uint64_t contended = 0; ///< lock acquisitions that had to wait
    std::uint64_t wait_ns = 0;   ///< time spent waiting for them
};

class KvmMemoryListener;
class DirtyRing;

/// A VM's KVM memory slots (QEMU's KVMSlot tables): owns one slot table and one KvmMemoryListener
/// per KVM address space, and talks to KVM through `backend` (which must outlive it). Thread-safe
/// under every policy: the readers may be called from any thread while the listeners change the
/// tables; listener() must be called before other threads use the object. Backend failures are
/// thrown (KvmError); a section that needs a slot when every slot is in use throws ConfigError.
class KvmSlots {
  public:
    /// Construction options (a value type).
    struct Options {
        LockPolicy policy = LockPolicy::global; ///< how the tables are guarded
        /// Split sections into slots of at most this size (0: no limit), as
        /// kvm_max_slot_size does.
        std::uint64_t max_slot_size = 0;
        /// Slots cover whole host pages (kvm_align_section).
        std::uint64_t page_size = 4096;
    };

    /// A manager with no slots yet.
    /// \throws ConfigError if page_size is not a power of two or
    /// max_slot_size not a multiple of it.
    KvmSlots(SlotBackend& backend, Options options);
    /// Frees the tables (the KVM slots themselves stay until the VM goes).
    ~KvmSlots();
    KvmSlots(const KvmSlots&) = delete;
    KvmSlots& operator=(const KvmSlots&) = delete;

    /// The listener for KVM address space `as_id` (created on first use,
    /// owned by this object); register it with MemoryTopology::add_listener.
    /// \throws ConfigError for an address space KVM does not have.
    KvmMemoryListener& listener(unsigned as_id);
    /// The policy chosen at construction.
    LockPolicy policy() const noexcept;
    /// Number of KVM address spaces (the backend's): 2 on x86 hosts with
    /// SMM (KVM_CAP_MULTI_ADDRESS_SPACE), whether or not the VM uses both.
    unsigned address_spaces() const noexcept;
    /// The address spaces that have a listener, in order: the ones whose
    /// tables the readers below accept. Walk these, not 0..address_spaces(),
    /// to visit every table (a VM without SMM never listens to space 1).
    /// Call it once the listeners are made (they are not made concurrently).
    std::vector<unsigned> listened_address_spaces() const;

    /// The slot holding `gpa` in `as_id`, or nullopt. Readers like this one
    /// may be called from any thread. \throws ConfigError for an address
    /// space without a listener.
    std::optional<KvmSlot> find_slot(unsigned as_id, std::uint64_t gpa) const;
    /// The guest address of host address `hva` in `as_id`, or nullopt.
    /// \throws ConfigError as find_slot().
    std::optional<std::uint64_t> gpa_of_host(unsigned as_id, const void* hva) const;
    /// Is `hva` guest RAM in any address space? (Takes every table at once.)
    bool is_guest_ram(const void* hva) const;
    /// Slot ids still free in `as_id`. \throws ConfigError as find_slot().
    std::uint32_t free_slots(unsigned as_id) const;
    /// A copy of the slots of `as_id`, by address. \throws ConfigError as find_slot().
    std::vector<KvmSlot> slots(unsigned as_id) const;

    /// Pulls the dirty log of every logging slot of every address space into
    /// the RAM blocks' bitmaps, with every table held at once (per-listener:
    /// every listener's lock, in address-space order).
    void sync_dirty_all();
    /// Ring mode: harvests every vCPU's dirty ring into the RAM blocks'
    /// bitmaps with every table held at once (as kvm_dirty_ring_reap_locked),
    /// then re-arms the collected pages. Returns the entries harvested.
    std::uint64_t harvest_dirty_rings();
    /// Switches to ring mode: dirty pages come from these rings (one per
    /// vCPU, owned by the caller, outliving this object), never from
    /// KVM_GET_DIRTY_LOG, which KVM refuses once rings are on.
    void use_dirty_rings(std::vector<DirtyRing*> rings);
    /// Lock contention so far (under rcu, readers never wait: only writers count).
    SlotLockStats lock_stats() const noexcept;
    /// The waits of the contended acquisitions counted in lock_stats.
    LatencySnapshot lock_waits() const noexcept;

  private:
    friend class KvmMemoryListener;
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// One per KVM address space, created and owned by KvmSlots; as_id is
/// encoded in the slot id KVM sees. Its callbacks (see MemoryListener) turn
/// sections into KVM slots under the table's lock.
class KvmMemoryListener final : public MemoryListener {
  public:
    /// Only KvmSlots::listener() makes one: only KvmSlots can make a Key.
    class Key {
        friend class KvmSlots;
        Key() = default;
    };
    /// Made by KvmSlots::listener().
    KvmMemoryListener(Key, KvmSlots& memory, unsigned as_id);
    /// The KVM address space it feeds.
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
    void change_log_flag(const MemorySection& section, bool on); // log_start/log_stop

    KvmSlots::Impl& memory_;
    unsigned as_id_;
};

} // namespace minivmm
