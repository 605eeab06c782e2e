// The memory of a Linux program in ring 3 (issue 16): its mappings (VMAs),
// the guest-physical frames behind them, the x86-64 page tables the VMM
// builds for them, and the memory system calls, served as Linux serves them
// (mm/mmap.c, mm/mprotect.c, mm/mremap.c, mm/madvise.c, mm/mlock.c,
// mm/msync.c, mm/mincore.c).
//
// Served (x86-64 numbers): mmap mprotect munmap brk mremap msync mincore
// madvise mlock munlock mlockall munlockall mlock2 pkey_mprotect.
//
// Every mapping is populated when it is made (there is no page-fault path):
// anonymous memory gets zeroed frames, a private file mapping the file's
// bytes, copied through the host descriptor. So:
// - MAP_PRIVATE file mappings are snapshots of the file at mmap time (POSIX
//   leaves it unspecified whether later changes to the file show); pages
//   wholly past the end of the file read as zeros where Linux raises SIGBUS.
// - MAP_SHARED and MAP_SHARED_VALIDATE file mappings are refused with
//   -ENODEV (after Linux's own EACCES checks), as for a file without mmap:
//   a copy cannot stay coherent with the file in either direction.
// - MAP_SHARED anonymous memory behaves as private: with one process (no
//   fork yet) nobody else could see it. mremap with old_size 0, which
//   duplicates a shared mapping, is -EINVAL as for a private one.
// - MAP_HUGETLB is -ENOMEM, as on a host with no huge pages reserved (the
//   default vm.nr_hugepages of 0); the madvise interface acts as a kernel
//   without transparent huge pages or KSM (MADV_HUGEPAGE, NOHUGEPAGE,
//   COLLAPSE, MERGEABLE, UNMERGEABLE are -EINVAL), though large aligned
//   anonymous mappings do get 2 MiB frames and leaves. mremap takes the flags
//   of Linux before 5.7 (MREMAP_DONTUNMAP is -EINVAL).
// - MAP_GROWSDOWN mappings are made and marked; growing one happens when the
//   runner's page-fault path calls grow_stack().
// - mlock and friends mark VMAs locked (which is what madvise, msync and
//   mremap look at) with no RLIMIT_MEMLOCK check: the memory never leaves.
// - MADV_DONTNEED zeroes the frames in place (private anonymous), re-reads
//   the file (private file) or keeps them (shared anonymous, loader frames),
//   which is what the next access sees on Linux; it changes no page-table
//   entry, so it needs no shootdown.
//
// Shootdown: every call that removes or restricts a translation a vCPU may
// hold (munmap, mprotect, mremap, MAP_FIXED over a mapping, brk shrinking)
// leaves shootdown_needed() true; the frames and table pages it gave up are
// kept from reuse until the runner has made every vCPU drop its
// translations and called shootdown_done().
//
// Thread safety: one mutex serializes every public member, so the program's
// threads may make system calls at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "program/file_table.hpp"
#include "program/guest_frames.hpp"
#include "program/page_tables.hpp"
#include "program/user_memory.hpp"

namespace minivmm::linux_abi {

// One mapping of the program's address space, as /proc/self/maps shows it.
struct Vma {
    enum class Backing {
        anonymous, // zero-filled frames of its own
        file,      // frames of its own holding a private copy of a file
        frames,    // frames the loader owns (map_frames): never freed here
    };
    std::uint64_t start = 0, end = 0; // page aligned, start < end
    int prot = 0;                     // PROT_READ | PROT_WRITE | PROT_EXEC
    int max_prot = 7;                 // what mprotect may grant (VM_MAY*)
    bool shared = false;              // MAP_SHARED (anonymous only)
    bool grows_down = false;          // MAP_GROWSDOWN
    bool locked = false;              // mlock, MAP_LOCKED
    bool dont_fork = false;           // MADV_DONTFORK
    bool wipe_on_fork = false;        // MADV_WIPEONFORK
    Backing backing = Backing::anonymous;
    std::shared_ptr<const OpenFile> file; // Backing::file
    std::uint64_t offset = 0;             // file offset of `start`
    std::string name;                     // "[heap]", "[stack]", "[vdso]", a file's path, or ""

