#include "program/process_memory.hpp"

#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "minivmm/error.hpp"

namespace minivmm::linux_abi {

namespace {

// x86-64 Linux's values (include/uapi/asm-generic/mman*.h,
// arch/x86/include/uapi/asm/mman.h), spelled here so that the host's
// headers' age does not matter.
constexpr std::uint64_t kProtRead = 0x1, kProtWrite = 0x2, kProtExec = 0x4, kProtSem = 0x8,
                        kProtGrowsDown = 0x01000000, kProtGrowsUp = 0x02000000;
constexpr int kProtAll = 0x7;
constexpr std::uint64_t kMapShared = 0x01, kMapPrivate = 0x02, kMapSharedValidate = 0x03,
                        kMapType = 0x0f, kMapFixed = 0x10, kMapAnonymous = 0x20, kMap32Bit = 0x40,
                        kMapAbove4G = 0x80, kMapGrowsDown = 0x100, kMapDenyWrite = 0x800,
                        kMapExecutable = 0x1000, kMapLocked = 0x2000, kMapNoReserve = 0x4000,
                        kMapPopulate = 0x8000, kMapNonBlock = 0x10000, kMapStack = 0x20000,
                        kMapHugeTlb = 0x40000, kMapFixedNoReplace = 0x100000,
                        kMapUninitialized = 0x4000000;
// include/linux/mman.h: the flags MAP_SHARED_VALIDATE accepts on any file.
constexpr std::uint64_t kLegacyMapMask = kMapShared | kMapPrivate | kMapFixed | kMapAnonymous |
                                         kMapDenyWrite | kMapExecutable | kMapUninitialized |
                                         kMapGrowsDown | kMapLocked | kMapNoReserve | kMapPopulate |
                                         kMapNonBlock | kMapStack | kMapHugeTlb;
constexpr std::uint64_t kMremapMayMove = 1, kMremapFixed = 2;
constexpr std::uint64_t kMsAsync = 1, kMsInvalidate = 2, kMsSync = 4;
constexpr std::uint64_t kMclCurrent = 1, kMclFuture = 2, kMclOnFault = 4;
constexpr std::uint64_t kMlockOnFault = 1;
enum Advice : int {
    kMadvNormal = 0,
    kMadvRandom = 1,
    kMadvSequential = 2,
    kMadvWillNeed = 3,
    kMadvDontNeed = 4,
    kMadvFree = 8,
    kMadvRemove = 9,
    kMadvDontFork = 10,
    kMadvDoFork = 11,
    kMadvMergeable = 12,
    kMadvUnmergeable = 13,
    kMadvHugePage = 14,
    kMadvNoHugePage = 15,
    kMadvDontDump = 16,
    kMadvDoDump = 17,
    kMadvWipeOnFork = 18,
    kMadvKeepOnFork = 19,
    kMadvCold = 20,
    kMadvPageOut = 21,
    kMadvPopulateRead = 22,
    kMadvPopulateWrite = 23,
    kMadvDontNeedLocked = 24,
    kMadvCollapse = 25,
    kMadvHwPoison = 100,
    kMadvSoftOffline = 101,
};

constexpr std::uint64_t kSysMmap = 9, kSysMprotect = 10, kSysMunmap = 11, kSysBrk = 12,
                        kSysMremap = 25, kSysMsync = 26, kSysMincore = 27, kSysMadvise = 28,
                        kSysMlock = 149, kSysMunlock = 150, kSysMlockall = 151,
                        kSysMunlockall = 152, kSysMlock2 = 325, kSysPkeyMprotect = 329;

constexpr std::uint64_t kLow2GiBStart = 0x40000000, kLow2GiBEnd = 0x80000000; // MAP_32BIT
constexpr std::uint64_t k4GiB = 1ull << 32;

// Linux's PAGE_ALIGN: wraps to 0 past the top, which callers check.
constexpr std::uint64_t page_align(std::uint64_t v) {
    return (v + kPageSize - 1) & ~(kPageSize - 1);
}
constexpr std::uint64_t page_down(std::uint64_t v) {
    return v & ~(kPageSize - 1);
}
constexpr bool page_aligned(std::uint64_t v) {
    return v % kPageSize == 0;
}
constexpr std::uint64_t align_down(std::uint64_t v, std::uint64_t a) {
    return v & ~(a - 1);
}
constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
    return (v + a - 1) & ~(a - 1);
}

int int_arg(std::uint64_t reg) {
    return static_cast<int>(static_cast<std::uint32_t>(reg));
}

bool mergeable(const Vma& a, const Vma& b) {
    return a.end == b.start && a.prot == b.prot && a.max_prot == b.max_prot &&
           a.shared == b.shared && a.grows_down == b.grows_down && a.locked == b.locked &&
           a.dont_fork == b.dont_fork && a.wipe_on_fork == b.wipe_on_fork &&
           a.backing == b.backing && a.backing != Vma::Backing::frames && a.name == b.name &&
           (a.backing != Vma::Backing::file ||
            (a.file == b.file && a.offset + a.size() == b.offset));
}

std::string host_path_of(int fd) {
    std::array<char, 4096> buf{};
    std::string link = fmt::format("/proc/self/fd/{}", fd);
    ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size() - 1);
    return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string{};
}

} // namespace

// Where find_free looks: [low, high), from the top or from the bottom.
struct ProcessMemory::SearchArea {
    std::uint64_t low = 0;
    std::uint64_t high = 0;
    bool top_down = true;
};

ProcessMemory::ProcessMemory(PhysicalRange data, PhysicalRange tables, Layout layout)
    : layout_(layout), data_frames_(data), table_frames_(tables), tables_(table_frames_) {
    if (!(layout.min_addr <= layout.mmap_top && layout.mmap_top <= layout.user_end &&
          layout.user_end <= kLowerHalfEnd && page_aligned(layout.min_addr) &&
          page_aligned(layout.mmap_top) && page_aligned(layout.user_end)))
        throw ConfigError("process memory layout: need page-aligned min_addr <= mmap_top <= "
                          "user_end <= 2^47");
    if (data.gpa < tables.gpa + tables.host.size() && tables.gpa < data.gpa + data.host.size())
        throw ConfigError("process memory: the data and page-table ranges overlap");
}

ProcessMemory::~ProcessMemory() = default;

PageFlags ProcessMemory::user_flags(int prot) {
    return PageFlags{.writable = (prot & kProtWrite) != 0,
                     .user = true,
                     .executable = (prot & kProtExec) != 0,
                     .present = (prot & kProtAll) != 0};
}

// ---------------------------------------------------------------------------
// The address space: VMAs, supervisor ranges, free runs.

std::map<std::uint64_t, Vma>::iterator ProcessMemory::vma_at_or_above(std::uint64_t va) {
    auto it = vmas_.upper_bound(va);
    if (it != vmas_.begin()) {
        auto prev = std::prev(it);
        if (prev->second.end > va) return prev;
    }
    return it;
}

std::map<std::uint64_t, Vma>::const_iterator
ProcessMemory::vma_at_or_above(std::uint64_t va) const {
    auto it = vmas_.upper_bound(va);
    if (it != vmas_.begin()) {
        auto prev = std::prev(it);
        if (prev->second.end > va) return prev;
    }
    return it;
}

