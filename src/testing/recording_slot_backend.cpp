#include "testing/recording_slot_backend.hpp"

#include <cerrno>

#include <fmt/format.h>

#include "minivmm/error.hpp"
#include "minivmm/kvm_slots.hpp"

namespace minivmm {

namespace {
constexpr std::uint64_t kPage = 4096;
} // namespace

RecordingSlotBackend::RecordingSlotBackend(unsigned address_spaces, std::uint32_t max_slots,
                                           bool manual_protect, bool record)
    : address_spaces_(address_spaces), max_slots_(max_slots), manual_protect_(manual_protect),
      record_(record), slots_(address_spaces) {}

void RecordingSlotBackend::set_slot(unsigned as_id, std::uint32_t slot, std::uint32_t flags,
                                    std::uint64_t gpa, std::uint64_t size, std::uint64_t hva) {
    std::lock_guard lock(mutex_);
    ++set_calls_;
    if (record_) calls_.push_back({Call::Op::set, as_id, slot, flags, gpa, size, hva});
    // The checks of kvm_set_memory_region / __kvm_set_memory_region.
    if (as_id >= address_spaces_ || slot >= max_slots_)
        throw KvmError("KVM_SET_USER_MEMORY_REGION", EINVAL,
                       "slot id or address space out of range");
    if (gpa % kPage || size % kPage || hva % kPage)
        throw KvmError("KVM_SET_USER_MEMORY_REGION", EINVAL, "unaligned");
    if (flags & ~(kSlotLogDirty | kSlotReadonly))
        throw KvmError("KVM_SET_USER_MEMORY_REGION", EINVAL, "unknown flags");
    auto& table = slots_[as_id];
    auto it = table.find(slot);
    if (size == 0) {
        if (it == table.end()) throw KvmError("KVM_SET_USER_MEMORY_REGION", EINVAL, "no such slot");
        table.erase(it);
        return;
    }
    if (it != table.end()) {
        // Only flags may change on a live slot here (no moves or resizes).
        if (it->second.gpa != gpa || it->second.size != size || it->second.hva != hva)
            throw KvmError("KVM_SET_USER_MEMORY_REGION", EINVAL, "slot changed shape");
        bool start_logging = (flags & kSlotLogDirty) && !(it->second.flags & kSlotLogDirty);
        it->second.flags = flags;
        if (start_logging)
            std::fill(it->second.protected_.begin(), it->second.protected_.end(), ~0ull);
        return;
    }
    for (const auto& [id, s] : table)
        if (gpa < s.gpa + s.size && s.gpa < gpa + size)
            throw KvmError("KVM_SET_USER_MEMORY_REGION", EEXIST,
                           fmt::format("[{:#x}, +{:#x}) overlaps slot {}", gpa, size, id));
    std::uint64_t words = (size / kPage + 63) / 64;
    table.emplace(slot,
                  Slot{flags, gpa, size, hva, std::vector<std::uint64_t>(words),
                       std::vector<std::uint64_t>(words, (flags & kSlotLogDirty) ? ~0ull : 0)});
}

bool RecordingSlotBackend::guest_write(unsigned as_id, std::uint64_t gpa) {
    std::lock_guard lock(mutex_);
    if (as_id >= address_spaces_) return false;
    for (auto& [id, s] : slots_[as_id]) {
        if (gpa < s.gpa || gpa >= s.gpa + s.size) continue;
        if (!(s.flags & kSlotLogDirty)) return false;
        std::uint64_t page = (gpa - s.gpa) / kPage;
        // Only a protected page faults and gets logged, as with KVM.
        if (s.protected_[page / 64] >> (page % 64) & 1) {
            s.dirty[page / 64] |= 1ull << (page % 64);
            s.protected_[page / 64] &= ~(1ull << (page % 64));
        }
        return true;
    }
    return false;
}

void RecordingSlotBackend::get_dirty_log(unsigned as_id, std::uint32_t slot,
                                         std::span<std::uint64_t> bitmap) {
    std::lock_guard lock(mutex_);
    if (record_) calls_.push_back({Call::Op::get_dirty, as_id, slot, 0, 0, 0, 0});
    if (as_id >= address_spaces_) throw KvmError("KVM_GET_DIRTY_LOG", EINVAL);
    auto it = slots_[as_id].find(slot);
    if (it == slots_[as_id].end() || !(it->second.flags & kSlotLogDirty))
        throw KvmError("KVM_GET_DIRTY_LOG", ENOENT, "slot missing or not logging");
    auto& s = it->second;
    for (std::size_t i = 0; i < bitmap.size() && i < s.dirty.size(); ++i) {
        bitmap[i] = s.dirty[i];
        s.dirty[i] = 0;
        if (!manual_protect_) s.protected_[i] |= bitmap[i]; // GET re-protects at once
    }
}

void RecordingSlotBackend::clear_dirty_log(unsigned as_id, std::uint32_t slot,
                                           std::uint64_t first_page, std::uint32_t num_pages,
                                           std::span<const std::uint64_t> bitmap) {
    std::lock_guard lock(mutex_);
    if (record_)
        calls_.push_back({Call::Op::clear_dirty, as_id, slot, 0, first_page, num_pages, 0});
    if (!manual_protect_ || as_id >= address_spaces_) throw KvmError("KVM_CLEAR_DIRTY_LOG", EINVAL);
    auto it = slots_[as_id].find(slot);
    if (it == slots_[as_id].end()) throw KvmError("KVM_CLEAR_DIRTY_LOG", ENOENT);
    auto& s = it->second;
    std::uint64_t pages = s.size / kPage;
    // kvm_clear_dirty_log_protect: 64-page alignment unless the range ends the slot.
    if (first_page % 64 || (num_pages % 64 && first_page + num_pages != pages) ||
        first_page + num_pages > pages)
        throw KvmError("KVM_CLEAR_DIRTY_LOG", EINVAL, "unaligned or out-of-range chunk");
    // As kvm_clear_dirty_log_protect: every page named in the mask loses
    // its dirty bit, reported or not, and is write-protected again. (Unlike
    // KVM, this fake's GET already took the bits it returned; what a clear
    // can drop here is a page written since, which is the case that matters.)
    for (std::uint64_t i = 0; i < num_pages; ++i)
        if (bitmap[i / 64] >> (i % 64) & 1) {
            std::uint64_t p = first_page + i;
            s.dirty[p / 64] &= ~(1ull << (p % 64));
            s.protected_[p / 64] |= 1ull << (p % 64);
        }
}

std::vector<RecordingSlotBackend::Call> RecordingSlotBackend::calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
}

std::map<std::uint32_t, RecordingSlotBackend::Slot>
RecordingSlotBackend::slots(unsigned as_id) const {
    std::lock_guard lock(mutex_);
    return slots_.at(as_id);
}

std::uint64_t RecordingSlotBackend::set_calls() const {
    std::lock_guard lock(mutex_);
    return set_calls_;
}

} // namespace minivmm