    std::uint64_t size() const { return end - start; }
    bool owns_frames() const { return backing != Backing::frames; }
};

class ProcessMemory final : public UserMemory {
  public:
    struct Layout {
        std::uint64_t min_addr = 0x10000;           // Linux's vm.mmap_min_addr
        std::uint64_t mmap_top = 0;                 // the top-down mmap area starts below this
        std::uint64_t user_end = 0x7ffffffff000ull; // TASK_SIZE: no user page at or above
    };

    // Frames for the program's memory come from `data`, page-table pages
    // from `tables`; neither range may be used by anyone else meanwhile
    // (both are zeroed now). Throws ConfigError unless min_addr <= mmap_top
    // <= user_end <= 2^47, all page aligned, and the ranges are disjoint
    // with a frame for the root table.
    ProcessMemory(PhysicalRange data, PhysicalRange tables, Layout layout);
    ~ProcessMemory() override;
    ProcessMemory(const ProcessMemory&) = delete;
    ProcessMemory& operator=(const ProcessMemory&) = delete;

    // --- The loader's side (the VMM's, so protection does not apply). ---
    // Each throws ConfigError for a range that is not page aligned, not in
    // [min_addr, user_end), or overlaps a mapping, and "guest RAM is full:
    // ..." when the frames run out (nothing is mapped then).

    // Zero-filled anonymous memory at exactly [va, va + size).
    void map_anonymous_fixed(std::uint64_t va, std::uint64_t size, int prot, std::string name);
    // Frames the caller got from alloc_frames (kept by the caller: never
    // freed by munmap), at [va, va + 4 KiB * gpas.size()). mprotect may not
    // grant them more than `prot` (as for Linux's [vvar]).
    void map_frames(std::uint64_t va, std::span<const std::uint64_t> gpas, int prot,
                    std::string name);
    // Where an mmap without a hint would go (the top-down search below
    // mmap_top), for the interpreter, which Linux's load_elf_interp maps
    // that way: the highest free run of `len` bytes (page aligned, > 0)
    // aligned to `align` (a power of two, at least a page); nullopt if none.
    std::optional<std::uint64_t> free_area(std::uint64_t len, std::uint64_t align) const;
    // `count` zeroed 4 KiB frames of the data range for map_frames (the vDSO
    // and its parameter page), the caller's for the life of this object.
    std::vector<std::uint64_t> alloc_frames(std::size_t count);
    // The host bytes of guest-physical [gpa, gpa + size) in the data range
    // (std::out_of_range outside it).
    std::span<std::byte> frame_bytes(std::uint64_t gpa, std::uint64_t size);
    // Writes or reads guest-virtual memory whatever its protection; false
    // (nothing written) unless every byte is in a mapping.
    bool poke(std::uint64_t va, std::span<const std::byte> bytes);
    bool peek(std::uint64_t va, std::span<std::byte> out) const;
    // The heap starts here (page aligned up for its mapping); brk(0) returns
    // it until the program moves the break.
    void set_brk_base(std::uint64_t va);
    // Guest-physical [gpa, gpa + size), outside the data range, at [va, va +
    // size) for ring 0 only (the runner's entry code, descriptor tables and
    // stacks): no VMA, invisible to and untouchable by the program's calls
    // (its mmap treats the range as taken, munmap of it is -EINVAL). va may
    // be anywhere below 2^47.
    void map_supervisor(std::uint64_t va, std::uint64_t gpa, std::uint64_t size, bool writable,
                        bool executable);

    // --- The program's side. ---

    // The result of a memory system call (a value, or -errno); nullopt for
    // any other number. `files` resolves the fd of a file-backed mmap.
    std::optional<std::int64_t> call(const SyscallArgs& args, FileTable& files);