const Vma* ProcessMemory::vma_containing(std::uint64_t va) const {
    auto it = vma_at_or_above(va);
    if (it == vmas_.end() || it->second.start > va) return nullptr;
    return &it->second;
}

bool ProcessMemory::overlaps_supervisor(std::uint64_t start, std::uint64_t end) const {
    auto it = supervisor_.upper_bound(start);
    if (it != supervisor_.begin() && std::prev(it)->second > start) return true;
    return it != supervisor_.end() && it->first < end;
}

bool ProcessMemory::taken(std::uint64_t start, std::uint64_t end, bool guard_gaps) const {
    if (overlaps_supervisor(start, end)) return true;
    const std::uint64_t reach = guard_gaps ? end + kStackGuardGap : end;
    for (auto it = vma_at_or_above(start); it != vmas_.end() && it->first < reach; ++it) {
        const Vma& v = it->second;
        // vm_start_gap: nothing may come within stack_guard_gap below a
        // stack that grows down.
        std::uint64_t from = v.start;
        if (guard_gaps && v.grows_down) from = from > kStackGuardGap ? from - kStackGuardGap : 0;
        if (from < end && v.end > start) return true;
    }
    return false;
}

std::optional<std::uint64_t> ProcessMemory::find_free(std::uint64_t len, const SearchArea& area,
                                                      std::uint64_t align) const {
    if (area.high <= area.low || len > area.high - area.low) return std::nullopt;
    // The blockers of [lo, hi): the lowest start (stack gaps included) and
    // the highest end among the VMAs and supervisor ranges meeting it.
    auto blockers =
        [this](std::uint64_t lo,
               std::uint64_t hi) -> std::optional<std::pair<std::uint64_t, std::uint64_t>> {
        std::optional<std::pair<std::uint64_t, std::uint64_t>> found;
        auto note = [&found](std::uint64_t from, std::uint64_t to) {
            if (!found) {
                found = std::pair{from, to};
            } else {
                found->first = std::min(found->first, from);
                found->second = std::max(found->second, to);
            }
        };
        for (auto it = vma_at_or_above(lo); it != vmas_.end() && it->first < hi + kStackGuardGap;
             ++it) {
            const Vma& v = it->second;
            std::uint64_t from = v.start;
            if (v.grows_down) from = from > kStackGuardGap ? from - kStackGuardGap : 0;
            if (from < hi && v.end > lo) note(from, v.end);
        }
        auto s = supervisor_.upper_bound(lo);
        if (s != supervisor_.begin()) --s;
        for (; s != supervisor_.end() && s->first < hi; ++s)
            if (s->second > lo) note(s->first, s->second);
        return found;
    };
    if (area.top_down) {
        std::uint64_t end = area.high;
        while (end >= area.low + len) {
            std::uint64_t start = align_down(end - len, align);
            if (start < area.low) return std::nullopt;
            auto blocked = blockers(start, start + len);
            if (!blocked) return start;
            end = blocked->first; // below every blocker met
        }
        return std::nullopt;
    }
    std::uint64_t start = align_up(area.low, align);
    while (start >= area.low && start <= area.high - len) {
        auto blocked = blockers(start, start + len);
        if (!blocked) return start;
        start = align_up(blocked->second, align);
    }
    return std::nullopt;
}

std::int64_t ProcessMemory::unmapped_area(std::uint64_t hint, std::uint64_t len,
                                          std::uint64_t flags, bool thp_aligned) const {
    // arch/x86/kernel/sys_x86_64.c: arch_get_unmapped_area(_topdown).
    if (len > layout_.user_end) return -ENOMEM;
    if (flags & kMap32Bit) {
        SearchArea low2g{std::max(kLow2GiBStart, layout_.min_addr), kLow2GiBEnd, false};
        if (len > low2g.high) return -ENOMEM;
        if (hint) {
            hint = page_align(hint);
            if (hint != 0 && low2g.high - len >= hint && !taken(hint, hint + len, true))
                return static_cast<std::int64_t>(hint);
        }
        auto found = find_free(len, low2g, kPageSize);
        return found ? static_cast<std::int64_t>(*found) : -ENOMEM;
    }
    if (hint && hint <= layout_.user_end - len && !taken(hint, hint + len, true))
        return static_cast<std::int64_t>(hint);
    std::uint64_t low = layout_.min_addr;
    if (flags & kMapAbove4G) low = std::max(low, k4GiB);
    SearchArea below_top{low, layout_.mmap_top, true};
    // Since Linux 6.7, anonymous mappings of whole 2 MiB multiples are put
    // 2 MiB-aligned (thp_get_unmapped_area), so that huge pages can back them.
    if (thp_aligned) {
        if (auto found = find_free(len, below_top, kLargePageSize))
            return static_cast<std::int64_t>(*found);
    }
    if (auto found = find_free(len, below_top, kPageSize)) return static_cast<std::int64_t>(*found);
    // Linux falls back to a bottom-up search of the whole space.
    if (auto found = find_free(len, SearchArea{low, layout_.user_end, false}, kPageSize))
        return static_cast<std::int64_t>(*found);
    return -ENOMEM;
}

void ProcessMemory::split_at(std::uint64_t va) {
    auto it = vmas_.upper_bound(va);
    if (it == vmas_.begin()) return;
    --it;
    Vma& left = it->second;
    if (!(left.start < va && va < left.end)) return;
    Vma right = left;
    right.start = va;
    if (right.backing == Vma::Backing::file) right.offset += va - left.start;
    left.end = va;
    vmas_.emplace(va, std::move(right));
}

void ProcessMemory::erase_vmas(std::uint64_t start, std::uint64_t end) {
    split_at(start);
    split_at(end);
    vmas_.erase(vmas_.lower_bound(start), vmas_.lower_bound(end));
}

void ProcessMemory::merge_around(std::uint64_t start, std::uint64_t end) {
    auto it = vma_at_or_above(start > 0 ? start - 1 : 0);
    while (it != vmas_.end() && it->first <= end) {
        auto next = std::next(it);
        if (next == vmas_.end() || next->first > end) break;
        if (mergeable(it->second, next->second)) {
            it->second.end = next->second.end;
            vmas_.erase(next);
        } else {
            it = next;
        }
    }
}

void ProcessMemory::insert_vma(Vma vma) {
    std::uint64_t start = vma.start, end = vma.end;
    vmas_.emplace(start, std::move(vma));
    merge_around(start, end);
}

void ProcessMemory::change_vmas(std::uint64_t start, std::uint64_t end,
                                const std::function<void(Vma&)>& change) {
    split_at(start);
    split_at(end);
    for (auto it = vmas_.lower_bound(start); it != vmas_.end() && it->first < end; ++it)
        change(it->second);
    merge_around(start, end);
}

// ---------------------------------------------------------------------------
// Frames.

