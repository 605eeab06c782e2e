// x86-64 4-level page tables of a Linux program, built and changed by the
// VMM (issue 16; Intel SDM vol. 3, 4.5). The guest never writes them: its
// mmap, munmap and mprotect are system calls served by the VMM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "minivmm/error.hpp"
#include "program/guest_frames.hpp"

namespace minivmm::linux_abi {

// Linear addresses a mapping may use: the canonical lower half.
inline constexpr std::uint64_t kLowerHalfEnd = 1ull << 47;

// What a leaf entry allows. `present` false keeps the frame in the entry
// with P clear, as Linux keeps a PROT_NONE page's frame: the CPU sees no
// page, and protect() can make it present again.
struct PageFlags {
    bool writable = false;
    bool user = false;
    bool executable = false;
    bool present = true;
    bool operator==(const PageFlags&) const = default;
};

struct Translation {
    std::uint64_t pa = 0; // of the byte asked about
    PageFlags flags;
    std::uint64_t page_size = 0; // kPageSize or kLargePageSize
};

// One leaf, or the part of it inside the range a walk was asked for.
struct LeafRange {
    std::uint64_t va = 0;
    std::uint64_t pa = 0;
    std::uint64_t size = 0;
    PageFlags flags;
};

// The table pages ran out (thrown by the operations that allocate them).
class PageTablesFull : public ConfigError {
  public:
    PageTablesFull() : ConfigError("guest RAM is full: no frame left for page tables") {}
};

// Every leaf has Accessed and Dirty preset, and every table entry Accessed,
// so that neither the CPU nor a shadow-paging KVM ever writes them back;
// table entries allow everything (R/W and U/S set, NX clear) so that the
// leaf alone decides. Leaves are 2 MiB where va, pa and the size allow, 4
// KiB otherwise (no 1 GiB leaves).
//
// Shootdown: a vCPU may hold translations (and, under a shadow-paging KVM,
// shadow entries KVM does not know the VMM changed) for any present entry.
// So when a present entry is removed, pointed elsewhere, loses a permission
// or changes page size, shootdown_needed() turns true, and the table pages
// emptied meanwhile are kept from the allocator until shootdown_done(),
// which the runner calls once every vCPU has dropped its translations.
// Adding entries needs no flush: a missing translation is always walked
// afresh.
//
// Not thread-safe: its owner (ProcessMemory) serializes.
class PageTables {
  public:
    // Allocates the root (PML4) from `table_frames`, which must outlive
    // this object. Throws PageTablesFull if there is no frame for it.
    explicit PageTables(FrameAllocator& table_frames);
    ~PageTables();
    PageTables(const PageTables&) = delete;
    PageTables& operator=(const PageTables&) = delete;

    // CR3: the PML4's guest-physical address (PCD, PWT clear).
    std::uint64_t root() const { return root_; }

    // Maps [va, va + size) to [pa, pa + size), replacing whatever was
    // mapped there. va, pa and size must be page aligned and va + size at
    // most kLowerHalfEnd (std::invalid_argument otherwise). Throws
    // PageTablesFull, with the part mapped so far left mapped, if the table
    // pages run out: reserve() first to rule that out.
    void map(std::uint64_t va, std::uint64_t pa, std::uint64_t size, PageFlags flags);
    // Removes every leaf in [va, va + size) (a 2 MiB leaf that the range
    // covers in part is split first). Tables left empty are unlinked.
    void unmap(std::uint64_t va, std::uint64_t size);
    // Gives every leaf in [va, va + size), present or kept, `flags`; holes
    // stay holes.
    void protect(std::uint64_t va, std::uint64_t size, PageFlags flags);

    // What the CPU would see at `va`: nullopt unless a present leaf maps it.
    std::optional<Translation> translate(std::uint64_t va) const;
    // The leaf at `va`, present or kept (flags.present tells which).
    std::optional<Translation> lookup(std::uint64_t va) const;
    // Calls `visit` for every leaf, present or kept, in [va, va + size),
    // clipped to the range, in ascending order.
    void for_each_leaf(std::uint64_t va, std::uint64_t size,
                       const std::function<void(const LeafRange&)>& visit) const;

