#include "minivmm/ram_block.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "minivmm/error.hpp"
#include "minivmm/log.hpp"

// Newer than some libc headers; values from the kernel's uapi/asm-generic/mman-common.h.
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26)
#endif

namespace minivmm {

namespace {

constexpr std::uint64_t kHugePage = 2ull << 20;

UniqueFd make_memfd(const std::string& name, unsigned flags, std::uint64_t size) {
    UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | flags));
    if (!fd) throw SystemError("memfd_create", errno);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw SystemError("ftruncate", errno);
    return fd;
}

// Makes sure `pages` huge pages are free in `pool`, growing it if we are
// root. Returns the pages added (possibly none) and whether there are enough.
std::pair<HugePageLoan, bool> secure_huge_pages(const HugePagePool& pool, std::uint64_t pages,
                                                bool may_grow, const std::string& name) {
    const std::uint64_t free = pool.available();
    if (free >= pages) return {HugePageLoan(), true};
    if (!may_grow || ::geteuid() != 0) return {HugePageLoan(), false};
    const std::uint64_t before = pool.total();
    pool.set_total(before + (pages - free));
    const std::uint64_t after = pool.total();
    HugePageLoan loan(pool, after > before ? after - before : 0);
    if (pool.available() < pages) {
        logger().warn("RAM block '{}': raising nr_hugepages from {} to {} freed only {} of the {} "
                      "2 MiB pages needed",
                      name, before, before + (pages - free), pool.available(), pages);
        return {HugePageLoan(), false}; // `loan` gives the pages back
    }
    logger().warn(
        "RAM block '{}': reserved {} more 2 MiB huge pages (nr_hugepages {} -> {}, in {}); "
        "given back when the VM ends",
        name, after - before, before, after, pool.dir());
    return {std::move(loan), true};
}

} // namespace

std::uint64_t HugePagePool::read(const char* file) const {
    const std::string path = dir_ + "/" + file;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw SystemError("open " + path, errno);
    char buf[32];
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) throw SystemError("read " + path, errno);
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(buf, buf + n, value);
    if (ec != std::errc() || end == buf) throw SystemError("parse " + path, EINVAL);
    return value;
}

std::uint64_t HugePagePool::available() const {
    std::uint64_t free = read("free_hugepages"), resv = read("resv_hugepages");
    return free > resv ? free - resv : 0;
}

std::uint64_t HugePagePool::total() const {
    return read("nr_hugepages");
}

void HugePagePool::set_total(std::uint64_t pages) const {
    const std::string path = dir_ + "/nr_hugepages";
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_TRUNC));
    if (!fd) throw SystemError("open " + path, errno, "growing the huge page pool needs root");
    const std::string text = fmt::format("{}\n", pages);
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        throw SystemError("write " + path, errno);
}

HugePageLoan& HugePageLoan::operator=(HugePageLoan&& other) noexcept {
    if (this != &other) {
        reset();
        pool_ = std::move(other.pool_);
        pages_ = std::exchange(other.pages_, 0);
    }
    return *this;
}

void HugePageLoan::reset() noexcept {
    if (pages_ == 0) return;
    try {
        // Relative to the current size: others may have grown the pool meanwhile.
        std::uint64_t now = pool_.total();
        pool_.set_total(now > pages_ ? now - pages_ : 0);
        logger().info("gave {} 2 MiB huge pages back (nr_hugepages {} -> {})", pages_, now,
                      pool_.total());
    } catch (const std::exception& e) {
        logger().warn("could not give {} huge pages back to the pool: {}", pages_, e.what());
    }
    pages_ = 0;
}

RamBlock::RamBlock(std::string name, std::uint64_t size, const RamBlockOptions& options)
    : name_(std::move(name)), size_(size), backing_(options.backing),
      dirty_(size / DirtyBitmap::kPageSize) {
    if (size == 0 || size % 4096 != 0)
        throw ConfigError(fmt::format("RAM block '{}': size {} is not a positive multiple of 4 KiB",
                                      name_, size));
    if (backing_ == RamBlockOptions::Backing::hugetlbfs) {
        if (size % kHugePage != 0)
            throw ConfigError(
                fmt::format("RAM block '{}': hugetlbfs needs a multiple of 2 MiB", name_));
        // No MAP_POPULATE: a hugetlbfs mmap reserves its pages up front, so
        // faulting them in is left to `prefault` as with the other backings.
        try {
            auto [loan, enough] =
                secure_huge_pages(HugePagePool(options.hugetlb_pool_dir), size / kHugePage,
                                  options.hugetlb_grow_pool, name_);
            if (!enough)
                throw SystemError("reserve 2 MiB huge pages", ENOMEM,
                                  fmt::format("{} free 2 MiB pages needed", size / kHugePage));
            fd_ = make_memfd(name_, MFD_HUGETLB | MFD_HUGE_2MB, size);
            mapping_ = HostMapping::aligned(size, kHugePage, MAP_SHARED, fd_.get());
            loan_ = std::move(loan);
            page_size_ = kHugePage;
        } catch (const SystemError& e) {
            if (!options.hugetlb_fallback) throw;
            logger().warn("RAM block '{}': no 2 MiB huge pages ({}); using anonymous memory "
                          "(run as root, or reserve some in /proc/sys/vm/nr_hugepages)",
                          name_, e.what());
            fd_.reset();
            backing_ = RamBlockOptions::Backing::anonymous;
        }
    }
    // 2 MiB aligned, so THP can back it and KVM can map 2 MiB guest pages whole.
    if (backing_ == RamBlockOptions::Backing::memfd) {
        fd_ = make_memfd(name_, 0, size);
        mapping_ = HostMapping::aligned(size, kHugePage, MAP_SHARED, fd_.get());
    } else if (backing_ == RamBlockOptions::Backing::anonymous) {
        // Not reserved against swap: guest RAM is touched lazily, like QEMU's.
        mapping_ =
            HostMapping::aligned(size, kHugePage, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    }
    if (options.transparent_huge_pages && page_size_ != kHugePage &&
        ::madvise(mapping_.data(), size, MADV_HUGEPAGE) != 0)
        logger().warn("RAM block '{}': madvise(MADV_HUGEPAGE) failed: {}", name_,
                      std::strerror(errno));
    // memfd memory is shmem: THP for it follows shmem_enabled, not the
    // madvise above; say so rather than silently get 4 KiB pages.
    if (options.transparent_huge_pages && backing_ == RamBlockOptions::Backing::memfd) {
        std::ifstream f("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
        std::string modes;
        std::getline(f, modes);
        if (modes.find("[never]") != std::string::npos || modes.find("[deny]") != std::string::npos)
            logger().warn("RAM block '{}': THP requested for memfd memory, but shmem_enabled is "
                          "'never' here: 4 KiB pages",
                          name_);
    }
    if (options.prefault && ::madvise(mapping_.data(), size, MADV_POPULATE_WRITE) != 0)
        throw SystemError("madvise(MADV_POPULATE_WRITE)", errno, "not enough memory to prefault?");
    if (options.lock && ::mlock(mapping_.data(), size) != 0)
        throw SystemError("mlock", errno, "raise RLIMIT_MEMLOCK (ulimit -l) or run as root");
}

} // namespace minivmm