std::optional<std::vector<LeafRange>> ProcessMemory::allocate(std::uint64_t start,
                                                              std::uint64_t end, bool large) {
    std::vector<LeafRange> pieces;
    if (data_frames_.free_bytes() < end - start) return std::nullopt;
    auto add = [&pieces](std::uint64_t va, std::uint64_t gpa, std::uint64_t size) {
        if (!pieces.empty() && pieces.back().va + pieces.back().size == va &&
            pieces.back().pa + pieces.back().size == gpa) {
            pieces.back().size += size;
        } else {
            pieces.push_back(LeafRange{va, gpa, size, {}});
        }
    };
    bool large_left = large;
    for (std::uint64_t at = start; at < end;) {
        if (large_left && at % kLargePageSize == 0 && end - at >= kLargePageSize) {
            if (auto gpa = data_frames_.alloc_2m()) {
                add(at, *gpa, kLargePageSize);
                at += kLargePageSize;
                continue;
            }
            large_left = false; // no 2 MiB run left: 4 KiB frames from here on
        }
        auto gpa = data_frames_.alloc_4k();
        if (!gpa) {
            free_now(pieces);
            return std::nullopt;
        }
        add(at, *gpa, kPageSize);
        at += kPageSize;
    }
    return pieces;
}

void ProcessMemory::free_now(const std::vector<LeafRange>& pieces) {
    for (const LeafRange& p : pieces)
        data_frames_.free(p.pa, p.size);
}