    // How many table pages map(va, pa, size) would allocate now, or a map()
    // of each run in turn (their flags do not matter).
    std::size_t tables_needed_to_map(std::uint64_t va, std::uint64_t pa, std::uint64_t size) const;
    std::size_t tables_needed_to_map(std::span<const LeafRange> runs) const;
    // How many table pages unmap or protect of [va, va + size) would
    // allocate now (to split 2 MiB leaves at its ends: 0, 1 or 2).
    std::size_t tables_needed_to_split(std::uint64_t va, std::uint64_t size) const;
    // Sets aside table pages so that the next `count` allocations cannot
    // fail; false (with nothing set aside) if there are not that many.
    bool reserve(std::size_t count);
    // Gives the pages set aside and not used back to the allocator.
    void release_reserve();

    bool shootdown_needed() const { return shootdown_needed_; }
    // The vCPUs hold no stale translation any more: frees the table pages
    // unlinked since the last call.
    void shootdown_done();
    // A shootdown in two steps, for vCPUs that change the tables while one
    // runs: takes the table pages unlinked so far (and clears
    // shootdown_needed(): a later change needs another shootdown), to be
    // freed with free_tables once every vCPU dropped its translations.
    std::vector<std::uint64_t> begin_shootdown();
    void free_tables(std::span<const std::uint64_t> pages);
    // Table pages in use (root included), and unlinked ones not yet freed.
    std::size_t table_pages() const { return table_pages_; }
    std::size_t deferred_table_pages() const { return deferred_.size(); }

    // Entry bits (Intel SDM vol. 3, table 4-19 and 4-20).
    static constexpr std::uint64_t kPresent = 1ull << 0, kWritable = 1ull << 1, kUser = 1ull << 2,
                                   kAccessed = 1ull << 5, kDirty = 1ull << 6, kLarge = 1ull << 7,
                                   kNoExecute = 1ull << 63;
    // Ignored by the CPU (bit 9): a leaf whose P is clear on purpose, its
    // frame kept (Linux's _PAGE_PROTNONE plays this part).
    static constexpr std::uint64_t kKept = 1ull << 9;
    static constexpr std::uint64_t kAddressMask = 0x000ffffffffff000ull;

  private:
    std::uint64_t* table(std::uint64_t pa) const;
    std::uint64_t alloc_table();
    void defer_table(std::uint64_t pa);
    // A fresh page table holding the 512 leaves that 2 MiB `leaf` stands for.
    std::uint64_t split_leaf(std::uint64_t leaf);
    void changed(std::uint64_t old_entry, std::uint64_t new_entry);
    // The entry of the PD for `va`'s 2 MiB slot, or null if no PD is there.
    std::uint64_t* pd_entry(std::uint64_t va) const;
    // The PD entry for `va`, creating the PML4E/PDPTE tables on the way.
    std::uint64_t& pd_entry_for_update(std::uint64_t va);
    // Makes `pde` a table (splitting a 2 MiB leaf) and returns it.
    std::uint64_t* page_table_for_update(std::uint64_t& pde);
    // Frees the tables beneath `entry` (a table entry at `level`, 2 = PD
    // entry) recursively, deferred.
    void drop_subtree(std::uint64_t entry, int level);
    // Unlinks the PT, PD and PDPT on `va`'s path that are now empty.
    void prune(std::uint64_t va);
    void split_if_inside(std::uint64_t va);
    static void check_range(std::uint64_t va, std::uint64_t size);

    FrameAllocator& frames_;
    std::uint64_t root_ = 0;
    std::vector<std::uint64_t> reserve_;  // zeroed pages set aside
    std::vector<std::uint64_t> deferred_; // unlinked, freed at shootdown_done
    std::size_t table_pages_ = 0;
    bool shootdown_needed_ = false;
};

// A leaf entry's bits for `flags` (present or kept) over frame `pa`.
std::uint64_t leaf_entry(std::uint64_t pa, PageFlags flags, bool large);

} // namespace minivmm::linux_abi
