// The boot builders one by one (private to the layers above boot): what
// build_guest does in order, separately so that tests can decode what each
// one wrote, and so that RAM hotplug can map pages into the same tables.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "minivmm/boot.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/guest_image.hpp"

namespace minivmm {

// Identity page tables over all of guest RAM (page 0 unmapped, the rest of
// the first MiB read-only but for the supervisor-only exception stacks).
// Returns CR3 (the PML4's address).
// \throws ConfigError if the page-table pool is too small for the RAM.
std::uint64_t build_page_tables(BootRam& mem, const BootPlan& plan);
// Maps (present) or unmaps hot-added RAM [gpa, gpa + size) in the page
// tables at `cr3` with 2 MiB user pages; both 2 MiB aligned, above `mem`'s
// RAM and below layout::kMaxMemSize (every directory there exists since
// build_page_tables). Unmapping is only safe once the vCPUs can no longer
// hold the translation: the caller then removes the KVM slot, which flushes
// every vCPU's TLB.
// \throws ConfigError for a range outside those bounds or page tables that
// are not the ones build_page_tables made.
void map_hotplug_ram(BootRam& mem, std::uint64_t cr3, std::uint64_t gpa, std::uint64_t size,
                     bool present);
// The GDT: flat ring-0 and ring-3 64-bit segments, then one TSS
// descriptor per vCPU.
void build_gdt(BootRam& mem, unsigned nr_vcpus);
// One TSS per vCPU (its ring-0 exception stack) and the shared I/O bitmap.
void build_tss(BootRam& mem, unsigned nr_vcpus);
// The IDT and its ring-0 stubs, which report exceptions on layout::kExceptionPort.
// `ist` != 0: every gate switches to that TSS stack (Intel SDM vol. 3, 6.14.5).
// With `imm8_port`, each stub writes that port with `out %al, $imm8`
// instead of kExceptionPort through DX (a Linux program's supervisor: no
// register of the program is lost).
void build_idt(BootRam& mem, unsigned ist = 0, std::optional<std::uint8_t> imm8_port = {});
// The BootInfo block and the command line.
// \throws ConfigError for a command line of kCmdlineMax bytes or more, or
// one with a NUL byte.
void build_boot_info(BootRam& mem, const BootPlan& plan, std::uint32_t tsc_khz,
                     std::string_view cmdline);
// Copies the image's segments into guest RAM (zeroing their tails).
void load_image(BootRam& mem, const GuestImage& image);

} // namespace minivmm
