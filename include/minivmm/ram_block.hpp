// A block of host memory that backs guest RAM: anonymous memory, a memfd,
// or a file on hugetlbfs, with optional transparent huge pages, prefaulting
// and locking. Regions map windows of a block into guest-physical space.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "minivmm/dirty_bitmap.hpp"
#include "minivmm/host_mapping.hpp"
#include "minivmm/unique_fd.hpp"

namespace minivmm {

struct RamBlockOptions {
    enum class Backing {
        anonymous, // MAP_PRIVATE|MAP_ANONYMOUS
        memfd,     // memfd_create: shareable, has an fd
        hugetlbfs, // memfd with MFD_HUGETLB (2 MiB pages); see fallback
    };
    Backing backing = Backing::anonymous;
    bool transparent_huge_pages = false; // madvise(MADV_HUGEPAGE)
    bool prefault = false;               // populate every page at creation
    bool lock = false;                   // mlock: never swapped out
    // With hugetlbfs: fall back to anonymous memory (with a warning) when
    // huge pages cannot be had, instead of failing.
    bool hugetlb_fallback = true;
};

class RamBlock {
  public:
    // Throws KvmError (mmap/memfd failures) or ConfigError (bad size).
    RamBlock(std::string name, std::uint64_t size, const RamBlockOptions& options = {});

    const std::string& name() const noexcept { return name_; }
    std::uint64_t size() const noexcept { return size_; }
    std::byte* host() const noexcept { return static_cast<std::byte*>(mapping_.data()); }
    std::span<std::byte> bytes() const noexcept { return mapping_.bytes(); }
    // The memfd, or -1 for anonymous memory.
    int fd() const noexcept { return fd_.get(); }
    // The page size actually backing the block (4 KiB, or 2 MiB for hugetlbfs).
    std::uint64_t page_size() const noexcept { return page_size_; }
    // What the block ended up with (a hugetlbfs request may have fallen back).
    RamBlockOptions::Backing backing() const noexcept { return backing_; }

    // Pages written while dirty logging is on, by the guest (merged in by
    // the KVM dirty-log sync or ring reaper) or by the VMM itself.
    DirtyBitmap& dirty() noexcept { return dirty_; }
    const DirtyBitmap& dirty() const noexcept { return dirty_; }

  private:
    std::string name_;
    std::uint64_t size_;
    UniqueFd fd_;
    HostMapping mapping_;
    std::uint64_t page_size_ = 4096;
    RamBlockOptions::Backing backing_;
    DirtyBitmap dirty_;
};

} // namespace minivmm
