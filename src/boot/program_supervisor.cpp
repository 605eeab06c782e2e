#include "boot/program_supervisor.hpp"

#include <array>

#include "boot/builders.hpp"
#include "minivmm/boot.hpp"

namespace minivmm {

namespace L = layout;
namespace P = program_layout;

namespace {

constexpr std::uint32_t kMsrStar = 0xc0000081, kMsrLstar = 0xc0000082, kMsrCstar = 0xc0000083,
                        kMsrSfmask = 0xc0000084;
constexpr std::uint64_t kEferSce = 1 << 0, kEferNxe = 1 << 11;
// 64-bit TSS: IST1 at byte 36 (Intel SDM vol. 3, 8.7).
constexpr std::uint64_t kTssIst1 = 36;

} // namespace

void build_program_supervisor(BootRam& mem, unsigned nr_vcpus) {
    build_gdt(mem, nr_vcpus);
    build_tss(mem, nr_vcpus);
    // Every bit set: no port is open to ring 3 (the program's `in`/`out` is
    // a #GP, SIGSEGV as on Linux), so only the VMM's ring-0 code reaches
    // the system call and exception ports.
    mem.fill(L::kIoBitmap, L::kIoBitmapSize, std::byte{0xff});
    for (unsigned v = 0; v < nr_vcpus; ++v) {
        std::uint64_t base = L::kTssArray + v * L::kTssStride;
        std::uint64_t stack_top = L::kExceptionStacks + (v + 1ull) * L::kExceptionStackSize;
        mem.write<std::uint64_t>(base + kTssIst1, stack_top);
    }
    // IST 1 in every gate: an exception in the system call entry (where RSP
    // is still the program's) lands on the VMM's stack, not on the program's.
    // Its stubs write their port with `out %al, $imm8`: the guest ABI's go
    // through DX, which would lose the program's RDX (a handler may return
    // to the faulting instruction with every register as it was).
    build_idt(mem, 1, static_cast<std::uint8_t>(P::kExceptionPort));
    const std::array<std::uint8_t, 7> entry = {
        0xe6, static_cast<std::uint8_t>(P::kSyscallPort), // out %al, $kSyscallPort
        0x48, 0x0f,
        0x07,       // sysretq
        0x0f, 0x0b, // ud2: never reached
    };
    mem.write_bytes(P::kSyscallEntry, std::as_bytes(std::span(entry)));
}

kvm_sregs program_sregs(const kvm_sregs& base, unsigned vcpu, std::uint64_t cr3) {
    kvm_sregs s = initial_sregs(base, vcpu, cr3);
    s.efer |= kEferSce | kEferNxe;
    return s;
}

std::vector<KvmVcpu::Msr> program_syscall_msrs() {
    // STAR: `syscall` loads CS = kKernelCs (SS = +8); `sysretq` loads CS =
    // base + 16 and SS = base + 8, both RPL 3: base 0x10 gives kUserCs 0x23
    // and kUserDs 0x1b (Intel SDM vol. 2, SYSCALL and SYSRET).
    static_assert((L::kUserCs & ~3) == 0x10 + 16 && (L::kUserDs & ~3) == 0x10 + 8);
    const std::uint64_t star = (std::uint64_t{0x10} << 48) | (std::uint64_t{L::kKernelCs} << 32);
    return {{kMsrStar, star},
            {kMsrLstar, P::kSyscallEntry},
            // No 32-bit code segment exists, so compatibility mode cannot be
            // entered; were it reached, page 0 is unmapped: a fault, reported.
            {kMsrCstar, 0},
            {kMsrSfmask, P::kSyscallFlagMask}};
}

} // namespace minivmm
