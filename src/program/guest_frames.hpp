// Guest-physical frames of a Linux program (issue 16): the pool its memory
// and its page tables are carved from. One allocator owns one run of
// guest-physical memory and the host bytes behind it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <vector>

namespace minivmm::linux_abi {

inline constexpr std::uint64_t kPageSize = 4096;
inline constexpr std::uint64_t kLargePageSize = 2ull << 20;

// Guest-physical [gpa, gpa + host.size()) and the host bytes that back it.
// Both ends are page aligned.
struct PhysicalRange {
    std::uint64_t gpa = 0;
    std::span<std::byte> host;
};

// Hands out 4 KiB frames and 2 MiB-aligned runs of 512 frames from one
// PhysicalRange. Every frame handed out reads as zero: a frame is zeroed when
// it is freed (and the whole range when the allocator is made), with
// madvise where the host memory allows it, which also gives the host its
// memory back. A 2 MiB run is 512 frames: they may be freed one by one.
//
// The range is kept as 2 MiB chunks, each with a bitmap of its frames: 4 KiB
// frames come from the lowest chunk already in use (so that whole chunks
// stay free for 2 MiB runs), 2 MiB runs from the lowest wholly free chunk.
// Every call is O(log chunks). Not thread-safe: its owner serializes.
class FrameAllocator {
  public:
    // Throws std::invalid_argument when `range` is not page aligned.
    explicit FrameAllocator(PhysicalRange range);
    FrameAllocator(const FrameAllocator&) = delete;
    FrameAllocator& operator=(const FrameAllocator&) = delete;

    // A zeroed frame; nullopt when none is free.
    std::optional<std::uint64_t> alloc_4k();
    // 512 zeroed frames starting at a 2 MiB-aligned gpa; nullopt when no
    // wholly free 2 MiB-aligned run is left.
    std::optional<std::uint64_t> alloc_2m();
    // Frees (and zeroes) one frame, or a 2 MiB run, or every frame of
    // [gpa, gpa + size). Freeing a frame that is not allocated throws
    // std::invalid_argument (nothing is freed then).
    void free_4k(std::uint64_t gpa);
    void free_2m(std::uint64_t gpa);
    void free(std::uint64_t gpa, std::uint64_t size);

    // The host bytes of guest-physical [gpa, gpa + size); throws
    // std::out_of_range unless that lies inside the range.
    std::span<std::byte> host(std::uint64_t gpa, std::uint64_t size) const;
    // Zeroes guest-physical [gpa, gpa + size) (checked as host()).
    void zero(std::uint64_t gpa, std::uint64_t size);

    std::uint64_t free_bytes() const { return free_frames_ * kPageSize; }
    bool contains(std::uint64_t gpa, std::uint64_t size) const;
    const PhysicalRange& range() const { return range_; }

  private:
    static constexpr std::size_t kFramesPerChunk = kLargePageSize / kPageSize;
    static constexpr std::size_t kWords = kFramesPerChunk / 64;
    struct Chunk {
        std::array<std::uint64_t, kWords> used{}; // 1 = handed out or outside the range
        std::uint32_t free = 0;
        bool whole = false; // all 512 frames lie inside the range
    };
    // How this range's host memory is zeroed (decided once, from
    // /proc/self/maps): MADV_DONTNEED zeroes private anonymous memory only,
    // MADV_REMOVE shared memory (memfd, shmem); anything else is memset.
    enum class Zeroing { dontneed, remove, memset };

    std::uint64_t chunk_gpa(std::size_t index) const { return base_ + index * kLargePageSize; }
    std::size_t chunk_of(std::uint64_t gpa) const {
        return static_cast<std::size_t>((gpa - base_) / kLargePageSize);
    }
    // Marks frames [first, first + count) of chunk `index` free or used and
    // files the chunk under whole_free_ / partly_free_ accordingly.
    void mark(std::size_t index, std::size_t first, std::size_t count, bool used);
    void refile(std::size_t index);
    void zero_host(std::span<std::byte> bytes) const;

    PhysicalRange range_;
    std::uint64_t base_ = 0; // range_.gpa rounded down to 2 MiB
    Zeroing zeroing_ = Zeroing::memset;
    std::vector<Chunk> chunks_;
    std::set<std::size_t> whole_free_;  // whole chunks with all 512 frames free
    std::set<std::size_t> partly_free_; // chunks with some, not all, frames free
    std::uint64_t free_frames_ = 0;
};

} // namespace minivmm::linux_abi
