#include "minivmm/kvm_slots.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "memory/slot_table.hpp"
#include "minivmm/dirty_ring.hpp"
#include "minivmm/error.hpp"
#include "minivmm/ram_block.hpp"
#include "minivmm/rcu.hpp"

namespace minivmm {

const char* to_string(LockPolicy policy) noexcept {
    switch (policy) {
    case LockPolicy::per_listener:
        return "per-listener";
    case LockPolicy::global:
        return "global";
    case LockPolicy::rcu:
        return "rcu";
    }
    return "?";
}

std::optional<LockPolicy> parse_lock_policy(std::string_view text) noexcept {
    if (text == "per-listener") return LockPolicy::per_listener;
    if (text == "global") return LockPolicy::global;
    if (text == "rcu") return LockPolicy::rcu;
    return std::nullopt;
}

// ---- SlotTable -------------------------------------------------------------

const KvmSlot* SlotTable::find(std::uint64_t gpa) const noexcept {
    // Branchless binary search over the start addresses alone (8 bytes a
    // slot, not 56): random lookups mispredict the branches of
    // std::upper_bound, which cost ~100 ns at 32,764 slots.
    const std::uint64_t* base = starts_.data();
    std::size_t n = starts_.size();
    if (n == 0 || gpa < base[0]) return nullptr;
    while (n > 1) {
        std::size_t half = n / 2;
        base = base[half] <= gpa ? base + half : base; // a cmov, not a branch
        n -= half;
    }
    const KvmSlot& s = by_gpa_[static_cast<std::size_t>(base - starts_.data())];
    return gpa - s.start_addr < s.memory_size ? &s : nullptr;
}

std::vector<KvmSlot> SlotTable::starting_in(std::uint64_t start, std::uint64_t end) const {
    auto lo = std::lower_bound(starts_.begin(), starts_.end(), start);
    auto hi = std::lower_bound(lo, starts_.end(), end);
    return {by_gpa_.begin() + (lo - starts_.begin()), by_gpa_.begin() + (hi - starts_.begin())};
}

const KvmSlot* SlotTable::find_id(std::uint32_t id) const noexcept {
    for (const auto& s : by_gpa_)
        if (s.slot == id) return &s;
    return nullptr;
}

std::optional<std::uint64_t> SlotTable::gpa_of_host(const void* hva) const noexcept {
    auto h = reinterpret_cast<std::uintptr_t>(hva);
    auto it = std::upper_bound(by_host_.begin(), by_host_.end(), h,
                               [](std::uintptr_t a, const HostRange& r) { return a < r.start; });
    // Every range before `it` starts at or below h; walk back while some of
    // them may still reach past h (the prefix maximum says so).
    for (auto i = it - by_host_.begin(); i-- > 0;) {
        if (max_end_[static_cast<std::size_t>(i)] <= h) break;
        const auto& r = by_host_[static_cast<std::size_t>(i)];
        if (h < r.end) return r.gpa + (h - r.start);
    }
    return std::nullopt;
}

void SlotTable::rebuild_max_end(std::size_t from) {
    max_end_.resize(by_host_.size());
    for (std::size_t i = from; i < by_host_.size(); ++i)
        max_end_[i] = std::max(i ? max_end_[i - 1] : 0, by_host_[i].end);
}

void SlotTable::insert(const KvmSlot& slot) {
    auto at = std::lower_bound(by_gpa_.begin(), by_gpa_.end(), slot.start_addr,
                               [](const KvmSlot& s, std::uint64_t a) { return s.start_addr < a; });
    starts_.insert(starts_.begin() + (at - by_gpa_.begin()), slot.start_addr);
    by_gpa_.insert(at, slot);
    auto start = reinterpret_cast<std::uintptr_t>(slot.ram);
    HostRange r{start, start + slot.memory_size, slot.start_addr};
    auto hat = std::upper_bound(by_host_.begin(), by_host_.end(), start,
                                [](std::uintptr_t a, const HostRange& x) { return a < x.start; });
    auto index = static_cast<std::size_t>(hat - by_host_.begin());
    by_host_.insert(hat, r);
    rebuild_max_end(index);
}

void SlotTable::erase(std::uint64_t start_addr) {
    auto it = std::lower_bound(by_gpa_.begin(), by_gpa_.end(), start_addr,
                               [](const KvmSlot& s, std::uint64_t a) { return s.start_addr < a; });
    if (it == by_gpa_.end() || it->start_addr != start_addr) return;
    auto h = std::find_if(by_host_.begin(), by_host_.end(),
                          [&](const HostRange& r) { return r.gpa == start_addr; });
    auto index = static_cast<std::size_t>(h - by_host_.begin());
    by_host_.erase(h);
    starts_.erase(starts_.begin() + (it - by_gpa_.begin()));
    by_gpa_.erase(it);
    rebuild_max_end(index);
}

void SlotTable::set_flags(std::uint64_t start_addr, std::uint32_t flags) {
    for (auto& s : by_gpa_)
        if (s.start_addr == start_addr) {
            s.old_flags = s.flags;
            s.flags = flags;
        }
}

// ---- KvmSlots::Impl ---------------------------------------------------------

namespace {

// Lowest free id first, as kvm_get_free_slot; ids are reused after deletion.
class SlotIds {
  public:
    explicit SlotIds(std::uint32_t max) : max_(max) {}
    std::uint32_t alloc(unsigned as_id) {
        if (!freed_.empty()) {
            auto id = *freed_.begin();
            freed_.erase(freed_.begin());
            return id;
        }
        if (next_ >= max_)
            throw ConfigError(
                fmt::format("address space {}: all {} KVM memory slots are in use", as_id, max_));
        return next_++;
    }
    void release(std::uint32_t id) { freed_.insert(id); }
    std::uint32_t free_count() const {
        return max_ - next_ + static_cast<std::uint32_t>(freed_.size());
    }