int ProcessMemory::fill_from_file(const std::vector<LeafRange>& pieces, std::uint64_t start,
                                  const OpenFile& file, std::uint64_t offset) {
    for (const LeafRange& p : pieces) {
        std::span<std::byte> dest = data_frames_.host(p.pa, p.size);
        std::uint64_t at = offset + (p.va - start);
        std::size_t done = 0;
        while (done < dest.size() && at + done <= static_cast<std::uint64_t>(LLONG_MAX)) {
            ssize_t n = ::pread(file.host.get(), dest.data() + done, dest.size() - done,
                                static_cast<off_t>(at + done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return -errno;
            if (n == 0) break; // past the end of the file: the frames stay zero
            done += static_cast<std::size_t>(n);
        }
    }
    return 0;
}

bool ProcessMemory::reserve_tables(const std::vector<LeafRange>& pieces, std::size_t extra) {
    return tables_.reserve(tables_.tables_needed_to_map(pieces) + extra);
}

void ProcessMemory::map_pieces(const std::vector<LeafRange>& pieces, PageFlags flags) {
    for (const LeafRange& p : pieces)
        tables_.map(p.va, p.pa, p.size, flags);
}

void ProcessMemory::release_frames(std::uint64_t start, std::uint64_t end) {
    for (auto it = vma_at_or_above(start); it != vmas_.end() && it->first < end; ++it) {
        const Vma& v = it->second;
        if (!v.owns_frames()) continue;
        std::uint64_t from = std::max(start, v.start), to = std::min(end, v.end);
        tables_.for_each_leaf(from, to - from, [this](const LeafRange& leaf) {
            if (!deferred_frames_.empty() &&
                deferred_frames_.back().first + deferred_frames_.back().second == leaf.pa) {
                deferred_frames_.back().second += leaf.size;
            } else {
                deferred_frames_.emplace_back(leaf.pa, leaf.size);
            }
        });
    }
}

void ProcessMemory::settle() {
    tables_.release_reserve();
    if (tables_.shootdown_needed() || deferred_frames_.empty()) return;
    // Nothing a vCPU could still be using was removed: no need to wait.
    std::sort(deferred_frames_.begin(), deferred_frames_.end());
    for (auto [gpa, size] : deferred_frames_)
        data_frames_.free(gpa, size);
    deferred_frames_.clear();
}

void ProcessMemory::unmap_range(std::uint64_t start, std::uint64_t end) {
    release_frames(start, end);
    tables_.unmap(start, end - start);
    erase_vmas(start, end);
}

std::int64_t ProcessMemory::place_mapping(Vma vma, bool large_frames) {
    auto pieces = allocate(vma.start, vma.end, large_frames);
    if (!pieces) return -ENOMEM;
    if (vma.backing == Vma::Backing::file) {
        if (int err = fill_from_file(*pieces, vma.start, *vma.file, vma.offset); err != 0) {
            free_now(*pieces);
            return err;
        }
    }
    if (!reserve_tables(*pieces, 0)) {
        free_now(*pieces);
        return -ENOMEM;
    }
    // Nothing can fail from here on. The new entries replace the old ones
    // in place (MAP_FIXED), whose frames wait for the shootdown.
    release_frames(vma.start, vma.end);
    map_pieces(*pieces, user_flags(vma.prot));
    erase_vmas(vma.start, vma.end);
    std::uint64_t start = vma.start;
    insert_vma(std::move(vma));
    return static_cast<std::int64_t>(start);
}

// ---------------------------------------------------------------------------
// The loader's side.

void ProcessMemory::map_anonymous_fixed(std::uint64_t va, std::uint64_t size, int prot,
                                        std::string name) {
    std::lock_guard lock(mutex_);
    if (!page_aligned(va) || !page_aligned(size) || size == 0 || va < layout_.min_addr ||
        va > layout_.user_end || size > layout_.user_end - va)
        throw ConfigError(
            fmt::format("mapping {:#x}+{:#x}: not page aligned or outside user space", va, size));
    if (taken(va, va + size, false))
        throw ConfigError(fmt::format("mapping {:#x}+{:#x}: overlaps another mapping", va, size));
    Vma vma;
    vma.start = va;
    vma.end = va + size;
    vma.prot = prot & kProtAll;
    vma.name = std::move(name);
    std::int64_t r = place_mapping(std::move(vma), true);
    settle();
    if (r < 0)
        throw ConfigError(fmt::format("guest RAM is full: no frames for {:#x} bytes at {:#x} ({} "
                                      "bytes of data, {} of page tables free)",
                                      size, va, data_frames_.free_bytes(),
                                      table_frames_.free_bytes()));
}

std::optional<std::uint64_t> ProcessMemory::free_area(std::uint64_t len,
                                                      std::uint64_t align) const {
    std::lock_guard lock(mutex_);
    if (len == 0 || !page_aligned(len) || !std::has_single_bit(align) || align < kPageSize)
        return std::nullopt;
    return find_free(len, SearchArea{layout_.min_addr, layout_.mmap_top, true}, align);
}

std::vector<std::uint64_t> ProcessMemory::alloc_frames(std::size_t count) {
    std::lock_guard lock(mutex_);
    std::vector<std::uint64_t> frames;
    for (std::size_t i = 0; i < count; ++i) {
        auto gpa = data_frames_.alloc_4k();
        if (!gpa) {
            for (std::uint64_t f : frames)
                data_frames_.free_4k(f);
            throw ConfigError(fmt::format("guest RAM is full: {} frames for the loader", count));
        }
        frames.push_back(*gpa);
    }
    loader_frames_.insert(frames.begin(), frames.end());
    return frames;
}

std::span<std::byte> ProcessMemory::frame_bytes(std::uint64_t gpa, std::uint64_t size) {
    std::lock_guard lock(mutex_);
    return data_frames_.host(gpa, size);
}

void ProcessMemory::map_frames(std::uint64_t va, std::span<const std::uint64_t> gpas, int prot,
                               std::string name) {
    std::lock_guard lock(mutex_);
    const std::uint64_t size = gpas.size() * kPageSize;
    if (!page_aligned(va) || gpas.empty() || va < layout_.min_addr || va > layout_.user_end ||
        size > layout_.user_end - va)
        throw ConfigError(fmt::format("mapping {:#x}: not page aligned or outside user space", va));
    if (taken(va, va + size, false))
        throw ConfigError(fmt::format("mapping {:#x}+{:#x}: overlaps another mapping", va, size));
    std::vector<LeafRange> runs;
    for (std::size_t i = 0; i < gpas.size(); ++i) {
        if (!loader_frames_.contains(gpas[i]))
            throw ConfigError(fmt::format("frame {:#x} did not come from alloc_frames", gpas[i]));
        runs.push_back(LeafRange{va + i * kPageSize, gpas[i], kPageSize, {}});
    }
    if (!reserve_tables(runs, 0)) throw PageTablesFull();
    map_pieces(runs, user_flags(prot));
    Vma vma;
    vma.start = va;
    vma.end = va + size;
    vma.prot = prot & kProtAll;
    vma.max_prot = prot & kProtAll;
    vma.backing = Vma::Backing::frames;
    vma.name = std::move(name);
    insert_vma(std::move(vma));
    settle();
}

bool ProcessMemory::poke(std::uint64_t va, std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    if (!accessible(va, bytes.size(), 0)) return false;
    store_pages(va, bytes);
    return true;
}

bool ProcessMemory::peek(std::uint64_t va, std::span<std::byte> out) const {
    std::lock_guard lock(mutex_);
    if (!accessible(va, out.size(), 0)) return false;
    copy_pages(va, out);
    return true;
}

void ProcessMemory::set_brk_base(std::uint64_t va) {
    std::lock_guard lock(mutex_);
    if (va < layout_.min_addr || va >= layout_.user_end)
        throw ConfigError(fmt::format("brk base {:#x} outside user space", va));
    brk_base_ = brk_ = va;
    brk_set_ = true;
}

void ProcessMemory::map_supervisor(std::uint64_t va, std::uint64_t gpa, std::uint64_t size,
                                   bool writable, bool executable) {
    std::lock_guard lock(mutex_);
    if (!page_aligned(va) || !page_aligned(gpa) || !page_aligned(size) || size == 0 ||
        va > kLowerHalfEnd || size > kLowerHalfEnd - va)
        throw ConfigError(fmt::format(
            "supervisor mapping {:#x}+{:#x}: not page aligned or not below 2^47", va, size));
    const PhysicalRange& data = data_frames_.range();
    if (gpa < data.gpa + data.host.size() && data.gpa < gpa + size)
        throw ConfigError(fmt::format(
            "supervisor mapping of {:#x}+{:#x}: frames of the program's data range", gpa, size));
    if (taken(va, va + size, false))
        throw ConfigError(
            fmt::format("supervisor mapping {:#x}+{:#x}: overlaps another mapping", va, size));
    if (!tables_.reserve(tables_.tables_needed_to_map(va, gpa, size))) throw PageTablesFull();
    tables_.map(va, gpa, size, PageFlags{writable, false, executable, true});
    supervisor_.emplace(va, va + size);
    settle();
}

// ---------------------------------------------------------------------------
// Copies.

bool ProcessMemory::accessible(std::uint64_t va, std::uint64_t size, int access) const {
    if (size == 0) return true;
    if (va >= layout_.user_end || size > layout_.user_end - va) return false;
    for (std::uint64_t at = va; at < va + size;) {
        const Vma* v = vma_containing(at);
        if (!v) return false;
        if (access == kProtRead && (v->prot & kProtAll) == 0) return false;
        if (access == kProtWrite && !(v->prot & kProtWrite)) return false;
        at = v->end;
    }
    return true;
}

std::uint64_t ProcessMemory::frame_of(std::uint64_t va) const {
    auto found = tables_.lookup(page_down(va));
    if (!found) throw std::logic_error("ProcessMemory: a page of a mapping has no frame");
    return found->pa;
}

void ProcessMemory::copy_pages(std::uint64_t va, std::span<std::byte> out) const {
    for (std::size_t done = 0; done < out.size();) {
        std::uint64_t at = va + done;
        std::size_t chunk = static_cast<std::size_t>(
            std::min<std::uint64_t>(out.size() - done, kPageSize - at % kPageSize));
        auto src = data_frames_.host(frame_of(at) + at % kPageSize, chunk);
        std::memcpy(out.data() + done, src.data(), chunk);
        done += chunk;
    }
}

void ProcessMemory::store_pages(std::uint64_t va, std::span<const std::byte> in) {
    for (std::size_t done = 0; done < in.size();) {
        std::uint64_t at = va + done;
        std::size_t chunk = static_cast<std::size_t>(
            std::min<std::uint64_t>(in.size() - done, kPageSize - at % kPageSize));
        auto dest = data_frames_.host(frame_of(at) + at % kPageSize, chunk);
        std::memcpy(dest.data(), in.data() + done, chunk);
        done += chunk;
    }
}

bool ProcessMemory::copy_in(std::uint64_t va, std::span<std::byte> out) const {
    std::lock_guard lock(mutex_);
    if (!accessible(va, out.size(), kProtRead)) return false;
    copy_pages(va, out);
    return true;
}

bool ProcessMemory::copy_out(std::uint64_t va, std::span<const std::byte> in) {
    std::lock_guard lock(mutex_);
    if (!accessible(va, in.size(), kProtWrite)) return false;
    store_pages(va, in);
    return true;
}

// ---------------------------------------------------------------------------
// The system calls.

std::optional<std::int64_t> ProcessMemory::call(const SyscallArgs& args, FileTable& files) {
    const auto& a = args.a;
    std::lock_guard lock(mutex_);
    std::int64_t result;
    switch (args.nr) {
    case kSysMmap:
        result = mmap(a[0], a[1], a[2], a[3], int_arg(a[4]), a[5], files);
        break;
    case kSysMprotect:
        result = mprotect(a[0], a[1], a[2], -1);
        break;
    case kSysPkeyMprotect:
        result = mprotect(a[0], a[1], a[2], int_arg(a[3]));
        break;
    case kSysMunmap:
        result = munmap(a[0], a[1]);
        break;
    case kSysBrk:
        result = brk_call(a[0]);
        break;
    case kSysMremap:
        result = mremap(a[0], a[1], a[2], a[3], a[4]);
        break;
    case kSysMsync:
        result = msync(a[0], a[1], static_cast<std::uint32_t>(a[2]));
        break;
    case kSysMincore:
        result = mincore(a[0], a[1], a[2]);
        break;
    case kSysMadvise:
        result = madvise(a[0], a[1], static_cast<std::uint32_t>(a[2]));
        break;
    case kSysMlock:
        result = mlock(a[0], a[1], true);
        break;
    case kSysMlock2:
        result =
            (static_cast<std::uint32_t>(a[2]) & ~kMlockOnFault) ? -EINVAL : mlock(a[0], a[1], true);
        break;
    case kSysMunlock:
        result = mlock(a[0], a[1], false);
        break;
    case kSysMlockall:
        result = mlockall(static_cast<std::uint32_t>(a[0]));
        break;
    case kSysMunlockall:
        lock_future_ = false;
        change_vmas(0, layout_.user_end, [](Vma& v) { v.locked = false; });
        result = 0;
        break;
    default:
        return std::nullopt;
    }
    settle();
    return result;
}

std::int64_t ProcessMemory::mmap(std::uint64_t addr, std::uint64_t len, std::uint64_t prot,
                                 std::uint64_t flags, int fd, std::uint64_t offset,
                                 FileTable& files) {
    // arch/x86/kernel/sys_x86_64.c: the offset must be page aligned.
    if (!page_aligned(offset)) return -EINVAL;
    // mm/mmap.c ksys_mmap_pgoff: the file first (MAP_ANONYMOUS ignores fd).
    std::shared_ptr<const OpenFile> file;
    int file_flags = 0;
    if (!(flags & kMapAnonymous)) {
        file = files.get(fd);
        if (!file) return -EBADF;
        file_flags = ::fcntl(file->host.get(), F_GETFL);
        if (file_flags < 0 || (file_flags & O_PATH)) return -EBADF; // fget skips O_PATH
        if (flags & kMapHugeTlb) return -EINVAL;                    // not a hugetlbfs file
    } else if (flags & kMapHugeTlb) {
        return -ENOMEM; // no huge pages reserved (vm.nr_hugepages = 0)
    }

    // do_mmap.
    if (len == 0) return -EINVAL;
    if (flags & kMapFixedNoReplace) flags |= kMapFixed;
    if (!(flags & kMapFixed)) {
        // round_hint_to_min: a hint below mmap_min_addr is moved up to it.
        addr = page_down(addr);
        if (addr != 0 && addr < layout_.min_addr) addr = layout_.min_addr;
    }
    len = page_align(len);
    if (len == 0) return -ENOMEM;
    const std::uint64_t pgoff = offset / kPageSize;
    if (pgoff + len / kPageSize < pgoff) return -EOVERFLOW;
    if (vmas_.size() > kMaxMapCount) return -ENOMEM;

    // get_unmapped_area.
    const std::uint64_t type = flags & kMapType;
    std::uint64_t start;
    if (len > layout_.user_end) return -ENOMEM;
    if (flags & kMapFixed) {
        start = addr;
    } else {
        bool thp = !file && type == kMapPrivate && addr == 0 && len % kLargePageSize == 0;
        std::int64_t found = unmapped_area(addr, len, flags, thp);
        if (found < 0) return found;
        start = static_cast<std::uint64_t>(found);
    }
    if (start > layout_.user_end - len) return -ENOMEM;
    if (!page_aligned(start)) return -EINVAL;
    if (start < layout_.min_addr) return -EPERM; // security_mmap_addr
    // The runner's own pages are outside the program's address space.
    if (overlaps_supervisor(start, start + len)) return -ENOMEM;
    if ((flags & kMapFixedNoReplace) && taken(start, start + len, false)) return -EEXIST;

    Vma vma;
    vma.start = start;
    vma.end = start + len;
    vma.prot = static_cast<int>(prot) & kProtAll;
    vma.grows_down = (flags & kMapGrowsDown) != 0;
    vma.locked = (flags & kMapLocked) || lock_future_;
    if (file) {
        struct stat st {};
        if (::fstat(file->host.get(), &st) != 0) return -errno;
        // file_mmap_ok: the mapped file range must fit the file's offsets.
        std::uint64_t max_size =
            (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) || S_ISSOCK(st.st_mode))
                ? static_cast<std::uint64_t>(LLONG_MAX)
                : ~std::uint64_t{0};
        if (len > max_size || pgoff > (max_size - len) / kPageSize) return -EOVERFLOW;
        const int access = file_flags & O_ACCMODE;
        const bool readable = access == O_RDONLY || access == O_RDWR;
        const bool writable = access == O_WRONLY || access == O_RDWR;
        switch (type) {
        case kMapShared:
            flags &= kLegacyMapMask;
            [[fallthrough]];
        case kMapSharedValidate:
            if (flags & ~kLegacyMapMask) return -EOPNOTSUPP;
            if ((prot & kProtWrite) && !writable) return -EACCES;
            [[fallthrough]];
        case kMapPrivate: {
            if (!readable) return -EACCES;
            struct statvfs fs {};
            if (::fstatvfs(file->host.get(), &fs) == 0 && (fs.f_flag & ST_NOEXEC)) {
                if (prot & kProtExec) return -EPERM;
                vma.max_prot &= ~static_cast<int>(kProtExec);
            }
            // Files whose bytes a copy can stand for: regular files, block
            // devices, /dev/zero. Others have no mmap here (pipes, sockets,
            // directories, terminals, other devices), as in Linux mostly.
            bool copyable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode) ||
                            (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 5));
            if (!copyable) return -ENODEV;
            if (vma.grows_down) return -EINVAL;
            // Shared file mappings: -ENODEV (see the header), after Linux's
            // own checks above have had their say.
            if (type != kMapPrivate) return -ENODEV;
            break;
        }
        default:
            return -EINVAL;
        }
        vma.backing = Vma::Backing::file;
        vma.file = file;
        vma.offset = offset;
        vma.name = host_path_of(file->host.get());
    } else {
        switch (type) {
        case kMapShared:
            if (vma.grows_down) return -EINVAL;
            vma.shared = true; // one process: nobody to share with yet
            break;
        case kMapPrivate:
            break;
        default:
            return -EINVAL;
        }
    }
    // MAP_POPULATE, MAP_NONBLOCK, MAP_NORESERVE, MAP_STACK, MAP_DENYWRITE,
    // MAP_EXECUTABLE, MAP_UNINITIALIZED: every mapping is populated at once,
    // never reserved against swap; the rest Linux itself ignores.
    return place_mapping(std::move(vma), !file);
}

