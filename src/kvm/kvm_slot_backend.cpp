#include <sys/ioctl.h>

#include <cerrno>
#include <chrono>

#include "minivmm/error.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/slot_backend.hpp"

namespace minivmm {

namespace {
void slot_ioctl(int fd, unsigned long request, void* arg, const char* name) {
    int r;
    do {
        r = ::ioctl(fd, request, arg);
    } while (r < 0 && errno == EINTR);
    if (r < 0) throw KvmError(name, errno);
}
} // namespace

KvmSlotBackend::KvmSlotBackend(const KvmVm& vm)
    : vm_(vm), max_slots_(static_cast<std::uint32_t>(vm.check_extension(KVM_CAP_NR_MEMSLOTS))),
      address_spaces_(std::max(1, vm.check_extension(KVM_CAP_MULTI_ADDRESS_SPACE))) {
    if (max_slots_ == 0) max_slots_ = 32; // api.rst: absent means 32
    // api.rst 7.18: with MANUAL_DIRTY_LOG_PROTECT2, KVM_GET_DIRTY_LOG no
    // longer write-protects; KVM_CLEAR_DIRTY_LOG re-arms pages on request.
    int caps = vm.check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
    if (caps & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) {
        kvm_enable_cap cap{};
        cap.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2;
        cap.args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
        if (::ioctl(vm.fd(), KVM_ENABLE_CAP, &cap) == 0) manual_protect_ = true;
    }
}

void KvmSlotBackend::set_slot(unsigned as_id, std::uint32_t slot, std::uint32_t flags,
                              std::uint64_t gpa, std::uint64_t size, std::uint64_t hva) {
    kvm_userspace_memory_region region{};
    region.slot = (as_id << 16) | slot; // api.rst 4.35: bits 16-31 select the address space
    region.flags = flags;
    region.guest_phys_addr = gpa;
    region.memory_size = size;
    region.userspace_addr = hva;
    const auto t0 = std::chrono::steady_clock::now();
    vm_.set_user_memory_region(region);
    set_slot_latency_.record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count()));
}

std::uint64_t KvmSlotBackend::reset_dirty_rings() {
    return vm_.reset_dirty_rings();
}

void KvmSlotBackend::get_dirty_log(unsigned as_id, std::uint32_t slot,
                                   std::span<std::uint64_t> bitmap) {
    kvm_dirty_log log{};
    log.slot = (as_id << 16) | slot;
    log.dirty_bitmap = bitmap.data();
    slot_ioctl(vm_.fd(), KVM_GET_DIRTY_LOG, &log, "KVM_GET_DIRTY_LOG");
}

void KvmSlotBackend::clear_dirty_log(unsigned as_id, std::uint32_t slot, std::uint64_t first_page,
                                     std::uint32_t num_pages,
                                     std::span<const std::uint64_t> bitmap) {
    kvm_clear_dirty_log log{};
    log.slot = (as_id << 16) | slot;
    log.first_page = first_page;
    log.num_pages = num_pages;
    log.dirty_bitmap = const_cast<std::uint64_t*>(bitmap.data());
    slot_ioctl(vm_.fd(), KVM_CLEAR_DIRTY_LOG, &log, "KVM_CLEAR_DIRTY_LOG");
}

} // namespace minivmm