  private:
    std::uint32_t max_;
    std::uint32_t next_ = 0;
    std::set<std::uint32_t> freed_;
};

constexpr std::uint64_t kPage = 4096;

} // namespace

struct KvmSlots::Impl {
    struct State {
        explicit State(unsigned as, std::uint32_t max_slots) : as_id(as), ids(max_slots) {}
        unsigned as_id;
        mutable std::mutex own_mutex;                     // per-listener policy
        SlotTable table;                                  // mutex policies: the live table
        std::atomic<const SlotTable*> published{nullptr}; // rcu policy
        std::unique_ptr<SlotTable> draft;                 // rcu: the table being edited
        std::unique_lock<std::mutex> session;             // held from begin() to commit()
        SlotIds ids;                                      // guarded by the write lock
        std::unique_ptr<KvmMemoryListener> listener;
    };

    Impl(SlotBackend& b, Options o) : backend(b), options(o) {
        if (options.page_size == 0 || (options.page_size & (options.page_size - 1)) != 0)
            throw ConfigError("slot page size must be a power of two");
        if (options.max_slot_size % options.page_size != 0)
            throw ConfigError("max slot size must be a multiple of the page size");
        states.resize(backend.address_spaces());
    }
    ~Impl() {
        for (auto& s : states)
            if (s) std::unique_ptr<const SlotTable>(s->published.load()); // frees it
    }

    // The mutex guarding writers of `s` (and, except under rcu, readers).
    std::mutex& write_mutex(const State& s) const {
        switch (options.policy) {
        case LockPolicy::per_listener:
            return s.own_mutex;
        case LockPolicy::global:
        case LockPolicy::rcu:
            return global_mutex;
        }
        return global_mutex;
    }

    // Locks `m`, counting the wait when it was contended (try_lock first, so
    // the uncontended path costs no clock reads).
    std::unique_lock<std::mutex> acquire(std::mutex& m) const {
        std::unique_lock lock(m, std::try_to_lock);
        if (!lock.owns_lock()) {
            auto t0 = std::chrono::steady_clock::now();
            lock.lock();
            auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
            contended.fetch_add(1, std::memory_order_relaxed);
            wait_ns.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
            waits.record(static_cast<std::uint64_t>(ns));
        }
        return lock;
    }