std::int64_t ProcessMemory::munmap(std::uint64_t addr, std::uint64_t len) {
    // mm/mmap.c do_vmi_munmap.
    if (!page_aligned(addr) || addr > layout_.user_end || len > layout_.user_end - addr)
        return -EINVAL;
    len = page_align(len);
    if (len == 0) return -EINVAL;
    const std::uint64_t end = addr + len;
    if (overlaps_supervisor(addr, end)) return -EINVAL; // not the program's to unmap
    const Vma* first = vma_containing(addr);
    const Vma* last = vma_containing(end - 1);
    bool splits = (first && first->start < addr) || (last && last->end > end);
    if (splits && vmas_.size() >= kMaxMapCount) return -ENOMEM;
    if (!tables_.reserve(tables_.tables_needed_to_split(addr, len))) return -ENOMEM;
    unmap_range(addr, end);
    return 0;
}

std::int64_t ProcessMemory::mprotect(std::uint64_t start, std::uint64_t len, std::uint64_t prot,
                                     std::int64_t pkey) {
    // mm/mprotect.c do_mprotect_pkey.
    const std::uint64_t grows = prot & (kProtGrowsDown | kProtGrowsUp);
    prot &= ~(kProtGrowsDown | kProtGrowsUp);
    if (grows == (kProtGrowsDown | kProtGrowsUp)) return -EINVAL;
    if (!page_aligned(start)) return -EINVAL;
    if (len == 0) return 0;
    len = page_align(len);
    std::uint64_t end = start + len;
    if (end <= start) return -ENOMEM;
    if (prot & ~(kProtRead | kProtWrite | kProtExec | kProtSem)) return -EINVAL;
    // Only key 0, which every process has (no PKU keys are handed out).
    if (pkey != -1 && pkey != 0) return -EINVAL;
    auto it = vma_at_or_above(start);
    if (it == vmas_.end() || it->second.start >= end) return -ENOMEM;
    if (grows & kProtGrowsDown) {
        start = it->second.start;
        if (!it->second.grows_down) return -EINVAL;
    } else {
        if (it->second.start > start) return -ENOMEM;
        if (grows & kProtGrowsUp) return -EINVAL; // no VM_GROWSUP on x86
    }
    // VMA by VMA, stopping at a hole (-ENOMEM) or at one that may not get
    // `prot` (-EACCES); what came before stays changed, as in Linux.
    std::int64_t error = 0;
    std::uint64_t reached = start;
    for (bool first = true; it != vmas_.end() && it->second.start < end; ++it, first = false) {
        const Vma& v = it->second;
        if (!first && v.start != reached) {
            error = -ENOMEM;
            break;
        }
        if (static_cast<int>(prot) & kProtAll & ~v.max_prot) {
            error = -EACCES;
            break;
        }
        reached = std::min(end, v.end);
    }
    if (error == 0 && reached < end) error = -ENOMEM;
    if (reached > start) {
        if (!tables_.reserve(tables_.tables_needed_to_split(start, reached - start)))
            return -ENOMEM;
        int new_prot = static_cast<int>(prot) & kProtAll;
        tables_.protect(start, reached - start, user_flags(new_prot));
        change_vmas(start, reached, [new_prot](Vma& v) { v.prot = new_prot; });
    }
    return error;
}

