// The x86-64 signal frame (src/program/signal_frame.*): where it goes, what
// it holds at Linux's offsets (struct rt_sigframe), and what rt_sigreturn
// takes back from it, over a FlatUserMemory.
#include <catch2/catch.hpp>

#include <signal.h>

#include <cstdint>
#include <cstring>

#include "minivmm/boot_layout.hpp"
#include "program/signal_frame.hpp"
#include "testing/flat_user_memory.hpp"

namespace {

using minivmm::linux_abi::FlatUserMemory;
using minivmm::linux_abi::push_signal_frame;
using minivmm::linux_abi::read_signal_frame;
using minivmm::linux_abi::SignalFrameRequest;
using minivmm::linux_abi::UserRegisters;

constexpr std::uint64_t kBase = 0x7ff000000000;
constexpr std::size_t kSize = 1 << 20;
constexpr std::uint64_t kSaRestorer = 0x04000000, kSaOnstack = 0x08000000, kSaSiginfo = 4;

UserRegisters sample_registers() {
    UserRegisters r;
    std::uint64_t v = 0x1111;
    for (std::uint64_t* p : {&r.r8, &r.r9, &r.r10, &r.r11, &r.r12, &r.r13, &r.r14, &r.r15, &r.rdi,
                             &r.rsi, &r.rbp, &r.rbx, &r.rdx, &r.rax, &r.rcx})
        *p = v++;
    r.rsp = kBase + kSize - 0x1003; // unaligned on purpose
    r.rip = 0x401234;
    r.rflags = 0x202 | 0x400 | 0x1; // IF, DF, CF
    for (std::size_t i = 0; i < r.fxsave.size(); ++i)
        r.fxsave[i] = static_cast<std::byte>(i * 7);
    const std::uint32_t mxcsr = 0x1f80; // a valid one: sigreturn keeps it as it is
    std::memcpy(r.fxsave.data() + 24, &mxcsr, 4);
    return r;
}

SignalFrameRequest sample_request() {
    SignalFrameRequest q;
    q.sig = SIGUSR1;
    q.handler = 0x402000;
    q.flags = kSaRestorer | kSaSiginfo;
    q.restorer = 0x403000;
    q.info.signo = SIGUSR1;
    q.info.code = -6;
    q.info.pid = 7;
    q.info.uid = 1000;
    q.saved_mask = 0x8000000000000201;
    return q;
}

template <class T>
T at(FlatUserMemory& mem, std::uint64_t va) {
    return mem.value_at<T>(va);
}

} // namespace

TEST_CASE("signal frame: layout, handler registers and the round trip", "[signal-frame]") {
    FlatUserMemory mem(kBase, kSize);
    const UserRegisters before = sample_registers();
    const auto handler = push_signal_frame(mem, before, sample_request());
    REQUIRE(handler);
    const std::uint64_t sp = handler->rsp;
    // As after a call: RSP + 8 is 16-byte aligned, below the red zone.
    CHECK((sp + 8) % 16 == 0);
    CHECK(sp + 440 <= before.rsp - 128);
    CHECK(handler->rip == 0x402000);
    CHECK(handler->rdi == SIGUSR1);
    CHECK(handler->rsi == sp + 312);
    CHECK(handler->rdx == sp + 8);
    CHECK(handler->rax == 0);
    CHECK((handler->rflags & 0x400) == 0); // DF cleared for the handler
    CHECK((handler->rflags & 0x1) == 1);   // the rest kept
    CHECK(handler->r12 == before.r12);
    CHECK(at<std::uint64_t>(mem, sp) == 0x403000);
    // struct ucontext: flags, link, stack, then sigcontext_64 at +48.
    CHECK(at<std::uint64_t>(mem, sp + 8) == 0x6);    // UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
    CHECK(at<std::uint32_t>(mem, sp + 8 + 24) == 2); // uc_stack.ss_flags: SS_DISABLE
    const std::uint64_t mc = sp + 8 + 40;
    CHECK(at<std::uint64_t>(mem, mc + 0) == before.r8);
    CHECK(at<std::uint64_t>(mem, mc + 64) == before.rdi);
    CHECK(at<std::uint64_t>(mem, mc + 96) == before.rdx);
    CHECK(at<std::uint64_t>(mem, mc + 120) == before.rsp);
    CHECK(at<std::uint64_t>(mem, mc + 128) == before.rip);
    CHECK(at<std::uint64_t>(mem, mc + 136) == before.rflags);
    CHECK(at<std::uint16_t>(mem, mc + 144) == minivmm::layout::kUserCs);
    CHECK(at<std::uint16_t>(mem, mc + 150) == minivmm::layout::kUserDs);
    CHECK(at<std::uint64_t>(mem, mc + 168) == 0x8000000000000201); // oldmask
    const std::uint64_t fpstate = at<std::uint64_t>(mem, mc + 184);
    CHECK(fpstate % 64 == 0);
    CHECK(fpstate >= sp + 440);
    CHECK(fpstate + 512 <= before.rsp - 128);
    CHECK(at<std::uint8_t>(mem, fpstate + 3) == 21);
    CHECK(at<std::uint64_t>(mem, sp + 8 + 296) == 0x8000000000000201); // uc_sigmask
    // siginfo: signo, code, pid, uid.
    CHECK(at<std::int32_t>(mem, sp + 312) == SIGUSR1);
    CHECK(at<std::int32_t>(mem, sp + 312 + 8) == -6);
    CHECK(at<std::int32_t>(mem, sp + 312 + 16) == 7);
    CHECK(at<std::uint32_t>(mem, sp + 312 + 20) == 1000);
    // The handler starts with a clean FPU.
    std::uint16_t fcw;
    std::memcpy(&fcw, handler->fxsave.data(), 2);
    CHECK(fcw == 0x37f);

    // The handler returns: its `ret` pops the restorer, which calls
    // rt_sigreturn with RSP = frame + 8. Everything comes back.
    const auto back = read_signal_frame(mem, sp + 8, 0x202);
    REQUIRE(back);
    CHECK(back->blocked == 0x8000000000000201);
    CHECK(back->regs.rdi == before.rdi);
    CHECK(back->regs.rcx == before.rcx);
    CHECK(back->regs.r11 == before.r11);
    CHECK(back->regs.rsp == before.rsp);
    CHECK(back->regs.rip == before.rip);
    CHECK(back->regs.rflags == before.rflags);
    CHECK(back->regs.fxsave == before.fxsave);
    CHECK(back->altstack.size == 0);
}

