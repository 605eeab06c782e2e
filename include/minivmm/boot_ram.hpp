/// \file
/// Boot RAM as the VMM sees it: the one RAM block that backs guest-physical
/// [0, size) from the start (RAM hot-added later is a region of its own, see
/// Vm::add_ram). Every access the VMM makes on a guest's behalf goes through the
/// bounds-checked accessors here, so a guest-supplied address or length can
/// never make the VMM touch host memory outside guest RAM. Writes are marked
/// in the block's dirty bitmap, so dirty logging sees the VMM's writes too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>

#include "minivmm/ram_block.hpp"

namespace minivmm {

class AddressSpace;
class MemoryRegion;

/// True when [addr, addr + len) lies inside [0, limit), with no wrap-around.
constexpr bool range_within(std::uint64_t addr, std::uint64_t len, std::uint64_t limit) noexcept {
    return len <= limit && addr <= limit - len;
}

/// Bounds-checked access to guest RAM at guest-physical [0, size()). Shares
/// ownership of its RamBlock. The const accessors and the writers may be
/// called from any threads (they do not synchronize the bytes themselves:
/// the guest writes them concurrently anyway); track_visibility() must be
/// called before other threads use the object.
class BootRam {
  public:
    /// Maps `size` bytes of anonymous memory (a multiple of the page size).
    /// \throws ConfigError for a bad size, KvmError if the mapping fails.
    explicit BootRam(std::uint64_t size);
    /// Guest RAM backed by an existing block, at guest-physical 0.
    explicit BootRam(std::shared_ptr<RamBlock> block);

    /// The RAM block (shared ownership).
    const std::shared_ptr<RamBlock>& block() const noexcept { return block_; }
    /// Bytes of guest RAM.
    std::uint64_t size() const noexcept { return size_; }
    /// Host address of guest-physical 0.
    std::byte* host_base() const noexcept { return base_; }

    /// True when all of [gpa, gpa + len) is guest RAM (and, with
    /// track_visibility(), visible as RAM in the address space).
    bool contains(std::uint64_t gpa, std::uint64_t len) const noexcept {
        return range_within(gpa, len, size_) && (visible_ == nullptr || visible(gpa, len));
    }
    /// From now on, accept only what `space` shows of `ram` (the region that
    /// maps this block at guest-physical 0): RAM hidden under a ROM or MMIO
    /// overlay, or unmapped, is no longer guest RAM to the VMM. Both must
    /// outlive this object.
    void track_visibility(const AddressSpace& space, const MemoryRegion& ram) noexcept {
        visible_ = &space;
        ram_ = &ram;
    }
    /// The host view of [gpa, gpa + len), or nullopt if any byte is outside
    /// RAM. For reading: a caller that writes through it uses writable_range.
    std::optional<std::span<std::byte>> range(std::uint64_t gpa, std::uint64_t len) const noexcept {
        if (!contains(gpa, len)) return std::nullopt;
        return std::span<std::byte>(base_ + gpa, static_cast<std::size_t>(len));
    }
    /// The same, for a VMM store into guest RAM. It marks nothing: call
    /// mark_written() once the store is complete, so that a dirty-log sync
    /// in between cannot take the bit and copy the bytes from before it.
    std::optional<std::span<std::byte>> writable_range(std::uint64_t gpa,
                                                       std::uint64_t len) const noexcept {
        return range(gpa, len);
    }
    /// Marks [gpa, gpa + len) dirty: every VMM store into guest RAM, after
    /// it is made. Bytes outside the block are ignored. Visibility is not
    /// asked again: a store made through a span taken while the range was
    /// visible changed the block even if an overlay hides it by now.
    void mark_written(std::uint64_t gpa, std::uint64_t len) const noexcept {
        if (len == 0 || !range_within(gpa, len, size_)) return;
        block_->dirty().set_range(gpa / DirtyBitmap::kPageSize,
                                  (gpa + len - 1) / DirtyBitmap::kPageSize -
                                      gpa / DirtyBitmap::kPageSize + 1);
    }

    /// A copy of the T at `gpa`, or nullopt if any byte is outside RAM.
    template <typename T>
    std::optional<T> read(std::uint64_t gpa) const noexcept {
        static_assert(std::is_trivially_copyable_v<T>);
        auto r = range(gpa, sizeof(T));
        if (!r) return std::nullopt;
        T value;
        std::memcpy(&value, r->data(), sizeof(T));
        return value;
    }

    /// Copies `data` to `gpa` and marks the pages dirty. For the VMM's own
    /// set-up code (boot structures): an out-of-range write there is a VMM
    /// bug or an impossible config.
    /// \throws ConfigError if any byte is outside RAM (nothing is written).
    void write_bytes(std::uint64_t gpa, std::span<const std::byte> data);
    /// write_bytes() of `value`'s bytes. \throws ConfigError as write_bytes().
    template <typename T>
    void write(std::uint64_t gpa, const T& value) {
        static_assert(std::is_trivially_copyable_v<T>);
        write_bytes(gpa, std::as_bytes(std::span<const T, 1>(&value, 1)));
    }
    /// Sets [gpa, gpa + len) to `value` and marks the pages dirty.
    /// \throws ConfigError if any byte is outside RAM (nothing is written).
    void fill(std::uint64_t gpa, std::uint64_t len, std::byte value);

  private:
    bool visible(std::uint64_t gpa, std::uint64_t len) const noexcept;

    const AddressSpace* visible_ = nullptr;
    const MemoryRegion* ram_ = nullptr;
    std::shared_ptr<RamBlock> block_;
    std::byte* base_;
    std::uint64_t size_;
};

} // namespace minivmm
