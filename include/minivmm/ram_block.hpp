/// \file
/// A block of host memory that backs guest RAM: anonymous memory, a memfd,
/// or a file on hugetlbfs, with optional transparent huge pages, prefaulting
/// and locking. Regions map windows of a block into guest-physical space.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "minivmm/dirty_bitmap.hpp"
#include "minivmm/host_mapping.hpp"
#include "minivmm/unique_fd.hpp"

namespace minivmm {

/// The kernel's pool of 2 MiB huge pages, read and resized through its sysfs
/// directory (nr_hugepages there is /proc/sys/vm/nr_hugepages when 2 MiB is
/// the default huge page size). Tests point it at a fake directory. A value
/// holding only the path; every call reads or writes the files anew.
class HugePagePool {
  public:
    /// The 2 MiB pool's sysfs directory.
    static constexpr const char* kSysfsDir = "/sys/kernel/mm/hugepages/hugepages-2048kB";
    /// The pool whose files are in `dir`.
    explicit HugePagePool(std::string dir = kSysfsDir) : dir_(std::move(dir)) {}

    /// Pages free and not yet promised to a mapping (free - resv).
    /// \throws SystemError if the files cannot be read.
    std::uint64_t available() const;
    /// nr_hugepages: the pool's size. \throws SystemError if it cannot be read.
    std::uint64_t total() const;
    /// Asks the kernel for a pool of `pages` (it may allocate fewer; read
    /// total() back). \throws SystemError if nr_hugepages cannot be written (needs root).
    void set_total(std::uint64_t pages) const;
    /// The sysfs directory.
    const std::string& dir() const noexcept { return dir_; }

  private:
    std::uint64_t read(const char* file) const;
    std::string dir_;
};

/// Huge pages a RamBlock added to the pool; given back when it goes away.
/// Move-only owner of that debt.
class HugePageLoan {
  public:
    /// Owes nothing.
    HugePageLoan() noexcept = default;
    /// Owes `pages` pages to `pool`.
    HugePageLoan(HugePagePool pool, std::uint64_t pages) noexcept
        : pool_(std::move(pool)), pages_(pages) {}
    /// Takes over `other`'s debt; `other` owes nothing afterwards.
    HugePageLoan(HugePageLoan&& other) noexcept
        : pool_(std::move(other.pool_)), pages_(std::exchange(other.pages_, 0)) {}
    /// Pays this loan back (reset()), then takes over `other`'s.
    HugePageLoan& operator=(HugePageLoan&& other) noexcept;
    HugePageLoan(const HugePageLoan&) = delete;
    HugePageLoan& operator=(const HugePageLoan&) = delete;
    /// reset().
    ~HugePageLoan() { reset(); }

    /// Pages owed.
    std::uint64_t pages() const noexcept { return pages_; }
    /// Shrinks the pool by the pages added (a failure is logged, not thrown).
    void reset() noexcept;

  private:
    HugePagePool pool_;
    std::uint64_t pages_ = 0;
};

/// How a RamBlock is backed (a value type).
struct RamBlockOptions {
    /// Kind of host memory.
    enum class Backing {
        anonymous, ///< MAP_PRIVATE|MAP_ANONYMOUS
        memfd,     ///< memfd_create: shareable, has an fd
        hugetlbfs, ///< memfd with MFD_HUGETLB (2 MiB pages); see fallback
    };
    Backing backing = Backing::anonymous; ///< kind of host memory
    bool transparent_huge_pages = false;  ///< madvise(MADV_HUGEPAGE)
    bool prefault = false;                ///< populate every page at creation
    bool lock = false;                    ///< mlock: never swapped out
    /// With hugetlbfs: fall back to anonymous memory (with a warning) when
    /// huge pages cannot be had, instead of failing.
    bool hugetlb_fallback = true;
    /// With hugetlbfs, when the pool has too few free pages and we are root:
    /// raise nr_hugepages by what is missing (logged as a warning). The block
    /// gives the pages back when it is destroyed.
    bool hugetlb_grow_pool = true;
    std::string hugetlb_pool_dir = HugePagePool::kSysfsDir; ///< the pool's sysfs directory
};

/// Guest RAM as VmConfig and minivmm-run use it by default: anonymous, THP.
inline RamBlockOptions guest_ram_defaults() {
    RamBlockOptions o;
    o.transparent_huge_pages = true;
    return o;
}

/// Host memory backing guest RAM. Owns its mapping, its memfd (if any) and
/// any huge pages it added to the kernel's pool, all released when it is
/// destroyed (share it through std::shared_ptr; regions and BootRam do).
/// Immutable after construction apart from the memory and the dirty bitmap,
/// so every member may be called from any thread.
class RamBlock {
  public:
    /// Maps `size` bytes (a positive multiple of 4 KiB; of 2 MiB for
    /// hugetlbfs), 2 MiB aligned, as `options` says. `name` is for messages.
    /// \throws ConfigError for a bad size; KvmError when mmap, memfd_create,
    /// prefaulting or mlock fail, or when hugetlbfs pages cannot be had and
    /// `hugetlb_fallback` is off.
    RamBlock(std::string name, std::uint64_t size, const RamBlockOptions& options = {});

    /// The name given.
    const std::string& name() const noexcept { return name_; }
    /// Size in bytes.
    std::uint64_t size() const noexcept { return size_; }
    /// Host address of the first byte.
    std::byte* host() const noexcept { return static_cast<std::byte*>(mapping_.data()); }
    /// The whole block.
    std::span<std::byte> bytes() const noexcept { return mapping_.bytes(); }
    /// The memfd, or -1 for anonymous memory.
    int fd() const noexcept { return fd_.get(); }
    /// The page size actually backing the block (4 KiB, or 2 MiB for hugetlbfs).
    std::uint64_t page_size() const noexcept { return page_size_; }
    /// What the block ended up with (a hugetlbfs request may have fallen back).
    RamBlockOptions::Backing backing() const noexcept { return backing_; }
    /// Huge pages this block added to the kernel's pool (0 if none).
    std::uint64_t huge_pages_added() const noexcept { return loan_.pages(); }

    /// Pages written while dirty logging is on, by the guest (merged in by
    /// the KVM dirty-log sync or ring reaper) or by the VMM itself.
    DirtyBitmap& dirty() noexcept { return dirty_; }
    /// \copydoc dirty()
    const DirtyBitmap& dirty() const noexcept { return dirty_; }

  private:
    std::string name_;
    std::uint64_t size_;
    HugePageLoan loan_; // destroyed after the mapping, which holds the pages
    UniqueFd fd_;
    HostMapping mapping_;
    std::uint64_t page_size_ = 4096;
    RamBlockOptions::Backing backing_;
    DirtyBitmap dirty_;
};

} // namespace minivmm