    State& state(unsigned as_id) const {
        if (as_id >= states.size() || !states[as_id])
            throw ConfigError(
                fmt::format("no KVM address space {} (this VM has {})", as_id, states.size()));
        return *states[as_id];
    }

    // Calls fn(const SlotTable&) as a reader under the policy.
    template <typename Fn>
    auto read(unsigned as_id, Fn&& fn) const {
        State& s = state(as_id);
        if (options.policy == LockPolicy::rcu) {
            RcuDomain::ReadGuard guard(rcu);
            const SlotTable* t = s.published.load(std::memory_order_seq_cst);
            return fn(t ? *t : empty_table);
        }
        auto lock = acquire(write_mutex(s));
        return fn(s.table);
    }

    // The table a writer holding the write lock edits.
    SlotTable& writable(State& s) {
        if (options.policy != LockPolicy::rcu) return s.table;
        if (!s.draft) {
            const SlotTable* cur = s.published.load();
            s.draft = std::make_unique<SlotTable>(cur ? *cur : SlotTable{});
        }
        return *s.draft;
    }
    // The table as of now, for a writer holding the write lock.
    const SlotTable& current(State& s) const {
        if (options.policy != LockPolicy::rcu) return s.table;
        if (s.draft) return *s.draft;
        const SlotTable* cur = s.published.load();
        return cur ? *cur : empty_table;
    }
    // rcu: publish the draft, wait for readers of the old table, free it.
    // rcu: publish the draft; returns the table it replaced, which readers
    // may still be using: free it only after synchronize(), and (as QEMU's
    // call_rcu) not while holding the write lock, so that other writers and
    // the syncer need not wait for readers.
    std::unique_ptr<const SlotTable> publish(State& s) {
        if (options.policy != LockPolicy::rcu || !s.draft) return nullptr;
        return std::unique_ptr<const SlotTable>(
            s.published.exchange(s.draft.release(), std::memory_order_seq_cst));
    }

    void sync_slot(State& s, const KvmSlot& slot);
    // With lock_all() held (only_as < 0), or only table `only_as`'s lock.
    std::uint64_t harvest_locked(int only_as = -1);
    std::vector<DirtyRing*> rings; // ring mode when not empty
    // Held while the rings are consumed (one consumer per ring: under
    // per-listener two listeners may reap at once) and guards `deferred`.
    std::mutex harvest_mutex;
    std::vector<std::pair<std::uint32_t, std::uint64_t>> deferred;

    // Every table at once: per-listener takes each listener's lock in
    // address-space order (one fixed order, so no deadlock); the others
    // their one writer mutex.
    std::vector<std::unique_lock<std::mutex>> lock_all() const {
        std::vector<std::unique_lock<std::mutex>> locks;
        if (options.policy == LockPolicy::per_listener) {
            for (auto& s : states)
                if (s) locks.push_back(acquire(s->own_mutex));
        } else {
            locks.push_back(acquire(global_mutex));
        }
        return locks;
    }