    // The runner's page-fault path: a fault at `va` just below a
    // MAP_GROWSDOWN mapping grows it down to va's page, as Linux's
    // expand_stack (keeping stack_guard_gap to the mapping below). False if
    // there is no such mapping, no room, or no frames.
    bool grow_stack(std::uint64_t va);

    // UserMemory: every byte must be mapped readable (copy_in: PROT_READ,
    // or WRITE or EXEC, which imply read on x86) or writable (copy_out:
    // PROT_WRITE; checked for all bytes before any is written).
    bool copy_in(std::uint64_t va, std::span<std::byte> out) const override;
    bool copy_out(std::uint64_t va, std::span<const std::byte> in) override;

    // CR3 for the program's vCPUs.
    std::uint64_t cr3() const;
    bool shootdown_needed() const;
    // Every vCPU has dropped the translations it held: the frames and table
    // pages given up since the last call may be used again.
    void shootdown_done();
    // The same in two steps, for a program whose threads change their
    // mappings at once: begin_shootdown takes what was given up so far
    // (nullopt when nothing needs a shootdown), the runner makes every vCPU
    // drop its translations, then end_shootdown frees the batch. A change
    // made meanwhile needs a shootdown of its own, so no thread's flush can
    // free what another one gave up after it.
    struct Shootdown {
        std::vector<std::uint64_t> tables;                           // table pages
        std::vector<std::pair<std::uint64_t, std::uint64_t>> frames; // gpa, size
    };
    std::optional<Shootdown> begin_shootdown();
    void end_shootdown(Shootdown batch);
    // The host address of the aligned 32-bit word at `va` (a futex word).
    std::uint32_t* word(std::uint64_t va, bool write) override;

    // --- Inspection. ---
    std::vector<Vma> mappings() const;
    // One line per VMA as /proc/self/maps prints it ("start-end rwxp offset
    // 00:00 0 name"), for debugging.
    std::string describe() const;
    std::uint64_t brk() const;
    std::uint64_t free_data_bytes() const;
    std::uint64_t free_table_bytes() const;
    const Layout& layout() const { return layout_; }

    // Linux's limits: vm.max_map_count, stack_guard_gap (256 pages).
    static constexpr std::size_t kMaxMapCount = 65530;
    static constexpr std::uint64_t kStackGuardGap = 256 * kPageSize;

  private:
    struct SearchArea;

    // The system calls (all under mutex_).
    std::int64_t mmap(std::uint64_t addr, std::uint64_t len, std::uint64_t prot,
                      std::uint64_t flags, int fd, std::uint64_t offset, FileTable& files);
    std::int64_t munmap(std::uint64_t addr, std::uint64_t len);
    std::int64_t mprotect(std::uint64_t addr, std::uint64_t len, std::uint64_t prot,
                          std::int64_t pkey);
    std::int64_t brk_call(std::uint64_t addr);
    std::int64_t mremap(std::uint64_t addr, std::uint64_t old_len, std::uint64_t new_len,
                        std::uint64_t flags, std::uint64_t new_addr);
    std::int64_t madvise(std::uint64_t addr, std::uint64_t len, std::uint64_t advice);
    std::int64_t msync(std::uint64_t addr, std::uint64_t len, std::uint64_t flags);
    std::int64_t mincore(std::uint64_t addr, std::uint64_t len, std::uint64_t vec);
    std::int64_t mlock(std::uint64_t addr, std::uint64_t len, bool lock);
    std::int64_t mlockall(std::uint64_t flags);

    // The VMA holding `va`, or the first one above it.
    std::map<std::uint64_t, Vma>::iterator vma_at_or_above(std::uint64_t va);
    std::map<std::uint64_t, Vma>::const_iterator vma_at_or_above(std::uint64_t va) const;
    const Vma* vma_containing(std::uint64_t va) const;
    // Whether [start, end) meets a VMA or a supervisor range (with the
    // stack guard gap below MAP_GROWSDOWN VMAs when `guard_gaps`).
    bool taken(std::uint64_t start, std::uint64_t end, bool guard_gaps) const;
    bool overlaps_supervisor(std::uint64_t start, std::uint64_t end) const;
    // A free run of `len` bytes aligned to `align` in `area`.
    std::optional<std::uint64_t> find_free(std::uint64_t len, const SearchArea& area,
                                           std::uint64_t align) const;
    // Linux's get_unmapped_area for a mapping without MAP_FIXED: the hint
    // if it is free, else a top-down search (MAP_32BIT: bottom-up in the
    // low 2 GiB). -errno when there is no room.
    std::int64_t unmapped_area(std::uint64_t hint, std::uint64_t len, std::uint64_t flags,
                               bool thp_aligned) const;