std::int64_t ProcessMemory::brk_call(std::uint64_t addr) {
    // mm/mmap.c SYSCALL_DEFINE1(brk): every failure returns the old break.
    const std::uint64_t old_brk = brk_;
    if (!brk_set_ || addr < brk_base_) return static_cast<std::int64_t>(old_brk);
    const std::uint64_t new_end = page_align(addr), old_end = page_align(brk_);
    if (new_end == 0 || new_end > layout_.user_end) return static_cast<std::int64_t>(old_brk);
    if (new_end == old_end) {
        brk_ = addr;
        return static_cast<std::int64_t>(addr);
    }
    if (addr <= brk_) {
        // Shrinking always works (whatever is mapped there goes).
        if (!tables_.reserve(tables_.tables_needed_to_split(new_end, old_end - new_end)))
            return static_cast<std::int64_t>(old_brk);
        unmap_range(new_end, old_end);
        brk_ = addr;
        return static_cast<std::int64_t>(addr);
    }
    // Growing needs the pages and one guard page above them free (a stack's
    // guard gap included).
    if (taken(old_end, new_end + kPageSize, true)) return static_cast<std::int64_t>(old_brk);
    Vma heap;
    heap.start = old_end;
    heap.end = new_end;
    heap.prot = kProtRead | kProtWrite;
    heap.locked = lock_future_;
    heap.name = "[heap]";
    if (place_mapping(std::move(heap), true) < 0) return static_cast<std::int64_t>(old_brk);
    brk_ = addr;
    return static_cast<std::int64_t>(addr);
}

std::int64_t ProcessMemory::mremap(std::uint64_t addr, std::uint64_t old_len, std::uint64_t new_len,
                                   std::uint64_t flags, std::uint64_t new_addr) {
    // mm/mremap.c. MREMAP_DONTUNMAP (Linux 5.7) is unknown here: -EINVAL.
    if (flags & ~(kMremapMayMove | kMremapFixed)) return -EINVAL;
    if ((flags & kMremapFixed) && !(flags & kMremapMayMove)) return -EINVAL;
    if (!page_aligned(addr)) return -EINVAL;
    old_len = page_align(old_len);
    new_len = page_align(new_len);
    if (new_len == 0) return -EINVAL;
    // old_len 0 duplicates a shared mapping; there are none (see header).
    if (old_len == 0) return -EINVAL;
    const Vma* found = vma_containing(addr);
    if (!found) return -EFAULT;
    const Vma vma = *found;

    // vma_to_resize: the old range inside one VMA, growable.
    auto check_resize = [&](std::uint64_t from_len) -> std::int64_t {
        if (from_len > vma.end - addr) return -EFAULT;
        if (new_len == from_len) return 0;
        if (vma.backing == Vma::Backing::file) {
            std::uint64_t pgoff = (vma.offset + (addr - vma.start)) / kPageSize;
            if (pgoff + new_len / kPageSize < pgoff) return -EINVAL;
        }
        if (vma.backing == Vma::Backing::frames) return -EFAULT; // VM_DONTEXPAND
        return 0;
    };

    if (flags & kMremapFixed) {
        // mremap_to.
        if (!page_aligned(new_addr)) return -EINVAL;
        if (new_len > layout_.user_end || new_addr > layout_.user_end - new_len) return -EINVAL;
        if (addr + old_len > new_addr && new_addr + new_len > addr) return -EINVAL;
        if (overlaps_supervisor(new_addr, new_addr + new_len)) return -EINVAL;
        // The old range's tail past new_len goes as munmap would take it.
        if (old_len > new_len && (addr + old_len < addr || addr + old_len > layout_.user_end ||
                                  overlaps_supervisor(addr + new_len, addr + old_len)))
            return -EINVAL;
        if (std::int64_t err = check_resize(std::min(old_len, new_len)); err != 0) return err;
        if (new_addr < layout_.min_addr) return -EPERM;
        // Linux unmaps the target, then the tail of the old range; both
        // happen below once nothing can fail any more.
    } else {
        if (old_len >= new_len) {
            if (old_len == new_len) return static_cast<std::int64_t>(addr);
            std::int64_t r = munmap(addr + new_len, old_len - new_len);
            return r == 0 ? static_cast<std::int64_t>(addr) : r;
        }
        if (std::int64_t err = check_resize(old_len); err != 0) return err;
        // Grow in place when the range after the VMA is free.
        if (old_len == vma.end - addr && addr + new_len <= layout_.user_end &&
            !taken(vma.end, addr + new_len, false)) {
            const std::uint64_t grow_end = addr + new_len;
            auto pieces = allocate(vma.end, grow_end, vma.backing == Vma::Backing::anonymous);
            if (!pieces) return -ENOMEM;
            if (vma.backing == Vma::Backing::file) {
                std::uint64_t at = vma.offset + (vma.end - vma.start);
                if (int err = fill_from_file(*pieces, vma.end, *vma.file, at); err != 0) {
                    free_now(*pieces);
                    return err;
                }
            }
            if (!reserve_tables(*pieces, 0)) {
                free_now(*pieces);
                return -ENOMEM;
            }
            map_pieces(*pieces, user_flags(vma.prot));
            vmas_.at(vma.start).end = grow_end;
            merge_around(vma.start, grow_end);
            return static_cast<std::int64_t>(addr);
        }
        if (!(flags & kMremapMayMove)) return -ENOMEM;
        bool thp =
            vma.backing == Vma::Backing::anonymous && !vma.shared && new_len % kLargePageSize == 0;
        std::int64_t where = unmapped_area(0, new_len, vma.shared ? kMapShared : 0, thp);
        if (where < 0) return where;
        new_addr = static_cast<std::uint64_t>(where);
    }

    // move_vma: the frames of [addr, addr + kept) go to the new place as
    // they are (no copy), with their entries' flags (PROT_NONE stays so).
    const std::uint64_t kept = std::min(old_len, new_len);
    std::vector<LeafRange> moved;
    tables_.for_each_leaf(addr, kept, [&](const LeafRange& leaf) {
        LeafRange to = leaf;
        to.va = new_addr + (leaf.va - addr);
        if (!moved.empty() && moved.back().va + moved.back().size == to.va &&
            moved.back().pa + moved.back().size == to.pa && moved.back().flags == to.flags) {
            moved.back().size += to.size;
        } else {
            moved.push_back(to);
        }
    });
    std::vector<LeafRange> grown;
    if (new_len > old_len) {
        auto pieces = allocate(new_addr + old_len, new_addr + new_len,
                               vma.backing == Vma::Backing::anonymous);
        if (!pieces) return -ENOMEM;
        grown = std::move(*pieces);
        if (vma.backing == Vma::Backing::file) {
            std::uint64_t at = vma.offset + (addr - vma.start) + old_len;
            if (int err = fill_from_file(grown, new_addr + old_len, *vma.file, at); err != 0) {
                free_now(grown);
                return err;
            }
        }
    }
    std::vector<LeafRange> all = moved;
    all.insert(all.end(), grown.begin(), grown.end());
    if (!tables_.reserve(tables_.tables_needed_to_map(all) +
                         tables_.tables_needed_to_split(addr, old_len))) {
        free_now(grown);
        return -ENOMEM;
    }
    // Nothing can fail from here on.
    release_frames(new_addr, new_addr + new_len); // what MREMAP_FIXED replaces
    for (const LeafRange& run : moved)
        tables_.map(run.va, run.pa, run.size, run.flags);
    map_pieces(grown, user_flags(vma.prot));
    if (old_len > kept) release_frames(addr + kept, addr + old_len); // the dropped tail
    tables_.unmap(addr, old_len);
    erase_vmas(addr, addr + old_len);
    erase_vmas(new_addr, new_addr + new_len);
    Vma to = vma;
    to.start = new_addr;
    to.end = new_addr + new_len;
    if (to.backing == Vma::Backing::file) to.offset = vma.offset + (addr - vma.start);
    insert_vma(std::move(to));
    return static_cast<std::int64_t>(new_addr);
}