    SlotBackend& backend;
    Options options;
    std::vector<std::unique_ptr<State>> states;
    mutable std::mutex global_mutex; // global policy: everything; rcu: writers
    RcuDomain rcu;
    SlotTable empty_table;
    mutable std::atomic<std::uint64_t> contended{0}, wait_ns{0};
    mutable LatencyHistogram waits; // the contended acquisitions' waits
};

void KvmSlots::Impl::sync_slot(State& s, const KvmSlot& slot) {
    if ((slot.flags & kSlotLogDirty) == 0 || slot.block == nullptr) return;
    if (!rings.empty()) {
        // Ring mode: collect what the rings hold before a logging slot
        // changes (QEMU reaps every ring there too). Under per-listener the
        // caller holds only this table's lock: other address spaces' entries
        // are deferred, which is why QEMU 6.1 moved to one global lock.
        int only = options.policy == LockPolicy::per_listener ? static_cast<int>(s.as_id) : -1;
        if (harvest_locked(only) != 0) backend.reset_dirty_rings();
        return;
    }
    std::uint64_t pages = slot.memory_size / kPage;
    std::vector<std::uint64_t> bits((pages + 63) / 64);
    backend.get_dirty_log(s.as_id, slot.slot, bits);
    slot.block->dirty().merge(slot.block_offset / kPage, bits);
}

// ---- KvmSlots ----------------------------------------------------------------

KvmSlots::KvmSlots(SlotBackend& backend, Options options)
    : impl_(std::make_unique<Impl>(backend, options)) {}
KvmSlots::~KvmSlots() = default;

KvmMemoryListener& KvmSlots::listener(unsigned as_id) {
    if (as_id >= impl_->states.size())
        throw ConfigError(fmt::format("KVM address space {} does not exist (KVM offers {})", as_id,
                                      impl_->states.size()));
    auto& s = impl_->states[as_id];
    if (!s) {
        s = std::make_unique<Impl::State>(as_id, impl_->backend.max_slots());
        s->listener = std::make_unique<KvmMemoryListener>(KvmMemoryListener::Key{}, *this, as_id);
    }
    return *s->listener;
}

LockPolicy KvmSlots::policy() const noexcept {
    return impl_->options.policy;
}
unsigned KvmSlots::address_spaces() const noexcept {
    return static_cast<unsigned>(impl_->states.size());
}
std::vector<unsigned> KvmSlots::listened_address_spaces() const {
    std::vector<unsigned> ids;
    for (const auto& s : impl_->states)
        if (s) ids.push_back(s->as_id);
    return ids;
}

std::optional<KvmSlot> KvmSlots::find_slot(unsigned as_id, std::uint64_t gpa) const {
    return impl_->read(as_id, [&](const SlotTable& t) -> std::optional<KvmSlot> {
        if (const KvmSlot* s = t.find(gpa)) return *s;
        return std::nullopt;
    });
}

std::optional<std::uint64_t> KvmSlots::gpa_of_host(unsigned as_id, const void* hva) const {
    return impl_->read(as_id, [&](const SlotTable& t) { return t.gpa_of_host(hva); });
}

bool KvmSlots::is_guest_ram(const void* hva) const {
    auto& impl = *impl_;
    auto any = [&] {
        for (auto& s : impl.states) {
            if (!s) continue;
            const SlotTable* t = impl.options.policy == LockPolicy::rcu
                                     ? s->published.load(std::memory_order_seq_cst)
                                     : &s->table;
            if (t && t->gpa_of_host(hva)) return true;
        }
        return false;
    };
    switch (impl.options.policy) {
    case LockPolicy::rcu: {
        RcuDomain::ReadGuard guard(impl.rcu);
        return any();
    }
    default: {
        auto locks = impl.lock_all();
        return any();
    }
    }
}

std::uint32_t KvmSlots::free_slots(unsigned as_id) const {
    auto& s = impl_->state(as_id);
    auto lock = impl_->acquire(impl_->write_mutex(s));
    return s.ids.free_count();
}

std::vector<KvmSlot> KvmSlots::slots(unsigned as_id) const {
    return impl_->read(as_id, [](const SlotTable& t) { return t.slots(); });
}

void KvmSlots::sync_dirty_all() {
    auto& impl = *impl_;
    auto locks = impl.lock_all();
    for (auto& s : impl.states)
        if (s)
            for (const auto& slot : impl.current(*s).slots())
                impl.sync_slot(*s, slot);
}

std::uint64_t KvmSlots::harvest_dirty_rings() {
    std::uint64_t n;
    {
        auto locks = impl_->lock_all();
        n = impl_->harvest_locked();
    }
    if (n != 0) impl_->backend.reset_dirty_rings();
    return n;
}

void KvmSlots::use_dirty_rings(std::vector<DirtyRing*> rings) {
    auto locks = impl_->lock_all();
    impl_->rings = std::move(rings);
}

std::uint64_t KvmSlots::Impl::harvest_locked(int only_as) {
    // Entries of address spaces whose table we do not hold wait in `deferred`
    // until a harvest that holds their table: the next one of that space (so
    // they are applied before its slots change and their ids are reused) or
    // one with every table held.
    auto held = [&](unsigned as_id) {
        return only_as < 0 || as_id == static_cast<unsigned>(only_as);
    };
    auto apply = [&](std::uint32_t slot_field, std::uint64_t offset) {
        unsigned as_id = slot_field >> 16;
        if (as_id >= states.size() || !states[as_id]) return;
        const KvmSlot* slot = current(*states[as_id]).find_id(slot_field & 0xffff);
        // An entry for a slot deleted since is stale: nothing to mark.
        if (slot == nullptr || slot->block == nullptr || offset >= slot->memory_size / kPage)
            return;
        slot->block->dirty().set(slot->block_offset / kPage + offset);
    };
    std::lock_guard lock(harvest_mutex);
    std::erase_if(deferred, [&](const auto& entry) {
        if (!held(entry.first >> 16)) return false;
        apply(entry.first, entry.second);
        return true;
    });
    std::uint64_t n = 0;
    for (DirtyRing* ring : rings)
        n += ring->harvest([&](std::uint32_t slot_field, std::uint64_t offset) {
            if (held(slot_field >> 16))
                apply(slot_field, offset);
            else
                deferred.emplace_back(slot_field, offset);
        });
    return n;
}

LatencySnapshot KvmSlots::lock_waits() const noexcept {
    return impl_->waits.snapshot();
}

SlotLockStats KvmSlots::lock_stats() const noexcept {
    return {impl_->contended.load(), impl_->wait_ns.load()};
}

// ---- KvmMemoryListener ------------------------------------------------------------

KvmMemoryListener::KvmMemoryListener(Key, KvmSlots& memory, unsigned as_id)
    : memory_(*memory.impl_), as_id_(as_id) {}

void KvmMemoryListener::begin() {
    auto& s = memory_.state(as_id_);
    s.session = memory_.acquire(memory_.write_mutex(s));
}

void KvmMemoryListener::commit() {
    auto& s = memory_.state(as_id_);
    auto old = memory_.publish(s);
    if (s.session.owns_lock()) s.session.unlock();
    if (old) memory_.rcu.synchronize(); // then `old` goes
}

namespace {
// kvm_align_section: the page-aligned part of a section.
bool align_section(const MemorySection& sec, std::uint64_t page, std::uint64_t& start,
                   std::uint64_t& end) {
    start = (sec.gpa + page - 1) & ~(page - 1);
    end = sec.end() & ~(page - 1);
    return start < end;
}
} // namespace

void KvmMemoryListener::region_add(const MemorySection& sec) {
    if (!sec.is_ram()) return; // MMIO: no slot, accesses exit to the VMM
    std::uint64_t start, end;
    if (!align_section(sec, memory_.options.page_size, start, end)) return;
    auto& s = memory_.state(as_id_);
    auto& table = memory_.writable(s);
    std::uint32_t flags = (sec.readonly ? kSlotReadonly : 0) | (sec.log_dirty ? kSlotLogDirty : 0);
    const std::uint64_t max = memory_.options.max_slot_size;
    for (std::uint64_t pos = start; pos < end;) {
        std::uint64_t size = max ? std::min(max, end - pos) : end - pos;
        KvmSlot slot;
        slot.start_addr = pos;
        slot.memory_size = size;
        slot.ram = sec.host + (pos - sec.gpa);
        slot.flags = flags;
        slot.block = sec.block;
        slot.block_offset = sec.block_offset + (pos - sec.gpa);
        slot.slot = s.ids.alloc(as_id_);
        try {
            memory_.backend.set_slot(as_id_, slot.slot, flags, pos, size,
                                     reinterpret_cast<std::uint64_t>(slot.ram));
        } catch (...) {
            s.ids.release(slot.slot);
            throw;
        }
        table.insert(slot);
        pos += size;
    }
}

void KvmMemoryListener::region_del(const MemorySection& sec) {
    if (!sec.is_ram()) return;
    std::uint64_t start, end;
    if (!align_section(sec, memory_.options.page_size, start, end)) return;
    auto& s = memory_.state(as_id_);
    auto& table = memory_.writable(s);
    for (const auto& slot : table.starting_in(start, end)) {
        // Pull what the guest dirtied before the slot goes away (as QEMU does
        // in kvm_set_phys_mem before deleting a logging slot).
        memory_.sync_slot(s, slot);
        memory_.backend.set_slot(as_id_, slot.slot, 0, slot.start_addr, 0,
                                 reinterpret_cast<std::uint64_t>(slot.ram));
        table.erase(slot.start_addr);
        s.ids.release(slot.slot);
    }
}

void KvmMemoryListener::change_log_flag(const MemorySection& sec, bool on) {
    auto& memory = memory_;
    const unsigned as_id = as_id_;
    std::uint64_t start, end;
    if (!sec.is_ram() || !align_section(sec, memory.options.page_size, start, end)) return;
    auto& s = memory.state(as_id);
    auto& table = memory.writable(s);
    for (const auto& slot : table.starting_in(start, end)) {
        std::uint32_t flags = on ? (slot.flags | kSlotLogDirty) : (slot.flags & ~kSlotLogDirty);
        if (flags == slot.flags) continue;
        if (!on) memory.sync_slot(s, slot); // keep what was dirtied until now
        memory.backend.set_slot(as_id, slot.slot, flags, slot.start_addr, slot.memory_size,
                                reinterpret_cast<std::uint64_t>(slot.ram));
        table.set_flags(slot.start_addr, flags);
    }
}

void KvmMemoryListener::log_start(const MemorySection& sec) {
    change_log_flag(sec, true);
}
void KvmMemoryListener::log_stop(const MemorySection& sec) {
    change_log_flag(sec, false);
}

void KvmMemoryListener::log_sync(const MemorySection& sec) {
    auto& s = memory_.state(as_id_);
    auto lock = memory_.acquire(memory_.write_mutex(s));
    for (const auto& slot : memory_.current(s).slots())
        if (slot.start_addr < sec.end() && slot.start_addr + slot.memory_size > sec.gpa)
            memory_.sync_slot(s, slot);
}

void KvmMemoryListener::log_clear(const MemorySection& sec, std::uint64_t gpa, std::uint64_t size) {
    if (!memory_.backend.manual_protect()) return; // GET_DIRTY_LOG already re-protected
    auto& s = memory_.state(as_id_);
    auto lock = memory_.acquire(memory_.write_mutex(s));
    (void)sec;
    for (const auto& slot : memory_.current(s).slots()) {
        if ((slot.flags & kSlotLogDirty) == 0) continue;
        std::uint64_t lo = std::max(gpa, slot.start_addr);
        std::uint64_t hi = std::min(gpa + size, slot.start_addr + slot.memory_size);
        if (lo >= hi) continue;
        // KVM_CLEAR_DIRTY_LOG takes 64-page aligned chunks but drops the
        // dirty bit of every page its mask names, reported or not: widen the
        // chunk, never the mask (as kvm_log_clear_one_slot), so a page
        // written since the log was read keeps its bit for the next sync.
        std::uint64_t slot_pages = slot.memory_size / kPage;
        std::uint64_t lo_page = (lo - slot.start_addr) / kPage;
        std::uint64_t end_page =
            (hi - slot.start_addr + kPage - 1) / kPage; // a partial page counts
        std::uint64_t first = lo_page & ~63ull;
        std::uint64_t last = std::min<std::uint64_t>(slot_pages, (end_page + 63) & ~63ull);
        std::vector<std::uint64_t> mask((last - first + 63) / 64, 0);
        for (std::uint64_t p = lo_page; p < end_page; ++p)
            mask[(p - first) / 64] |= 1ull << ((p - first) % 64);
        memory_.backend.clear_dirty_log(as_id_, slot.slot, first,
                                        static_cast<std::uint32_t>(last - first), mask);
    }
}

} // namespace minivmm
