/// \file
/// One bit per 4 KiB page, set concurrently by the dirty-log sync, the ring
/// reaper and the VMM's own writes; read and cleared by whoever consumes it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace minivmm {

/// A fixed-size bitmap of dirty 4 KiB pages. Thread-safe: every member may
/// be called concurrently (atomic words); a page set while take() runs is
/// either returned by it or left set for the next call, never lost.
class DirtyBitmap {
  public:
    static constexpr std::uint64_t kPageSize = 4096; ///< bytes per bit

    /// All `pages` clear.
    explicit DirtyBitmap(std::uint64_t pages);

    /// Number of pages tracked.
    std::uint64_t pages() const noexcept { return pages_; }
    /// Marks pages [first, first + count); pages past the end are ignored.
    void set_range(std::uint64_t first, std::uint64_t count) noexcept;
    /// Marks one page (ignored past the end).
    void set(std::uint64_t page) noexcept { set_range(page, 1); }
    /// Whether `page` is marked (false past the end).
    bool test(std::uint64_t page) const noexcept;
    /// ORs a KVM-style bitmap (bit i = page first + i) into this one.
    void merge(std::uint64_t first, std::span<const std::uint64_t> bits) noexcept;
    /// Returns the indices of the dirty pages, in ascending order, and clears them.
    std::vector<std::uint64_t> take();
    /// Number of pages marked (a snapshot while others write).
    std::uint64_t count() const noexcept;

  private:
    std::uint64_t pages_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> words_;
};

} // namespace minivmm
