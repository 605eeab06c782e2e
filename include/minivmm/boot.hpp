// Builds the machine state guest ABI v1 promises: identity page tables over
// all of guest RAM, a GDT with 64-bit user segments and one TSS per vCPU
// (with an all-ports I/O bitmap), an IDT whose ring-0 stubs report
// exceptions to the VMM, the boot info, and the initial registers.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string_view>

#include "minivmm/guest_image.hpp"
#include "minivmm/guest_memory.hpp"

namespace minivmm {

// Where the image, heap and stacks go for one VM. Validated on creation.
class BootPlan {
  public:
    // Throws ConfigError for an impossible RAM size or vCPU count and
    // ImageError for an image that does not fit below the stacks.
    BootPlan(std::uint64_t mem_size, unsigned nr_vcpus, const GuestImage& image);

    // Space an image may occupy with this RAM and vCPU count (for load limits).
    static std::uint64_t max_image_size(std::uint64_t mem_size, unsigned nr_vcpus);
    // Checks RAM size and vCPU count alone; throws ConfigError.
    static void validate(std::uint64_t mem_size, unsigned nr_vcpus);

    std::uint64_t mem_size() const noexcept { return mem_size_; }
    unsigned nr_vcpus() const noexcept { return nr_vcpus_; }
    std::uint64_t entry() const noexcept { return entry_; }
    std::uint64_t heap_start() const noexcept { return heap_start_; }
    std::uint64_t heap_end() const noexcept { return heap_end_; }
    // Top of vCPU `i`'s stack (16-byte aligned); the stack is the
    // kVcpuStackSize bytes below it. vCPU 0's is the highest.
    std::uint64_t stack_top(unsigned vcpu) const noexcept;

  private:
    std::uint64_t mem_size_;
    unsigned nr_vcpus_;
    std::uint64_t entry_;
    std::uint64_t heap_start_;
    std::uint64_t heap_end_;
};

// Individual builders (exposed so tests can decode what each one wrote).
// Returns CR3 (the PML4's address).
std::uint64_t build_page_tables(GuestMemory& mem, const BootPlan& plan);
// Maps (present) or unmaps hot-added RAM [gpa, gpa + size) in the page
// tables at `cr3` with 2 MiB user pages; both 2 MiB aligned, above `mem`'s
// RAM and below layout::kMaxMemSize (every directory there exists since
// build_page_tables). Throws ConfigError otherwise. Unmapping is only safe
// once the vCPUs can no longer hold the translation: the caller then
// removes the KVM slot, which flushes every vCPU's TLB.
void map_hotplug_ram(GuestMemory& mem, std::uint64_t cr3, std::uint64_t gpa, std::uint64_t size,
                     bool present);
void build_gdt(GuestMemory& mem, unsigned nr_vcpus);
void build_tss(GuestMemory& mem, unsigned nr_vcpus);
void build_idt(GuestMemory& mem);
void build_boot_info(GuestMemory& mem, const BootPlan& plan, std::uint32_t tsc_khz,
                     std::string_view cmdline);
void load_image(GuestMemory& mem, const GuestImage& image);

// All of the above, in order. Returns CR3.
std::uint64_t build_guest(GuestMemory& mem, const BootPlan& plan, const GuestImage& image,
                          std::uint32_t tsc_khz, std::string_view cmdline);

// Register state at entry for vCPU `vcpu`. `base` is the vCPU's current
// sregs (to keep fields such as apic_base that KVM filled in).
kvm_sregs initial_sregs(const kvm_sregs& base, unsigned vcpu, std::uint64_t cr3);
kvm_regs initial_regs(const BootPlan& plan, unsigned vcpu);

// Names of exception vectors ("#PF"), and whether the CPU pushes an error code.
std::string_view exception_mnemonic(unsigned vector) noexcept;
bool exception_has_error_code(unsigned vector) noexcept;

} // namespace minivmm
