/// \file
/// Builds the machine state guest ABI v1 promises: identity page tables over
/// all of guest RAM, a GDT with 64-bit user segments and one TSS per vCPU
/// (with an all-ports I/O bitmap), an IDT whose ring-0 stubs report
/// exceptions to the VMM, the boot info, and the initial registers.
///
/// The builders write guest RAM through BootRam's throwing writers: a
/// ConfigError from them means RAM too small for the layout. They are
/// plain functions over their arguments (no shared state).
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string_view>

#include "minivmm/boot_ram.hpp"
#include "minivmm/guest_image.hpp"

namespace minivmm {

/// Where the image, heap and stacks go for one VM. Validated on creation;
/// an immutable value afterwards.
class BootPlan {
  public:
    /// \throws ConfigError for an impossible RAM size or vCPU count and
    /// ImageError for an image that does not fit below the stacks.
    BootPlan(std::uint64_t mem_size, unsigned nr_vcpus, const GuestImage& image);

    /// Space an image may occupy with this RAM and vCPU count (for load
    /// limits). \throws ConfigError as validate().
    static std::uint64_t max_image_size(std::uint64_t mem_size, unsigned nr_vcpus);
    /// Checks RAM size and vCPU count alone. \throws ConfigError naming the problem.
    static void validate(std::uint64_t mem_size, unsigned nr_vcpus);

    std::uint64_t mem_size() const noexcept { return mem_size_; }     ///< guest RAM bytes
    unsigned nr_vcpus() const noexcept { return nr_vcpus_; }          ///< vCPU count
    std::uint64_t entry() const noexcept { return entry_; }           ///< the image's entry point
    std::uint64_t heap_start() const noexcept { return heap_start_; } ///< page after the image
    std::uint64_t heap_end() const noexcept { return heap_end_; }     ///< bottom of the stacks
    /// Top of vCPU `i`'s stack (16-byte aligned); the stack is the
    /// kVcpuStackSize bytes below it. vCPU 0's is the highest.
    std::uint64_t stack_top(unsigned vcpu) const noexcept;

  private:
    std::uint64_t mem_size_;
    unsigned nr_vcpus_;
    std::uint64_t entry_;
    std::uint64_t heap_start_;
    std::uint64_t heap_end_;
};

/// Builds everything the guest ABI promises at entry (page tables, GDT,
/// TSSs, IDT, boot info) and loads the image. Returns CR3.
std::uint64_t build_guest(BootRam& mem, const BootPlan& plan, const GuestImage& image,
                          std::uint32_t tsc_khz, std::string_view cmdline);

/// Special registers at entry for vCPU `vcpu` (64-bit ring 3, paging with
/// `cr3`). `base` is the vCPU's current sregs (to keep fields such as
/// apic_base that KVM filled in).
kvm_sregs initial_sregs(const kvm_sregs& base, unsigned vcpu, std::uint64_t cr3);
/// General registers at entry for vCPU `vcpu`: RIP = entry, RDI = boot
/// info, RSI = vCPU index, RSP = its stack top.
kvm_regs initial_regs(const BootPlan& plan, unsigned vcpu);

/// Name of an exception vector ("#PF"); "#??" for vectors of 32 and up.
std::string_view exception_mnemonic(unsigned vector) noexcept;
/// Whether the CPU pushes an error code for this vector.
bool exception_has_error_code(unsigned vector) noexcept;

} // namespace minivmm
