// The signal frame of x86-64 Linux (issue 17): what the kernel writes on a
// thread's stack before it runs a handler (struct rt_sigframe: the return
// address of the restorer, a ucontext with the interrupted registers, the
// siginfo, and the FPU state), and what rt_sigreturn reads back. The layout
// and the rules follow arch/x86/kernel/signal.c (get_sigframe) and
// signal_64.c (x64_setup_rt_frame, restore_sigcontext), so that glibc's and
// musl's restorers, getcontext-style code and crash handlers that read
// uc_mcontext all find what they expect. Pure functions over UserMemory: the
// runner turns the registers into the vCPU's.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "program/user_memory.hpp"

namespace minivmm::linux_abi {

// A thread's user-mode state as struct sigcontext_64 and the FXSAVE image
// hold it. CS and SS are not kept: a program has one user code and one user
// data segment (boot_layout.hpp's kUserCs and kUserDs).
struct UserRegisters {
    std::uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
    std::uint64_t rdi = 0, rsi = 0, rbp = 0, rbx = 0, rdx = 0, rax = 0, rcx = 0, rsp = 0;
    std::uint64_t rip = 0, rflags = 0;
    // Why the thread stopped: a fault's vector, error code and CR2 (0 for a
    // signal that was sent), reported in the frame as Linux reports them.
    std::uint64_t trapno = 0, err = 0, cr2 = 0;
    // x87, MMX and SSE state (the legacy area of XSAVE: the program's vCPU
    // has no CR4.OSXSAVE, so this is all of it).
    std::array<std::byte, 512> fxsave{};
};

// The FPU state a handler starts with (fpu__clear_user_states: the x87
// control word 0x37f, MXCSR 0x1f80, every register zero).
std::array<std::byte, 512> initial_fxsave();

// siginfo_t (128 bytes) for the kinds of signal the VMM sends.
struct SignalInfo {
    int signo = 0;
    int code = 0; // SI_USER 0, SI_KERNEL 0x80, SI_TKILL -6, or a fault's code
    // SI_USER and SI_TKILL: the sender.
    int pid = 0;
    std::uint32_t uid = 0;
    // A fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP): si_addr.
    bool fault = false;
    std::uint64_t addr = 0;
    std::array<std::byte, 128> bytes() const;
};

// A thread's alternate signal stack (sigaltstack), flags as stack_t's.
struct AltStack {
    std::uint64_t sp = 0;
    std::uint64_t size = 0;  // 0: none
    std::uint32_t flags = 0; // SS_AUTODISARM kept; SS_DISABLE when size is 0
};

// on_sig_stack: whether a thread at `sp` is on `stack` (never with
// SS_AUTODISARM: its handler may then change the stack freely).
bool on_alt_stack(const AltStack& stack, std::uint64_t sp);
// The flags sigaltstack and the frame's uc_stack report for `stack` with the
// thread at `sp` (sas_ss_flags, and SS_AUTODISARM as set).
std::uint32_t alt_stack_flags(const AltStack& stack, std::uint64_t sp);

struct SignalFrameRequest {
    int sig = 0;
    std::uint64_t handler = 0, flags = 0, restorer = 0; // the action (SA_* flags)
    SignalInfo info;
    std::uint64_t saved_mask = 0; // the mask sigreturn restores (uc_sigmask)
    AltStack altstack;            // the thread's, as it was before this delivery
};

// Writes the frame below `interrupted.rsp` (after the 128-byte red zone), or
// at the top of the alternate stack for SA_ONSTACK when the thread is not
// already on it, and returns the registers the handler starts with: RIP the
// handler, RDI the signal, RSI &info, RDX &uc, RAX 0, RSP the frame (whose
// first word is the restorer, its return address), DF, TF and RF cleared.
// nullopt when Linux would force SIGSEGV instead: no SA_RESTORER, a frame
// that would overflow the alternate stack, or memory it cannot write.
std::optional<UserRegisters> push_signal_frame(UserMemory& memory, const UserRegisters& interrupted,
                                               const SignalFrameRequest& request);

struct RestoredFrame {
    UserRegisters regs;
    std::uint64_t blocked = 0; // uc_sigmask
    AltStack altstack;         // uc_stack, which sigreturn applies as sigaltstack would
};

// rt_sigreturn: the frame whose restorer the handler returned to is at
// `rsp - 8` (the handler's `ret` popped the return address). `rflags` is
// the thread's current RFLAGS: only the arithmetic flags, DF, TF, AC and RF
// come from the frame. nullopt for a frame Linux would refuse with SIGSEGV
// (unreadable, a foreign CS or SS, a non-canonical RIP).
std::optional<RestoredFrame> read_signal_frame(const UserMemory& memory, std::uint64_t rsp,
                                               std::uint64_t rflags);

} // namespace minivmm::linux_abi
