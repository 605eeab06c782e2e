/// \file
/// RAII handles over the /dev/kvm ioctl API (Documentation/virt/kvm/api.rst):
/// the system fd, a VM fd and vCPU fds with their mmap'd kvm_run.
/// All three are move-only; every failing ioctl throws KvmError.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "minivmm/host_mapping.hpp"
#include "minivmm/unique_fd.hpp"

namespace minivmm {

class KvmVm;

/// The /dev/kvm system fd: API version, capabilities, CPUID. Owns the fd
/// (move-only). Its const members may be called from any threads at once
/// (each is one ioctl on a fd that does not change).
class KvmSystem {
  public:
    /// Opens `path` (normally /dev/kvm) and checks the API version is 12.
    /// \throws KvmError if it cannot be opened (with a hint: missing
    /// module, permissions) or the API version differs.
    explicit KvmSystem(const std::string& path = "/dev/kvm");

    /// KVM_CHECK_EXTENSION on the system fd; 0 when absent.
    int check_extension(long cap) const;
    /// KVM_GET_VCPU_MMAP_SIZE: bytes of a vCPU's kvm_run mapping.
    /// \throws KvmError if the ioctl fails.
    int vcpu_mmap_size() const;
    /// Hard limit on vCPUs per VM (KVM_CAP_MAX_VCPUS, falling back to NR_VCPUS).
    int max_vcpus() const;
    /// The number of vCPUs KVM recommends (KVM_CAP_NR_VCPUS; 4 when absent).
    int recommended_vcpus() const;
    /// KVM_GET_SUPPORTED_CPUID: what this host's KVM can offer a guest.
    /// \throws KvmError if the ioctl fails.
    std::vector<kvm_cpuid_entry2> supported_cpuid() const;

    /// KVM_CREATE_VM: a new, empty VM. \throws KvmError if KVM refuses.
    KvmVm create_vm() const;
    /// The system fd (still owned).
    int fd() const noexcept { return fd_.get(); }

  private:
    UniqueFd fd_;
};

class KvmVcpu;

/// A VM fd: memory slots, vCPUs, ioeventfds. Owns the fd (move-only; the
/// VM lives until it and every vCPU fd are closed). The const members are
/// single ioctls and may be called from any thread; KVM orders them.
class KvmVm {
  public:
    /// Takes ownership of a VM fd (KvmSystem::create_vm makes one).
    explicit KvmVm(UniqueFd fd, int vcpu_mmap_size) noexcept
        : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

    /// KVM_CHECK_EXTENSION on the VM fd; 0 when absent.
    int check_extension(long cap) const;
    /// KVM_ENABLE_CAP on the VM with one argument. \throws KvmError.
    void enable_cap(std::uint32_t cap, std::uint64_t arg0) const;
    /// KVM_RESET_DIRTY_RINGS; returns how many entries KVM re-armed. \throws KvmError.
    std::uint64_t reset_dirty_rings() const;
    /// KVM_SET_USER_MEMORY_REGION; a size of 0 deletes the slot. \throws KvmError.
    void set_user_memory_region(const kvm_userspace_memory_region& region) const;
    /// KVM_IOEVENTFD for a port-I/O write of `len` bytes to `port`: any value,
    /// or with `datamatch` only that value (KVM_IOEVENTFD_FLAG_DATAMATCH), so
    /// several eventfds can share a port. \throws KvmError.
    void add_pio_eventfd(std::uint16_t port, std::uint32_t len, int eventfd,
                         std::optional<std::uint64_t> datamatch = std::nullopt) const;
    /// Undoes add_pio_eventfd() with the same arguments. \throws KvmError.
    void remove_pio_eventfd(std::uint16_t port, std::uint32_t len, int eventfd,
                            std::optional<std::uint64_t> datamatch = std::nullopt) const;
    /// KVM_CREATE_VCPU with id `id`, and its kvm_run mapping. \throws KvmError.
    KvmVcpu create_vcpu(unsigned id) const;
    /// The VM fd (still owned).
    int fd() const noexcept { return fd_.get(); }

  private:
    UniqueFd fd_;
    int vcpu_mmap_size_;
};

/// A vCPU fd and its shared kvm_run page. Owns both (move-only). KVM lets
/// one thread at a time use a vCPU: run() and the register calls belong to
/// the thread that runs it (others block in the kernel until it leaves
/// KVM_RUN).
class KvmVcpu {
  public:
    /// Takes ownership of a vCPU fd and its kvm_run mapping.
    KvmVcpu(UniqueFd fd, HostMapping run, unsigned id) noexcept
        : fd_(std::move(fd)), run_map_(std::move(run)), id_(id) {}

    /// The vCPU id given to KVM_CREATE_VCPU.
    unsigned id() const noexcept { return id_; }
    /// The vCPU fd (still owned).
    int fd() const noexcept { return fd_.get(); }
    /// The shared kvm_run structure (exit reason and data).
    kvm_run& run_state() const noexcept { return *static_cast<kvm_run*>(run_map_.data()); }

    /// One KVM_RUN. Returns 0, or -errno for EINTR/EAGAIN (a kick or a pending
    /// signal: the caller decides). \throws KvmError on any other error.
    int run() const;

    /// KVM_GET_REGS. \throws KvmError.
    kvm_regs regs() const;
    /// KVM_SET_REGS. \throws KvmError.
    void set_regs(const kvm_regs& regs) const;
    /// KVM_GET_SREGS. \throws KvmError.
    kvm_sregs sregs() const;
    /// KVM_SET_SREGS. \throws KvmError.
    void set_sregs(const kvm_sregs& sregs) const;
    /// struct kvm_xsave's 4096-byte region: the FPU/SSE/extended state in
    /// XSAVE's standard (uncompacted) layout, whose first 512 bytes are an
    /// FXSAVE image and whose header starts at byte 512. (The 6.1 header's
    /// flexible `extra` member makes sizeof(kvm_xsave) 4100 in C++, and
    /// the ioctl numbers wrong with it.)
    struct XsaveImage {
        std::array<std::byte, 4096> bytes{}; ///< the region, as KVM reads and writes it
    };
    /// KVM_GET_XSAVE. \throws KvmError.
    XsaveImage xsave() const;
    /// KVM_SET_XSAVE. \throws KvmError (KVM checks the header and MXCSR).
    void set_xsave(const XsaveImage& state) const;
    /// KVM_SET_CPUID2. \throws KvmError.
    void set_cpuid(const std::vector<kvm_cpuid_entry2>& entries) const;
    /// One model-specific register (index, value).
    struct Msr {
        std::uint32_t index = 0; ///< the MSR's number (e.g. 0xc0000082, LSTAR)
        std::uint64_t value = 0; ///< its value
    };
    /// KVM_SET_MSRS: all of `msrs`. \throws KvmError naming the first MSR
    /// KVM refused.
    void set_msrs(std::span<const Msr> msrs) const;
    /// KVM_GET_MSRS of one MSR. \throws KvmError if KVM cannot read it.
    std::uint64_t msr(std::uint32_t index) const;
    /// KVM_GET_TSC_KHZ; 0 when KVM does not know it.
    std::uint32_t tsc_khz() const;

  private:
    UniqueFd fd_;
    HostMapping run_map_;
    unsigned id_;
};

} // namespace minivmm
