#include "minivmm/dirty_ring.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "minivmm/error.hpp"
#include "minivmm/kvm.hpp"

namespace minivmm {

DirtyRing::DirtyRing(const KvmVcpu& vcpu, std::uint32_t entries) : entries_(entries) {
    std::size_t bytes = std::size_t{entries} * sizeof(kvm_dirty_gfn);
    auto page = static_cast<long>(::sysconf(_SC_PAGESIZE));
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu.fd(),
                     KVM_DIRTY_LOG_PAGE_OFFSET * page);
    if (p == MAP_FAILED)
        throw KvmError("mmap of the dirty ring", errno, "was KVM_CAP_DIRTY_LOG_RING enabled?");
    mapping_ = HostMapping(p, bytes);
    gfns_ = static_cast<kvm_dirty_gfn*>(p);
}

DirtyRing::DirtyRing(std::span<kvm_dirty_gfn> gfns)
    : gfns_(gfns.data()), entries_(static_cast<std::uint32_t>(gfns.size())) {
    if (gfns.empty() || (gfns.size() & (gfns.size() - 1)) != 0 || gfns.size() > (1u << 31))
        throw ConfigError("a dirty ring's size must be a power of two");
}

} // namespace minivmm
