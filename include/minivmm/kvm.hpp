// RAII handles over the /dev/kvm ioctl API (Documentation/virt/kvm/api.rst):
// the system fd, a VM fd and vCPU fds with their mmap'd kvm_run.
// All three are move-only; every failing ioctl throws KvmError.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "minivmm/host_mapping.hpp"
#include "minivmm/unique_fd.hpp"

// Constants newer than the 6.1 UAPI headers Debian 12 ships; values from the
// kernel's include/uapi/linux/kvm.h.
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif

namespace minivmm {

class KvmVm;

// The /dev/kvm system fd: API version, capabilities, CPUID.
class KvmSystem {
  public:
    // Opens `path` (normally /dev/kvm) and checks the API version is 12.
    explicit KvmSystem(const std::string& path = "/dev/kvm");

    // KVM_CHECK_EXTENSION on the system fd; 0 when absent.
    int check_extension(long cap) const;
    int vcpu_mmap_size() const;
    // Hard limit on vCPUs per VM (KVM_CAP_MAX_VCPUS, falling back to NR_VCPUS).
    int max_vcpus() const;
    // The number of vCPUs KVM recommends (KVM_CAP_NR_VCPUS).
    int recommended_vcpus() const;
    // KVM_GET_SUPPORTED_CPUID: what this host's KVM can offer a guest.
    std::vector<kvm_cpuid_entry2> supported_cpuid() const;

    KvmVm create_vm() const;
    int fd() const noexcept { return fd_.get(); }

  private:
    UniqueFd fd_;
};

class KvmVcpu;

// A VM fd: memory slots, vCPUs, ioeventfds.
class KvmVm {
  public:
    explicit KvmVm(UniqueFd fd, int vcpu_mmap_size) noexcept
        : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

    int check_extension(long cap) const;
    // KVM_ENABLE_CAP on the VM with one argument.
    void enable_cap(std::uint32_t cap, std::uint64_t arg0) const;
    // KVM_RESET_DIRTY_RINGS; returns how many entries KVM re-armed.
    std::uint64_t reset_dirty_rings() const;
    // KVM_SET_USER_MEMORY_REGION; a size of 0 deletes the slot.
    void set_user_memory_region(const kvm_userspace_memory_region& region) const;
    // KVM_IOEVENTFD for a port-I/O write of `len` bytes to `port`: any value,
    // or with `datamatch` only that value (KVM_IOEVENTFD_FLAG_DATAMATCH), so
    // several eventfds can share a port.
    void add_pio_eventfd(std::uint16_t port, std::uint32_t len, int eventfd,
                         std::optional<std::uint64_t> datamatch = std::nullopt) const;
    void remove_pio_eventfd(std::uint16_t port, std::uint32_t len, int eventfd,
                            std::optional<std::uint64_t> datamatch = std::nullopt) const;
    KvmVcpu create_vcpu(unsigned id) const;
    int fd() const noexcept { return fd_.get(); }

  private:
    UniqueFd fd_;
    int vcpu_mmap_size_;
};

// A vCPU fd and its shared kvm_run page.
class KvmVcpu {
  public:
    KvmVcpu(UniqueFd fd, HostMapping run, unsigned id) noexcept
        : fd_(std::move(fd)), run_map_(std::move(run)), id_(id) {}

    unsigned id() const noexcept { return id_; }
    int fd() const noexcept { return fd_.get(); }
    kvm_run& run_state() const noexcept { return *static_cast<kvm_run*>(run_map_.data()); }

    // One KVM_RUN. Returns 0, or -errno for EINTR/EAGAIN (a kick or a pending
    // signal: the caller decides); throws on any other error.
    int run() const;

    kvm_regs regs() const;
    void set_regs(const kvm_regs& regs) const;
    kvm_sregs sregs() const;
    void set_sregs(const kvm_sregs& sregs) const;
    void set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) const;
    // KVM_GET_TSC_KHZ; 0 when KVM does not know it.
    std::uint32_t tsc_khz() const;

  private:
    UniqueFd fd_;
    HostMapping run_map_;
    unsigned id_;
};

} // namespace minivmm