TEST_CASE("signal frame: what rt_sigreturn refuses or masks", "[signal-frame]") {
    FlatUserMemory mem(kBase, kSize);
    const auto handler = push_signal_frame(mem, sample_registers(), sample_request());
    REQUIRE(handler);
    const std::uint64_t sp = handler->rsp, mc = sp + 48;
    // The frame may change the arithmetic flags, DF, TF, AC and RF only:
    // not IF or IOPL.
    mem.put_value<std::uint64_t>(mc + 136, 0x3000 | 0xcd5);
    auto back = read_signal_frame(mem, sp + 8, 0x202);
    REQUIRE(back);
    CHECK(back->regs.rflags == (0x202 | 0xcd5));
    // MXCSR's reserved bits are cleared (mxcsr_feature_mask).
    const std::uint64_t fpstate = at<std::uint64_t>(mem, mc + 184);
    mem.put_value<std::uint32_t>(fpstate + 24, 0xffff1f80);
    back = read_signal_frame(mem, sp + 8, 0x202);
    REQUIRE(back);
    std::uint32_t mxcsr;
    std::memcpy(&mxcsr, back->regs.fxsave.data() + 24, 4);
    CHECK(mxcsr == 0x1f80);
    // No FPU image: the initial state.
    mem.put_value<std::uint64_t>(mc + 184, 0);
    back = read_signal_frame(mem, sp + 8, 0x202);
    REQUIRE(back);
    std::memcpy(&mxcsr, back->regs.fxsave.data() + 24, 4);
    CHECK(mxcsr == 0x1f80);
    // A foreign code segment, a non-canonical RIP, an unreadable frame.
    mem.put_value<std::uint16_t>(mc + 144, 0x33);
    CHECK(!read_signal_frame(mem, sp + 8, 0x202));
    mem.put_value<std::uint16_t>(mc + 144, minivmm::layout::kUserCs);
    mem.put_value<std::uint64_t>(mc + 128, 0x800000000000);
    CHECK(!read_signal_frame(mem, sp + 8, 0x202));
    CHECK(!read_signal_frame(mem, kBase + 4, 0x202));
    CHECK(!read_signal_frame(mem, 0x1000, 0x202));
}

TEST_CASE("signal frame: the alternate stack and the refusals", "[signal-frame]") {
    FlatUserMemory mem(kBase, kSize);
    SignalFrameRequest q = sample_request();
    q.flags |= kSaOnstack;
    q.altstack = {kBase + 0x10000, 0x4000, 0};
    const UserRegisters r = sample_registers();
    auto handler = push_signal_frame(mem, r, q);
    REQUIRE(handler);
    CHECK(handler->rsp > kBase + 0x10000);
    CHECK(handler->rsp < kBase + 0x14000);
    CHECK(at<std::uint64_t>(mem, handler->rsp + 24) == kBase + 0x10000); // uc_stack.ss_sp
    CHECK(at<std::uint32_t>(mem, handler->rsp + 32) == 0);               // not on it before
    CHECK(at<std::uint64_t>(mem, handler->rsp + 40) == 0x4000);
    // Already on it: nested, below the current RSP; SS_ONSTACK saved.
    UserRegisters on = r;
    on.rsp = handler->rsp;
    auto nested = push_signal_frame(mem, on, q);
    REQUIRE(nested);
    CHECK(nested->rsp < handler->rsp);
    CHECK(at<std::uint32_t>(mem, nested->rsp + 32) == 1);
    // Too small to hold a frame: refused (Linux forces SIGSEGV).
    q.altstack = {kBase + 0x10000, 0x200, 0};
    CHECK(!push_signal_frame(mem, r, q));
    // No restorer: refused (x86-64 has no default one).
    q = sample_request();
    q.flags = kSaSiginfo;
    CHECK(!push_signal_frame(mem, r, q));
    // A stack the program cannot write: refused.
    UserRegisters low = r;
    low.rsp = kBase + 256;
    CHECK(!push_signal_frame(mem, low, sample_request()));
}