std::int64_t ProcessMemory::madvise(std::uint64_t start, std::uint64_t len_in,
                                    std::uint64_t advice_arg) {
    // mm/madvise.c do_madvise, as a kernel without transparent huge pages,
    // KSM or the 6.13 guard regions.
    const int advice = static_cast<int>(advice_arg);
    switch (advice) {
    case kMadvNormal:
    case kMadvRandom:
    case kMadvSequential:
    case kMadvWillNeed:
    case kMadvDontNeed:
    case kMadvFree:
    case kMadvRemove:
    case kMadvDontFork:
    case kMadvDoFork:
    case kMadvDontDump:
    case kMadvDoDump:
    case kMadvWipeOnFork:
    case kMadvKeepOnFork:
    case kMadvCold:
    case kMadvPageOut:
    case kMadvPopulateRead:
    case kMadvPopulateWrite:
    case kMadvDontNeedLocked:
    case kMadvHwPoison:
    case kMadvSoftOffline:
        break;
    default:
        return -EINVAL;
    }
    if (!page_aligned(start)) return -EINVAL;
    const std::uint64_t len = page_align(len_in);
    if (len_in != 0 && len == 0) return -EINVAL;
    const std::uint64_t end = start + len;
    if (end < start) return -EINVAL;
    if (end == start) return 0;
    if (advice == kMadvHwPoison || advice == kMadvSoftOffline) return -EPERM; // CAP_SYS_ADMIN

    // VMA by VMA; a hole is remembered (-ENOMEM at the end), an error stops.
    std::int64_t unmapped = 0;
    for (std::uint64_t at = start; at < end;) {
        auto it = vma_at_or_above(at);
        if (it == vmas_.end() || it->second.start >= end) {
            unmapped = -ENOMEM;
            break;
        }
        if (it->second.start > at) {
            unmapped = -ENOMEM;
            at = it->second.start;
        }
        const Vma v = it->second;
        const std::uint64_t to = std::min(end, v.end);
        switch (advice) {
        case kMadvPopulateRead:
        case kMadvPopulateWrite:
            // Everything is populated; what would not fault in is -EINVAL.
            if ((v.prot & kProtAll) == 0) return -EINVAL;
            if (advice == kMadvPopulateWrite && !(v.prot & kProtWrite)) return -EINVAL;
            break;
        case kMadvDontNeed:
        case kMadvDontNeedLocked:
        case kMadvFree:
        case kMadvRemove: {
            if (v.locked && advice != kMadvDontNeedLocked) return -EINVAL;
            const bool private_anonymous = v.backing == Vma::Backing::anonymous && !v.shared;
            if (advice == kMadvFree && !private_anonymous) return -EINVAL;
            if (advice == kMadvRemove) {
                if (v.backing != Vma::Backing::file && !v.shared) return -EINVAL; // no file
                if (!v.shared) return -EACCES; // not a shared writable mapping
            }
            // What the next access sees: zeros for private anonymous memory
            // (and a removed shared one), the file again for a private file
            // mapping, the same pages for shared memory and loader frames.
            bool zero = private_anonymous || (advice == kMadvRemove && v.shared);
            bool reread = v.backing == Vma::Backing::file;
            if (!zero && !reread) break;
            std::vector<LeafRange> leaves;
            tables_.for_each_leaf(at, to - at,
                                  [&leaves](const LeafRange& leaf) { leaves.push_back(leaf); });
            for (const LeafRange& leaf : leaves)
                data_frames_.zero(leaf.pa, leaf.size);
            if (reread) {
                for (const LeafRange& leaf : leaves) {
                    std::uint64_t offset = v.offset + (leaf.va - v.start);
                    if (int err = fill_from_file({leaf}, leaf.va, *v.file, offset); err != 0)
                        return err;
                }
            }
            break;
        }
        case kMadvDontFork:
            change_vmas(at, to, [](Vma& x) { x.dont_fork = true; });
            break;
        case kMadvDoFork:
            change_vmas(at, to, [](Vma& x) { x.dont_fork = false; });
            break;
        case kMadvWipeOnFork:
            if (v.backing == Vma::Backing::file || v.shared) return -EINVAL;
            change_vmas(at, to, [](Vma& x) { x.wipe_on_fork = true; });
            break;
        case kMadvKeepOnFork:
            change_vmas(at, to, [](Vma& x) { x.wipe_on_fork = false; });
            break;
        case kMadvCold:
        case kMadvPageOut:
            if (v.locked) return -EINVAL; // can_madv_lru_vma
            break;
        case kMadvDoDump:
            if (v.backing == Vma::Backing::frames) return -EINVAL; // VM_SPECIAL
            break;
        default:
            break; // hints that change nothing observable here
        }
        at = to;
    }
    return unmapped;
}