    // Frames for [start, end): 2 MiB frames for whole aligned 2 MiB slots
    // when `large`, 4 KiB ones for the rest. Empty (nothing kept) when the
    // frames run out.
    std::optional<std::vector<LeafRange>> allocate(std::uint64_t start, std::uint64_t end,
                                                   bool large);
    void free_now(const std::vector<LeafRange>& pieces);
    // Copies the file bytes a mapping of `file` at `offset` shows into the
    // pieces' frames (zeros past the end of the file). 0 or -errno.
    int fill_from_file(const std::vector<LeafRange>& pieces, std::uint64_t start,
                       const OpenFile& file, std::uint64_t offset);
    // Sets aside the table pages for mapping `pieces` plus `extra`.
    bool reserve_tables(const std::vector<LeafRange>& pieces, std::size_t extra);
    void map_pieces(const std::vector<LeafRange>& pieces, PageFlags flags);
    // Gives the owned frames of the VMAs in [start, end) to the deferred
    // list (they become free at shootdown_done).
    void release_frames(std::uint64_t start, std::uint64_t end);
    // Cuts the VMA holding `va` in two at `va` (no-op at a boundary).
    void split_at(std::uint64_t va);
    // Removes the VMAs in [start, end), cutting those that straddle it.
    void erase_vmas(std::uint64_t start, std::uint64_t end);
    // Joins VMAs around [start, end) that Linux would have merged.
    void merge_around(std::uint64_t start, std::uint64_t end);
    void insert_vma(Vma vma);
    // munmap's core, after its checks: frames deferred, PTEs and VMAs gone.
    void unmap_range(std::uint64_t start, std::uint64_t end);
    // Puts a new anonymous or file mapping at [start, start + len), replacing
    // what is there (checked by the caller). 0 or -errno (nothing changed).
    std::int64_t place_mapping(Vma vma, bool large_frames);
    // Applies `change` to every VMA in [start, end) after cutting them at
    // its ends, then merges; VMAs that `change` leaves unchanged merge back.
    void change_vmas(std::uint64_t start, std::uint64_t end,
                     const std::function<void(Vma&)>& change);
    // Frees what deferral was keeping when no translation needs a flush.
    void settle();
    static PageFlags user_flags(int prot);
    // Whether every byte of [va, va + size) lies in VMAs allowing `access`
    // (0: any mapping); wraps and user_end fail.
    bool accessible(std::uint64_t va, std::uint64_t size, int access) const;
    // Copies between guest-virtual memory and `bytes` (checked before).
    void copy_pages(std::uint64_t va, std::span<std::byte> out) const;
    void store_pages(std::uint64_t va, std::span<const std::byte> in);
    std::uint64_t frame_of(std::uint64_t va) const; // a mapped page's gpa

    mutable std::mutex mutex_;
    Layout layout_;
    FrameAllocator data_frames_;
    FrameAllocator table_frames_;
    PageTables tables_;
    std::map<std::uint64_t, Vma> vmas_;                                    // by start
    std::map<std::uint64_t, std::uint64_t> supervisor_;                    // start -> end
    std::set<std::uint64_t> loader_frames_;                                // from alloc_frames
    std::vector<std::pair<std::uint64_t, std::uint64_t>> deferred_frames_; // gpa, size
    std::uint64_t brk_base_ = 0;
    std::uint64_t brk_ = 0;
    bool brk_set_ = false;
    bool lock_future_ = false; // mlockall(MCL_FUTURE)
};

} // namespace minivmm::linux_abi
