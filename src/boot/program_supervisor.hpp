// The VMM-owned ring-0 side of a guest that runs a Linux program (issue 16;
// docs/linux-programs.md, "System calls"): the same GDT, IDT stubs and
// exception stacks as the guest ABI, but with no port open to ring 3, every
// exception taken on its own stack (IST 1), and a two-instruction system
// call entry behind LSTAR:
//
//   syscall_entry:  out %al, $kSyscallPort   ; exit to the VMM, which serves
//                                            ; the call and sets RAX
//                   sysretq                  ; back after the syscall
//
// Nothing else runs at CPL 0 (where a shadow-paging KVM emulates each
// instruction), and the entry touches no memory, so the program's own RSP
// is never used at CPL 0.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "minivmm/boot_layout.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/kvm.hpp"

namespace minivmm::program_layout {

// The port of the system call entry: below 0x100 so that `out imm8` needs
// no register (RDX is the program's third argument).
inline constexpr std::uint16_t kSyscallPort = 0x80;
// The port of the exception stubs: `out %al, $imm8` too, so that a stub
// changes no register of the program (a handler may return to the faulting
// instruction with every register as it was).
inline constexpr std::uint16_t kExceptionPort = 0x81;
// LSTAR: the system call entry, in the exception stubs' page.
inline constexpr std::uint64_t kSyscallEntry = layout::kExceptionStubs + 0x800;
// RIP after the entry's `out` (KVM may report either this or the `out`).
inline constexpr std::uint64_t kSyscallExitRip = kSyscallEntry + 2;
// [kSupervisorStart, kSupervisorEnd) is mapped for ring 0 only.
inline constexpr std::uint64_t kSupervisorStart = layout::kPageSize;
inline constexpr std::uint64_t kSupervisorEnd = layout::kReservedEnd;
// Of that, the exception stacks are writable and not executable; the rest
// is read-only.
inline constexpr std::uint64_t kSupervisorWritable = layout::kExceptionStacks;

// RFLAGS bits the CPU clears on `syscall` (SFMASK), as Linux does: TF, IF,
// DF, IOPL, NT, AC.
inline constexpr std::uint64_t kSyscallFlagMask = 0x47700;

} // namespace minivmm::program_layout

namespace minivmm {

// GDT, TSSs (no I/O bitmap bit clear: every port faults at CPL 3), IDT
// stubs on IST 1, and the system call entry, in `mem`'s reserved area.
void build_program_supervisor(BootRam& mem, unsigned nr_vcpus);
// Special registers for vCPU `vcpu` of a program: the guest ABI's 64-bit
// ring-3 state with `cr3`, plus EFER.SCE (syscall) and EFER.NXE (no-execute
// pages).
kvm_sregs program_sregs(const kvm_sregs& base, unsigned vcpu, std::uint64_t cr3);
// STAR, LSTAR, CSTAR (0) and SFMASK for the entry above.
std::vector<KvmVcpu::Msr> program_syscall_msrs();

} // namespace minivmm