std::int64_t ProcessMemory::msync(std::uint64_t start, std::uint64_t len, std::uint64_t flags) {
    // mm/msync.c. No mapping here is shared with a file, so there is
    // nothing to write back: what is left is the checks.
    if (flags & ~(kMsAsync | kMsInvalidate | kMsSync)) return -EINVAL;
    if (!page_aligned(start)) return -EINVAL;
    if ((flags & kMsAsync) && (flags & kMsSync)) return -EINVAL;
    len = page_align(len);
    const std::uint64_t end = start + len;
    if (end < start) return -ENOMEM;
    if (end == start) return 0;
    std::int64_t unmapped = 0;
    for (std::uint64_t at = start; at < end;) {
        auto it = vma_at_or_above(at);
        if (it == vmas_.end()) return -ENOMEM;
        const Vma& v = it->second;
        if (at < v.start) {
            if (flags == kMsAsync) return -ENOMEM;
            at = v.start;
            if (at >= end) return -ENOMEM;
            unmapped = -ENOMEM;
        }
        if ((flags & kMsInvalidate) && v.locked) return -EBUSY;
        at = v.end;
    }
    return unmapped;
}

std::int64_t ProcessMemory::mincore(std::uint64_t start, std::uint64_t len, std::uint64_t vec) {
    // mm/mincore.c: one byte per page, 1 = resident (every mapped page is).
    if (!page_aligned(start)) return -EINVAL;
    std::uint64_t pages = len / kPageSize + (len % kPageSize != 0);
    if (vec > layout_.user_end || pages > layout_.user_end - vec) return -EFAULT; // access_ok
    std::array<std::byte, kPageSize> ones;
    ones.fill(std::byte{1});
    while (pages > 0) {
        const Vma* v = vma_containing(start);
        if (!v) return -ENOMEM;
        std::uint64_t n = std::min<std::uint64_t>(
            {pages, (v->end - start) / kPageSize, static_cast<std::uint64_t>(ones.size())});
        if (!accessible(vec, n, kProtWrite)) return -EFAULT;
        store_pages(vec, std::span<const std::byte>(ones.data(), static_cast<std::size_t>(n)));
        pages -= n;
        vec += n;
        start += n * kPageSize;
    }
    return 0;
}

std::int64_t ProcessMemory::mlock(std::uint64_t start, std::uint64_t len, bool lock) {
    // mm/mlock.c do_mlock / munlock, without RLIMIT_MEMLOCK (see header).
    len = page_align(len + start % kPageSize);
    start = page_down(start);
    const std::uint64_t end = start + len;
    if (end < start) return -EINVAL;
    if (end == start) return 0;
    if (!vma_containing(start)) return -ENOMEM;
    std::uint64_t reached = start;
    for (auto it = vma_at_or_above(start); it != vmas_.end() && it->second.start < end; ++it) {
        if (it->second.start > reached) break;
        reached = std::min(end, it->second.end);
    }
    change_vmas(start, reached, [lock](Vma& v) { v.locked = lock; });
    return reached < end ? -ENOMEM : 0;
}

std::int64_t ProcessMemory::mlockall(std::uint64_t flags) {
    if (flags == 0 || (flags & ~(kMclCurrent | kMclFuture | kMclOnFault)) || flags == kMclOnFault)
        return -EINVAL;
    // apply_mlockall_flags: MCL_FUTURE alone touches no current mapping;
    // otherwise every mapping is locked or, without MCL_CURRENT, unlocked.
    lock_future_ = (flags & kMclFuture) != 0;
    if (flags == kMclFuture) return 0;
    const bool lock = (flags & kMclCurrent) != 0;
    change_vmas(0, layout_.user_end, [lock](Vma& v) { v.locked = lock; });
    return 0;
}

bool ProcessMemory::grow_stack(std::uint64_t va) {
    std::lock_guard lock(mutex_);
    // mm/mmap.c expand_downwards.
    if (va < layout_.min_addr || va >= layout_.user_end) return false;
    auto it = vma_at_or_above(va);
    if (it == vmas_.end() || it->second.start <= va || !it->second.grows_down) return false;
    const std::uint64_t new_start = page_down(va);
    const Vma vma = it->second;
    if (it != vmas_.begin()) {
        const Vma& prev = std::prev(it)->second;
        // Keep stack_guard_gap above an accessible mapping that is not a
        // stack itself.
        if (!prev.grows_down && (prev.prot & kProtAll) != 0 &&
            new_start - std::min(new_start, prev.end) < kStackGuardGap)
            return false;
        if (prev.end > new_start) return false;
    }
    if (overlaps_supervisor(new_start, vma.start)) return false;
    auto pieces = allocate(new_start, vma.start, true);
    if (!pieces) return false;
    if (!reserve_tables(*pieces, 0)) {
        free_now(*pieces);
        return false;
    }
    map_pieces(*pieces, user_flags(vma.prot));
    Vma grown = vma;
    grown.start = new_start;
    vmas_.erase(it);
    insert_vma(std::move(grown));
    settle();
    return true;
}

// ---------------------------------------------------------------------------
// Shootdown and inspection.

std::uint64_t ProcessMemory::cr3() const {
    std::lock_guard lock(mutex_);
    return tables_.root();
}

bool ProcessMemory::shootdown_needed() const {
    std::lock_guard lock(mutex_);
    return tables_.shootdown_needed();
}

void ProcessMemory::shootdown_done() {
    std::lock_guard lock(mutex_);
    tables_.shootdown_done();
    settle();
}

std::optional<ProcessMemory::Shootdown> ProcessMemory::begin_shootdown() {
    std::lock_guard lock(mutex_);
    if (!tables_.shootdown_needed()) return std::nullopt;
    Shootdown batch;
    batch.tables = tables_.begin_shootdown();
    batch.frames = std::exchange(deferred_frames_, {});
    return batch;
}

void ProcessMemory::end_shootdown(Shootdown batch) {
    std::lock_guard lock(mutex_);
    tables_.free_tables(batch.tables);
    for (auto [gpa, size] : batch.frames)
        data_frames_.free(gpa, size);
}

std::uint32_t* ProcessMemory::word(std::uint64_t va, bool write) {
    std::lock_guard lock(mutex_);
    if (va % 4 != 0 || !accessible(va, 4, write ? kProtWrite : kProtRead)) return nullptr;
    auto bytes = data_frames_.host(frame_of(va) + va % kPageSize, 4);
    return reinterpret_cast<std::uint32_t*>(bytes.data());
}

std::vector<Vma> ProcessMemory::mappings() const {
    std::lock_guard lock(mutex_);
    std::vector<Vma> out;
    out.reserve(vmas_.size());
    for (const auto& [start, v] : vmas_)
        out.push_back(v);
    return out;
}

std::string ProcessMemory::describe() const {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& [start, v] : vmas_) {
        out += fmt::format("{:08x}-{:08x} {}{}{}{} {:08x} 00:00 0", v.start, v.end,
                           (v.prot & kProtRead) ? 'r' : '-', (v.prot & kProtWrite) ? 'w' : '-',
                           (v.prot & kProtExec) ? 'x' : '-', v.shared ? 's' : 'p',
                           v.backing == Vma::Backing::file ? v.offset : 0);
        if (!v.name.empty()) out += fmt::format("{:>{}}{}", "", 8, v.name);
        out += '\n';
    }
    return out;
}

std::uint64_t ProcessMemory::brk() const {
    std::lock_guard lock(mutex_);
    return brk_;
}

std::uint64_t ProcessMemory::free_data_bytes() const {
    std::lock_guard lock(mutex_);
    return data_frames_.free_bytes();
}

std::uint64_t ProcessMemory::free_table_bytes() const {
    std::lock_guard lock(mutex_);
    return table_frames_.free_bytes();
}

} // namespace minivmm::linux_abi
