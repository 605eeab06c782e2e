#include "minivmm/ram_block.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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
    if (!fd) throw KvmError("memfd_create", errno);
    if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw KvmError("ftruncate", errno);
    return fd;
}

} // namespace

RamBlock::RamBlock(std::string name, std::uint64_t size, const RamBlockOptions& options)
    : name_(std::move(name)), size_(size), backing_(options.backing),
      dirty_(size / DirtyBitmap::kPageSize) {
    if (size == 0 || size % 4096 != 0)
        throw ConfigError(fmt::format("RAM block '{}': size {} is not a positive multiple of 4 KiB",
                                      name_, size));
    const int prot = PROT_READ | PROT_WRITE;
    if (backing_ == RamBlockOptions::Backing::hugetlbfs) {
        if (size % kHugePage != 0)
            throw ConfigError(
                fmt::format("RAM block '{}': hugetlbfs needs a multiple of 2 MiB", name_));
        try {
            fd_ = make_memfd(name_, MFD_HUGETLB | MFD_HUGE_2MB, size);
            void* p = ::mmap(nullptr, size, prot, MAP_SHARED | MAP_POPULATE, fd_.get(), 0);
            if (p == MAP_FAILED) throw KvmError("mmap (hugetlbfs)", errno);
            mapping_ = HostMapping(p, size);
            page_size_ = kHugePage;
        } catch (const KvmError& e) {
            if (!options.hugetlb_fallback) throw;
            logger().warn("RAM block '{}': no 2 MiB huge pages ({}); using anonymous memory "
                          "(reserve some in /proc/sys/vm/nr_hugepages)",
                          name_, e.what());
            fd_.reset();
            backing_ = RamBlockOptions::Backing::anonymous;
        }
    }
    if (backing_ == RamBlockOptions::Backing::memfd) {
        fd_ = make_memfd(name_, 0, size);
        mapping_ = HostMapping::of_fd(fd_.get(), size, prot);
    } else if (backing_ == RamBlockOptions::Backing::anonymous) {
        mapping_ = HostMapping::anonymous(size);
    }
    if (options.transparent_huge_pages && page_size_ != kHugePage &&
        ::madvise(mapping_.data(), size, MADV_HUGEPAGE) != 0)
        logger().warn("RAM block '{}': madvise(MADV_HUGEPAGE) failed: {}", name_,
                      std::strerror(errno));
    if (options.prefault && ::madvise(mapping_.data(), size, MADV_POPULATE_WRITE) != 0)
        throw KvmError("madvise(MADV_POPULATE_WRITE)", errno, "not enough memory to prefault?");
    if (options.lock && ::mlock(mapping_.data(), size) != 0)
        throw KvmError("mlock", errno, "raise RLIMIT_MEMLOCK (ulimit -l) or run as root");
}

} // namespace minivmm
