#include "program/page_tables.hpp"

#include <utility>

#include <algorithm>
#include <atomic>
#include <set>
#include <stdexcept>

namespace minivmm::linux_abi {

namespace {

using PT = PageTables;

constexpr std::size_t kEntries = 512;
constexpr std::uint64_t kTableEntryBits = PT::kPresent | PT::kWritable | PT::kUser | PT::kAccessed;
constexpr std::uint64_t kOneGiB = 1ull << 30;
constexpr std::uint64_t kPml4Span = 1ull << 39;

// The index of `va` in the table at `level` (4 = PML4 ... 1 = PT).
std::size_t index(std::uint64_t va, int level) {
    return static_cast<std::size_t>((va >> (12 + 9 * (level - 1))) & (kEntries - 1));
}

bool mapped(std::uint64_t e) {
    return (e & (PT::kPresent | PT::kKept)) != 0;
}
bool is_table(std::uint64_t e) { // at PML4, PDPT or PD level
    return (e & PT::kPresent) && !(e & PT::kLarge);
}
bool is_large_leaf(std::uint64_t e) { // at PD level
    return mapped(e) && (e & PT::kLarge);
}
std::uint64_t address(std::uint64_t e) {
    return e & PT::kAddressMask;
}
PageFlags flags_of(std::uint64_t e) {
    return PageFlags{.writable = (e & PT::kWritable) != 0,
                     .user = (e & PT::kUser) != 0,
                     .executable = (e & PT::kNoExecute) == 0,
                     .present = (e & PT::kPresent) != 0};
}

// One aligned 8-byte store: a vCPU walking the table sees the old entry or
// the new one, and a new table's entries before the entry that links it.
void store(std::uint64_t& entry, std::uint64_t value) {
    std::atomic_ref<std::uint64_t>(entry).store(value, std::memory_order_release);
}

std::uint64_t slot_end(std::uint64_t va) {
    return (va | (kLargePageSize - 1)) + 1;
}

} // namespace

std::uint64_t leaf_entry(std::uint64_t pa, PageFlags flags, bool large) {
    std::uint64_t e = (pa & PT::kAddressMask) | PT::kAccessed | PT::kDirty;
    e |= flags.present ? PT::kPresent : PT::kKept;
    if (flags.writable) e |= PT::kWritable;
    if (flags.user) e |= PT::kUser;
    if (!flags.executable) e |= PT::kNoExecute;
    if (large) e |= PT::kLarge;
    return e;
}

PageTables::PageTables(FrameAllocator& table_frames) : frames_(table_frames) {
    root_ = alloc_table();
}

PageTables::~PageTables() {
    // Nothing runs on these tables any more: every page goes back now.
    drop_subtree(root_ | kTableEntryBits, 5);
    shootdown_done();
    release_reserve();
}

std::uint64_t* PageTables::table(std::uint64_t pa) const {
    return reinterpret_cast<std::uint64_t*>(frames_.host(pa, kPageSize).data());
}

std::uint64_t PageTables::alloc_table() {
    std::uint64_t pa;
    if (!reserve_.empty()) {
        pa = reserve_.back();
        reserve_.pop_back();
    } else if (auto frame = frames_.alloc_4k()) {
        pa = *frame;
    } else {
        throw PageTablesFull();
    }
    ++table_pages_;
    return pa;
}

void PageTables::defer_table(std::uint64_t pa) {
    --table_pages_;
    deferred_.push_back(pa);
    shootdown_needed_ = true;
}

bool PageTables::reserve(std::size_t count) {
    std::vector<std::uint64_t> taken;
    while (reserve_.size() + taken.size() < count) {
        auto frame = frames_.alloc_4k();
        if (!frame) {
            for (std::uint64_t pa : taken)
                frames_.free_4k(pa); // never linked
            return false;
        }
        taken.push_back(*frame);
    }
    reserve_.insert(reserve_.end(), taken.begin(), taken.end());
    return true;
}

void PageTables::release_reserve() {
    for (std::uint64_t pa : reserve_)
        frames_.free_4k(pa);
    reserve_.clear();
}

void PageTables::shootdown_done() {
    for (std::uint64_t pa : deferred_)
        frames_.free_4k(pa);
    deferred_.clear();
    shootdown_needed_ = false;
}

std::vector<std::uint64_t> PageTables::begin_shootdown() {
    shootdown_needed_ = false;
    return std::exchange(deferred_, {});
}

void PageTables::free_tables(std::span<const std::uint64_t> pages) {
    for (std::uint64_t pa : pages)
        frames_.free_4k(pa);
}

void PageTables::changed(std::uint64_t old_entry, std::uint64_t new_entry) {
    if (!(old_entry & kPresent) || old_entry == new_entry) return;
    bool lost = !(new_entry & kPresent) || address(old_entry) != address(new_entry) ||
                ((old_entry & kWritable) && !(new_entry & kWritable)) ||
                ((old_entry & kUser) && !(new_entry & kUser)) ||
                (!(old_entry & kNoExecute) && (new_entry & kNoExecute)) ||
                ((old_entry ^ new_entry) & kLarge) != 0;
    if (lost) shootdown_needed_ = true;
}

void PageTables::check_range(std::uint64_t va, std::uint64_t size) {
    if (va % kPageSize != 0 || size % kPageSize != 0 || va > kLowerHalfEnd ||
        size > kLowerHalfEnd - va)
        throw std::invalid_argument("PageTables: range not page aligned or not below 2^47");
}

std::uint64_t* PageTables::pd_entry(std::uint64_t va) const {
    std::uint64_t pml4e = table(root_)[index(va, 4)];
    if (!is_table(pml4e)) return nullptr;
    std::uint64_t pdpte = table(address(pml4e))[index(va, 3)];
    if (!is_table(pdpte)) return nullptr;
    return &table(address(pdpte))[index(va, 2)];
}

std::uint64_t& PageTables::pd_entry_for_update(std::uint64_t va) {
    std::uint64_t* t = table(root_);
    for (int level = 4; level > 2; --level) {
        std::uint64_t& e = t[index(va, level)];
        if (!is_table(e)) {
            std::uint64_t fresh = alloc_table();
            store(e, fresh | kTableEntryBits);
        }
        t = table(address(e));
    }
    return t[index(va, 2)];
}

std::uint64_t PageTables::split_leaf(std::uint64_t leaf) {
    std::uint64_t pt = alloc_table();
    std::uint64_t* entries = table(pt);
    std::uint64_t bits = leaf & ~(kAddressMask | kLarge);
    for (std::size_t i = 0; i < kEntries; ++i)
        entries[i] = bits | (address(leaf) + i * kPageSize);
    return pt;
}

std::uint64_t* PageTables::page_table_for_update(std::uint64_t& pde) {
    if (!is_table(pde)) {
        std::uint64_t old = pde;
        std::uint64_t pt = is_large_leaf(old) ? split_leaf(old) : alloc_table();
        store(pde, pt | kTableEntryBits);
        // The same translations at a new page size (SDM vol. 3, 4.10.2.3:
        // both sizes must not be cached at once).
        if (old & kPresent) shootdown_needed_ = true;
    }
    return table(address(pde));
}

void PageTables::drop_subtree(std::uint64_t entry, int level) {
    // `level` is that of the table the entry points to, plus one.
    if (!is_table(entry)) return;
    std::uint64_t pa = address(entry);
    if (level > 2) {
        std::uint64_t* t = table(pa);
        for (std::size_t i = 0; i < kEntries; ++i)
            drop_subtree(t[i], level - 1);
    }
    defer_table(pa);
}

void PageTables::map(std::uint64_t va, std::uint64_t pa, std::uint64_t size, PageFlags flags) {
    check_range(va, size);
    if (pa % kPageSize != 0) throw std::invalid_argument("PageTables: pa not page aligned");
    while (size > 0) {
        std::uint64_t& pde = pd_entry_for_update(va);
        if (va % kLargePageSize == 0 && pa % kLargePageSize == 0 && size >= kLargePageSize) {
            std::uint64_t old = pde;
            std::uint64_t fresh = leaf_entry(pa, flags, true);
            store(pde, fresh);
            if (is_table(old)) {
                drop_subtree(old, 2);
            } else {
                changed(old, fresh);
            }
            va += kLargePageSize;
            pa += kLargePageSize;
            size -= kLargePageSize;
            continue;
        }
        std::uint64_t* pt = page_table_for_update(pde);
        std::uint64_t chunk = std::min(size, slot_end(va) - va);
        for (std::uint64_t at = va; at < va + chunk; at += kPageSize) {
            std::uint64_t& e = pt[index(at, 1)];
            std::uint64_t fresh = leaf_entry(pa + (at - va), flags, false);
            changed(e, fresh);
            store(e, fresh);
        }
        va += chunk;
        pa += chunk;
        size -= chunk;
    }
}

void PageTables::split_if_inside(std::uint64_t va) {
    if (va % kLargePageSize == 0 || va >= kLowerHalfEnd) return;
    std::uint64_t* pde = pd_entry(va);
    if (pde && is_large_leaf(*pde)) page_table_for_update(*pde);
}

void PageTables::prune(std::uint64_t va) {
    auto empty = [this](std::uint64_t pa) {
        const std::uint64_t* t = table(pa);
        return std::all_of(t, t + kEntries, [](std::uint64_t e) { return e == 0; });
    };
    std::uint64_t* path[3] = {};
    std::uint64_t* t = table(root_);
    for (int level = 4; level > 1; --level) {
        std::uint64_t& e = t[index(va, level)];
        if (!is_table(e)) break;
        path[4 - level] = &e;
        t = table(address(e));
    }
    // Innermost first: a PT, then the PD and PDPT it may leave empty.
    for (int i = 2; i >= 0; --i) {
        if (!path[i]) continue;
        std::uint64_t pa = address(*path[i]);
        if (!empty(pa)) return;
        store(*path[i], 0);
        defer_table(pa);
    }
}

void PageTables::unmap(std::uint64_t va, std::uint64_t size) {
    check_range(va, size);
    const std::uint64_t end = va + size;
    split_if_inside(va);
    split_if_inside(end);
    std::set<std::uint64_t> touched_slots;
    for (std::uint64_t at = va; at < end;) {
        std::uint64_t next = std::min(end, slot_end(at));
        std::uint64_t* pde = pd_entry(at);
        if (!pde) {
            // No PD here: go on at the next 1 GiB boundary.
            next = std::min(end, (at | (kOneGiB - 1)) + 1);
        } else if (is_large_leaf(*pde)) {
            changed(*pde, 0);
            store(*pde, 0);
            touched_slots.insert(at);
        } else if (is_table(*pde)) {
            std::uint64_t* pt = table(address(*pde));
            for (std::uint64_t p = at; p < next; p += kPageSize) {
                std::uint64_t& e = pt[index(p, 1)];
                if (e == 0) continue;
                changed(e, 0);
                store(e, 0);
            }
            touched_slots.insert(at);
        }
        at = next;
    }
    for (std::uint64_t slot : touched_slots)
        prune(slot);
}

void PageTables::protect(std::uint64_t va, std::uint64_t size, PageFlags flags) {
    check_range(va, size);
    const std::uint64_t end = va + size;
    split_if_inside(va);
    split_if_inside(end);
    for (std::uint64_t at = va; at < end;) {
        std::uint64_t next = std::min(end, slot_end(at));
        std::uint64_t* pde = pd_entry(at);
        if (!pde) {
            next = std::min(end, (at | (kOneGiB - 1)) + 1);
        } else if (is_large_leaf(*pde)) {
            std::uint64_t fresh = leaf_entry(address(*pde), flags, true);
            changed(*pde, fresh);
            store(*pde, fresh);
        } else if (is_table(*pde)) {
            std::uint64_t* pt = table(address(*pde));
            for (std::uint64_t p = at; p < next; p += kPageSize) {
                std::uint64_t& e = pt[index(p, 1)];
                if (!mapped(e)) continue;
                std::uint64_t fresh = leaf_entry(address(e), flags, false);
                changed(e, fresh);
                store(e, fresh);
            }
        }
        at = next;
    }
}

std::optional<Translation> PageTables::lookup(std::uint64_t va) const {
    if (va >= kLowerHalfEnd) return std::nullopt;
    const std::uint64_t* pde = pd_entry(va);
    if (!pde) return std::nullopt;
    if (is_large_leaf(*pde))
        return Translation{address(*pde) + va % kLargePageSize, flags_of(*pde), kLargePageSize};
    if (!is_table(*pde)) return std::nullopt;
    std::uint64_t e = table(address(*pde))[index(va, 1)];
    if (!mapped(e)) return std::nullopt;
    return Translation{address(e) + va % kPageSize, flags_of(e), kPageSize};
}

std::optional<Translation> PageTables::translate(std::uint64_t va) const {
    auto found = lookup(va);
    if (!found || !found->flags.present) return std::nullopt;
    return found;
}

void PageTables::for_each_leaf(std::uint64_t va, std::uint64_t size,
                               const std::function<void(const LeafRange&)>& visit) const {
    check_range(va, size);
    const std::uint64_t end = va + size;
    for (std::uint64_t at = va; at < end;) {
        std::uint64_t next = std::min(end, slot_end(at));
        const std::uint64_t* pde = pd_entry(at);
        if (!pde) {
            next = std::min(end, (at | (kOneGiB - 1)) + 1);
        } else if (is_large_leaf(*pde)) {
            visit(LeafRange{at, address(*pde) + at % kLargePageSize, next - at, flags_of(*pde)});
        } else if (is_table(*pde)) {
            const std::uint64_t* pt = table(address(*pde));
            for (std::uint64_t p = at; p < next; p += kPageSize) {
                std::uint64_t e = pt[index(p, 1)];
                if (mapped(e)) visit(LeafRange{p, address(e), kPageSize, flags_of(e)});
            }
        }
        at = next;
    }
}

std::size_t PageTables::tables_needed_to_map(std::uint64_t va, std::uint64_t pa,
                                             std::uint64_t size) const {
    const LeafRange run{va, pa, size, {}};
    return tables_needed_to_map(std::span(&run, 1));
}

std::size_t PageTables::tables_needed_to_map(std::span<const LeafRange> runs) const {
    // The tables map() would create, by the address bits above their span.
    std::set<std::uint64_t> pdpts, pds, pts;
    for (const LeafRange& run : runs) {
        check_range(run.va, run.size);
        const std::uint64_t end = run.va + run.size;
        for (std::uint64_t at = run.va; at < end;) {
            std::uint64_t at_pa = run.pa + (at - run.va);
            bool large = at % kLargePageSize == 0 && at_pa % kLargePageSize == 0 &&
                         end - at >= kLargePageSize;
            std::uint64_t pml4e = table(root_)[index(at, 4)];
            const std::uint64_t* pdpt = is_table(pml4e) ? table(address(pml4e)) : nullptr;
            if (!pdpt) pdpts.insert(at / kPml4Span);
            std::uint64_t pdpte = pdpt ? pdpt[index(at, 3)] : 0;
            const std::uint64_t* pd = is_table(pdpte) ? table(address(pdpte)) : nullptr;
            if (!pd) pds.insert(at / kOneGiB);
            if (!large && !(pd && is_table(pd[index(at, 2)]))) pts.insert(at / kLargePageSize);
            at = large ? at + kLargePageSize : std::min(end, slot_end(at));
        }
    }
    return pdpts.size() + pds.size() + pts.size();
}

std::size_t PageTables::tables_needed_to_split(std::uint64_t va, std::uint64_t size) const {
    check_range(va, size);
    std::set<std::uint64_t> slots;
    for (std::uint64_t at : {va, va + size}) {
        if (at % kLargePageSize == 0 || at >= kLowerHalfEnd) continue;
        const std::uint64_t* pde = pd_entry(at);
        if (pde && is_large_leaf(*pde)) slots.insert(at / kLargePageSize);
    }
    return slots.size();
}

} // namespace minivmm::linux_abi
