#include "program/signal_frame.hpp"

#include <cstring>

#include "minivmm/boot_layout.hpp"

namespace minivmm::linux_abi {

namespace {

// Offsets in struct rt_sigframe (x86-64): pretcode, then struct ucontext
// (uc_flags, uc_link, uc_stack, uc_mcontext, uc_sigmask), then siginfo.
constexpr std::size_t kPretcode = 0;
constexpr std::size_t kUcFlags = 8, kUcLink = 16, kUcStack = 24, kMcontext = 48, kUcSigmask = 304;
constexpr std::size_t kInfo = 312, kFrameSize = 440;
// struct sigcontext_64, from kMcontext: r8..r15, rdi, rsi, rbp, rbx, rdx,
// rax, rcx, rsp (16 words from kScR8), then the rest.
constexpr std::size_t kScR8 = 0, kScIp = 128, kScFlags = 136, kScCs = 144, kScSs = 150,
                      kScErr = 152, kScTrapno = 160, kScOldmask = 168, kScCr2 = 176,
                      kScFpstate = 184;
constexpr std::size_t kFxsaveSize = 512, kFxMxcsr = 24;
constexpr std::uint64_t kUcSigcontextSs = 0x2, kUcStrictRestoreSs = 0x4;
constexpr std::uint64_t kSaOnstack = 0x08000000, kSaRestorer = 0x04000000;
constexpr std::uint32_t kSsOnstack = 1, kSsDisable = 2, kSsAutodisarm = 1u << 31;
constexpr std::uint64_t kRedZone = 128;
// FIX_EFLAGS of signal.c: what a frame may change (CF PF AF ZF SF TF DF OF
// AC RF); IF, IOPL and the rest stay the thread's.
constexpr std::uint64_t kFixEflags =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | 0x40000 | 0x10000;
constexpr std::uint64_t kEflagsTf = 0x100, kEflagsDf = 0x400, kEflagsRf = 0x10000;
// mxcsr_feature_mask with DAZ: the MXCSR bits a restored image may set.
constexpr std::uint32_t kMxcsrMask = 0xffff;

template <class T>
void store(std::span<std::byte> buf, std::size_t at, T value) {
    std::memcpy(buf.data() + at, &value, sizeof value);
}
template <class T>
T load(std::span<const std::byte> buf, std::size_t at) {
    T value;
    std::memcpy(&value, buf.data() + at, sizeof value);
    return value;
}

// __on_sig_stack: whether `sp` is inside the alternate stack.
bool inside(const AltStack& s, std::uint64_t sp) {
    return sp > s.sp && sp - s.sp <= s.size;
}
// sas_ss_flags.
std::uint32_t stack_flags(const AltStack& s, std::uint64_t sp) {
    if (s.size == 0) return kSsDisable;
    return on_alt_stack(s, sp) ? kSsOnstack : 0;
}

} // namespace

bool on_alt_stack(const AltStack& stack, std::uint64_t sp) {
    return !(stack.flags & kSsAutodisarm) && inside(stack, sp);
}

std::uint32_t alt_stack_flags(const AltStack& stack, std::uint64_t sp) {
    return stack_flags(stack, sp) | (stack.flags & kSsAutodisarm);
}

std::array<std::byte, 512> initial_fxsave() {
    std::array<std::byte, 512> fx{};
    store<std::uint16_t>(fx, 0, 0x37f); // FCW: every exception masked, 64-bit precision
    store<std::uint32_t>(fx, kFxMxcsr, 0x1f80);
    return fx;
}

std::array<std::byte, 128> SignalInfo::bytes() const {
    std::array<std::byte, 128> b{};
    store<std::int32_t>(b, 0, signo);
    store<std::int32_t>(b, 8, code); // si_errno at 4 stays 0
    if (fault) {
        store<std::uint64_t>(b, 16, addr);
    } else {
        store<std::int32_t>(b, 16, pid);
        store<std::uint32_t>(b, 20, uid);
    }
    return b;
}

std::optional<UserRegisters> push_signal_frame(UserMemory& memory, const UserRegisters& interrupted,
                                               const SignalFrameRequest& request) {
    // x86-64 has no default restorer: a handler without one cannot return.
    if (!(request.flags & kSaRestorer)) return std::nullopt;
    // get_sigframe: below the red zone, or at the top of the alternate stack
    // when the action asks for it and the thread is not already on it.
    const AltStack& alt = request.altstack;
    std::uint64_t sp = interrupted.rsp - kRedZone;
    const bool nested = on_alt_stack(alt, sp);
    bool entering = false;
    if ((request.flags & kSaOnstack) && stack_flags(alt, sp) == 0) {
        sp = alt.sp + alt.size;
        entering = true;
    }
    // fpu__alloc_mathframe: the FPU image 64-byte aligned, then the frame
    // with RSP 16-byte aligned minus 8, as after a call (align_sigframe).
    const std::uint64_t fpstate = (sp - kFxsaveSize) & ~std::uint64_t{63};
    const std::uint64_t frame = ((fpstate - kFrameSize) & ~std::uint64_t{15}) - 8;
    if ((nested || entering) && !inside(alt, frame)) return std::nullopt; // it would overflow
    if (frame > interrupted.rsp && !entering) return std::nullopt;        // wrapped below 0

    std::array<std::byte, kFrameSize> f{};
    store<std::uint64_t>(f, kPretcode, request.restorer);
    store<std::uint64_t>(f, kUcFlags, kUcSigcontextSs | kUcStrictRestoreSs);
    store<std::uint64_t>(f, kUcLink, 0);
    // save_altstack_ex: the settings before delivery, flags from the
    // interrupted RSP.
    store<std::uint64_t>(f, kUcStack, alt.sp);
    store<std::uint32_t>(f, kUcStack + 8, alt_stack_flags(alt, interrupted.rsp));
    store<std::uint64_t>(f, kUcStack + 16, alt.size);
    const UserRegisters& r = interrupted;
    const std::uint64_t gprs[] = {r.r8,  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15,
                                  r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax, r.rcx, r.rsp};
    for (std::size_t i = 0; i < std::size(gprs); ++i)
        store<std::uint64_t>(f, kMcontext + kScR8 + 8 * i, gprs[i]);
    store<std::uint64_t>(f, kMcontext + kScIp, r.rip);
    store<std::uint64_t>(f, kMcontext + kScFlags, r.rflags);
    store<std::uint16_t>(f, kMcontext + kScCs, layout::kUserCs);
    store<std::uint16_t>(f, kMcontext + kScSs, layout::kUserDs); // gs and fs stay 0
    store<std::uint64_t>(f, kMcontext + kScErr, r.err);
    store<std::uint64_t>(f, kMcontext + kScTrapno, r.trapno);
    store<std::uint64_t>(f, kMcontext + kScOldmask, request.saved_mask);
    store<std::uint64_t>(f, kMcontext + kScCr2, r.cr2);
    store<std::uint64_t>(f, kMcontext + kScFpstate, fpstate);
    store<std::uint64_t>(f, kUcSigmask, request.saved_mask);
    const auto info = request.info.bytes();
    std::memcpy(f.data() + kInfo, info.data(), info.size());

    // A stack the program cannot write is the SIGSEGV Linux forces.
    if (!memory.copy_out(fpstate, r.fxsave) || !memory.copy_out(frame, f)) return std::nullopt;

    UserRegisters handler = interrupted;
    handler.rip = request.handler;
    handler.rsp = frame;
    handler.rdi = static_cast<std::uint64_t>(request.sig);
    handler.rsi = frame + kInfo;
    handler.rdx = frame + 8; // &frame->uc
    handler.rax = 0;         // no vector registers carry arguments
    handler.rflags &= ~(kEflagsDf | kEflagsRf | kEflagsTf);
    handler.fxsave = initial_fxsave();
    return handler;
}

std::optional<RestoredFrame> read_signal_frame(const UserMemory& memory, std::uint64_t rsp,
                                               std::uint64_t rflags) {
    const std::uint64_t frame = rsp - 8;
    std::array<std::byte, kFrameSize> f{};
    if (!memory.copy_in(frame, f)) return std::nullopt;
    RestoredFrame out;
    UserRegisters& r = out.regs;
    std::uint64_t* gprs[] = {&r.r8,  &r.r9,  &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15,
                             &r.rdi, &r.rsi, &r.rbp, &r.rbx, &r.rdx, &r.rax, &r.rcx, &r.rsp};
    for (std::size_t i = 0; i < std::size(gprs); ++i)
        *gprs[i] = load<std::uint64_t>(f, kMcontext + kScR8 + 8 * i);
    r.rip = load<std::uint64_t>(f, kMcontext + kScIp);
    r.rflags = (rflags & ~kFixEflags) | (load<std::uint64_t>(f, kMcontext + kScFlags) & kFixEflags);
    // restore_sigcontext ORs RPL 3 into CS and SS; any selector but the
    // program's own would fault on the way back to user mode (SIGSEGV).
    const auto cs = static_cast<std::uint16_t>(load<std::uint16_t>(f, kMcontext + kScCs) | 3);
    const auto ss = static_cast<std::uint16_t>(load<std::uint16_t>(f, kMcontext + kScSs) | 3);
    const auto uc_flags = load<std::uint64_t>(f, kUcFlags);
    if (cs != layout::kUserCs) return std::nullopt;
    if ((uc_flags & kUcStrictRestoreSs) && ss != layout::kUserDs) return std::nullopt;
    // A non-canonical RIP faults on the return to user mode.
    if (r.rip >= (std::uint64_t{1} << 47)) return std::nullopt;
    const auto fpstate = load<std::uint64_t>(f, kMcontext + kScFpstate);
    if (fpstate == 0) {
        r.fxsave = initial_fxsave(); // fpu__restore_sig with no buffer
    } else {
        if (!memory.copy_in(fpstate, r.fxsave)) return std::nullopt;
        store<std::uint32_t>(r.fxsave, kFxMxcsr,
                             load<std::uint32_t>(r.fxsave, kFxMxcsr) & kMxcsrMask);
    }
    out.blocked = load<std::uint64_t>(f, kUcSigmask);
    out.altstack.sp = load<std::uint64_t>(f, kUcStack);
    out.altstack.flags = load<std::uint32_t>(f, kUcStack + 8);
    out.altstack.size = load<std::uint64_t>(f, kUcStack + 16);
    return out;
}

} // namespace minivmm::linux_abi
