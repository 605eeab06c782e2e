// The seccomp allowlists: a forbidden system call ends the process with one
// clear line and status 159; allowed ones (and KVM ioctls) go through. Each
// case that installs a filter runs in a forked child, since a filter cannot
// be removed; the others check the BPF program libseccomp generates with a
// small interpreter, for every call number of every ABI.
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "base/seccomp_filter.hpp"
#include "minivmm/error.hpp"
#include "minivmm/seccomp.hpp"
#include "skip.hpp"

using Catch::Matchers::Contains;

namespace {

struct ChildResult {
    int status = -1; // exit status, or -signal
    std::string err;
};

// Runs body() in a child whose stderr is captured; body's return value is
// the child's exit status.
template <typename Body>
ChildResult in_child(Body body) {
    int pipefd[2];
    REQUIRE(::pipe(pipefd) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(pipefd[1], 2);
        ::close(pipefd[0]);
        ::_exit(body());
    }
    ::close(pipefd[1]);
    ChildResult r;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0)
        r.err.append(buf, static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    int ws = 0;
    ::waitpid(pid, &ws, 0);
    r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -WTERMSIG(ws);
    return r;
}

// A classic-BPF interpreter for the instructions seccomp programs are made
// of (word loads of seccomp_data, AND, the jumps, returns), so a filter's
// verdict on every call number can be checked without making the calls.
// Any other instruction is a test failure.
std::uint32_t run_bpf(std::span<const sock_filter> prog, const seccomp_data& data) {
    std::uint32_t a = 0;
    for (std::size_t pc = 0; pc < prog.size(); ++pc) {
        const sock_filter& in = prog[pc];
        const std::uint32_t k = in.k;
        auto jump = [&](bool taken) { pc += taken ? in.jt : in.jf; };
        switch (in.code) {
        case BPF_LD | BPF_W | BPF_ABS:
            REQUIRE((k % 4 == 0 && k + 4 <= sizeof data));
            std::memcpy(&a, reinterpret_cast<const char*>(&data) + k, 4);
            break;
        case BPF_ALU | BPF_AND | BPF_K:
            a &= k;
            break;
        case BPF_JMP | BPF_JA:
            pc += k;
            break;
        case BPF_JMP | BPF_JEQ | BPF_K:
            jump(a == k);
            break;
        case BPF_JMP | BPF_JGT | BPF_K:
            jump(a > k);
            break;
        case BPF_JMP | BPF_JGE | BPF_K:
            jump(a >= k);
            break;
        case BPF_JMP | BPF_JSET | BPF_K:
            jump((a & k) != 0);
            break;
        case BPF_RET | BPF_K:
            return k;
        default:
            FAIL("unsupported BPF instruction " << in.code << " at " << pc);
        }
    }
    FAIL("the program runs off its end");
    return 0;
}

enum class Verdict { allow, trap, other };

Verdict verdict(std::span<const sock_filter> prog, std::uint32_t arch, std::uint32_t nr,
                std::uint64_t arg1 = 0) {
    seccomp_data d{};
    d.nr = static_cast<int>(nr);
    d.arch = arch;
    d.args[1] = arg1;
    const std::uint32_t action = run_bpf(prog, d) & SECCOMP_RET_ACTION_FULL;
    return action == SECCOMP_RET_ALLOW  ? Verdict::allow
           : action == SECCOMP_RET_TRAP ? Verdict::trap
                                        : Verdict::other;
}

const char* to_string(Verdict v) {
    return v == Verdict::allow ? "allow" : v == Verdict::trap ? "trap" : "other";
}

// Every x86-64 system call libseccomp has a name for, but these.
constexpr std::string_view kForbidden[] = {"socket", "connect",    "execve", "ptrace",
                                           "mount",  "kexec_load", "bpf"};
constexpr std::uint32_t kMaxNr = 460;
constexpr std::uint32_t kX32Bit = 0x40000000;

std::vector<std::string> every_call_but_forbidden() {
    std::vector<std::string> names;
    for (std::uint32_t nr = 0; nr <= kMaxNr; ++nr) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, static_cast<int>(nr));
        if (name == nullptr) continue;
        std::string n = name;
        std::free(name);
        if (std::find(std::begin(kForbidden), std::end(kForbidden), n) == std::end(kForbidden))
            names.push_back(std::move(n));
    }
    return names;
}

// The wrong verdicts of `prog`, an x86-64 filter allowing `names` (ioctl:
// KVM's requests, and what `ioctl` adds), over every call number of x86-64, x32 and i386.
std::vector<std::string> wrong_verdicts(std::span<const sock_filter> prog,
                                        const std::vector<std::string>& names,
                                        minivmm::detail::IoctlRequests ioctl) {
    using minivmm::detail::IoctlRequests;
    const bool fionbio = ioctl == IoctlRequests::kvm_and_fionbio;
    const bool terminal = ioctl == IoctlRequests::kvm_and_terminal;
    std::set<std::uint32_t> allowed;
    for (const auto& n : names)
        allowed.insert(static_cast<std::uint32_t>(
            seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, n.c_str())));
    std::vector<std::string> wrong;
    auto expect = [&](const char* arch_name, std::uint32_t arch, std::uint32_t nr,
                      std::uint64_t arg1, Verdict want) {
        Verdict got = verdict(prog, arch, nr, arg1);
        if (got == want) return;
        char* name = seccomp_syscall_resolve_num_arch(arch == AUDIT_ARCH_I386 ? SCMP_ARCH_X86
                                                                              : SCMP_ARCH_X86_64,
                                                      static_cast<int>(nr & ~kX32Bit));
        std::ostringstream s;
        s << arch_name << " nr " << nr << " (" << (name ? name : "?") << ")";
        if (arg1 != 0) s << " arg1 0x" << std::hex << arg1 << std::dec;
        s << ": " << to_string(got) << ", expected " << to_string(want);
        std::free(name);
        wrong.push_back(s.str());
    };
    for (std::uint32_t nr = 0; nr <= kMaxNr; ++nr) {
        if (nr == SYS_ioctl) {
            // The kernel takes the request as an unsigned int: the upper half
            // of the register does not count.
            for (std::uint64_t kvm : {std::uint64_t{KVM_RUN}, std::uint64_t{KVM_GET_API_VERSION},
                                      0xffffffff00000000 | KVM_RUN})
                expect("x86-64", AUDIT_ARCH_X86_64, nr, kvm, Verdict::allow);
            for (std::uint64_t other :
                 {std::uint64_t{0xAE}, std::uint64_t{0xAE0000}, std::uint64_t{0xAE} << 32,
                  std::uint64_t{TIOCSTI}, std::uint64_t{TIOCSCTTY}, std::uint64_t{TCGETS} << 32})
                expect("x86-64", AUDIT_ARCH_X86_64, nr, other, Verdict::trap);
            expect("x86-64", AUDIT_ARCH_X86_64, nr, FIONBIO,
                   fionbio ? Verdict::allow : Verdict::trap);
            for (std::uint64_t tty :
                 {TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCGPGRP, FIONREAD})
                expect("x86-64", AUDIT_ARCH_X86_64, nr, tty,
                       terminal ? Verdict::allow : Verdict::trap);
        } else {
            expect("x86-64", AUDIT_ARCH_X86_64, nr, 0,
                   allowed.count(nr) != 0 ? Verdict::allow : Verdict::trap);
        }
        expect("x32", AUDIT_ARCH_X86_64, nr | kX32Bit, 0, Verdict::trap);
        expect("i386", AUDIT_ARCH_I386, nr, 0, Verdict::trap);
    }
    return wrong;
}

// Names as libseccomp's builder takes them.
std::vector<std::string_view> views(const std::vector<std::string>& names) {
    return {names.begin(), names.end()};
}

} // namespace

TEST_CASE("seccomp: a forbidden system call stops the process with a clear line", "[seccomp]") {
    std::vector<minivmm::ThreadRole> roles{minivmm::ThreadRole::vcpu, minivmm::ThreadRole::io,
                                           minivmm::ThreadRole::program};
#if !defined(__SANITIZE_ADDRESS__)
    roles.push_back(minivmm::ThreadRole::vmm); // not installed in ASan builds (LeakSanitizer)
#endif
    for (auto role : roles) {
        CAPTURE(minivmm::to_string(role));
        auto r = in_child([role] {
            minivmm::install_seccomp(role);
            if (::getpid() <= 0) return 3; // allowed
            // socket(2) is on no list: the VMM never opens sockets after set-up
            // (the control socket listens before the filters go on).
            ::socket(AF_INET, SOCK_STREAM, 0);
            return 0; // not reached
        });
        CHECK(r.status == 159);
        CHECK_THAT(r.err, Contains(std::string("the ") + minivmm::to_string(role) + " thread") &&
                              Contains("system call 41") && Contains("--no-seccomp"));
    }
}

TEST_CASE("seccomp: ioctl is limited to KVM's requests", "[seccomp]") {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    // A KVM request (type 0xAE) goes through to the kernel, which refuses it
    // on /dev/null: the filter did not.
    auto kvm = in_child([fd] {
        minivmm::install_seccomp(minivmm::ThreadRole::vcpu);
        return ::ioctl(fd, KVM_GET_API_VERSION, 0) < 0 ? 0 : 4;
    });
    CHECK(kvm.status == 0);
    CHECK(kvm.err.empty());
    // A terminal request is not KVM's: stopped.
    auto tty = in_child([fd] {
        minivmm::install_seccomp(minivmm::ThreadRole::vcpu);
        termios t{};
        ::ioctl(fd, TCGETS, &t);
        return 0;
    });
    CHECK(tty.status == 159);
    CHECK_THAT(tty.err, Contains("system call 16")); // ioctl
    // FIONBIO only on the event loop's list (Asio sets sockets non-blocking).
    auto vmm = in_child([fd] {
        minivmm::install_seccomp(minivmm::ThreadRole::vmm);
        int on = 1;
        ::ioctl(fd, FIONBIO, &on);
        return 0;
    });
    CHECK(vmm.status == 0);
    // A Linux program's vCPU passes its terminal queries to the host (here
    // refused by /dev/null with ENOTTY), but not TIOCSTI, which would type
    // into the VMM's terminal.
    auto program_tty = in_child([fd] {
        minivmm::install_seccomp(minivmm::ThreadRole::program);
        termios t{};
        return ::ioctl(fd, TCGETS, &t) < 0 && errno == ENOTTY ? 0 : 6;
    });
    CHECK(program_tty.status == 0);
    auto program_sti = in_child([fd] {
        minivmm::install_seccomp(minivmm::ThreadRole::program);
        char c = 'x';
        ::ioctl(fd, TIOCSTI, &c);
        return 0;
    });
    CHECK(program_sti.status == 159);
    CHECK_THAT(program_sti.err, Contains("the program thread") && Contains("system call 16"));
    ::close(fd);
}

TEST_CASE("seccomp: the allowlists are small and nested roles only narrow", "[seccomp]") {
    auto vcpu = minivmm::seccomp_allowlist(minivmm::ThreadRole::vcpu);
    auto io = minivmm::seccomp_allowlist(minivmm::ThreadRole::io);
    auto vmm = minivmm::seccomp_allowlist(minivmm::ThreadRole::vmm);
    CHECK(vcpu.size() < 60);
    CHECK(io.size() < vcpu.size());
    CHECK(vmm.size() < 80);
    CHECK(minivmm::seccomp_allowlist(minivmm::ThreadRole::program).size() < 90);
    // An I/O thread is started by a vCPU thread and inherits its filter: all
    // it needs must be on the vCPU list too.
    for (std::string_view nr : io) {
        CAPTURE(nr);
        CHECK(std::find(vcpu.begin(), vcpu.end(), nr) != vcpu.end());
    }
    // An I/O thread under both filters still works.
    auto r = in_child([] {
        minivmm::install_seccomp(minivmm::ThreadRole::vcpu);
        minivmm::install_seccomp(minivmm::ThreadRole::io);
        char b = 'x';
        return ::write(2, &b, 0) == 0 ? 0 : 5;
    });
    CHECK(r.status == 0);
}

TEST_CASE("seccomp: an allowlist of hundreds of calls lets each through and traps all else",
          "[seccomp]") {
    using minivmm::detail::IoctlRequests;
    using minivmm::detail::SeccompFilter;
    auto names = every_call_but_forbidden();
    CAPTURE(names.size());
    REQUIRE(names.size() > 300); // past what 8-bit jump offsets can span
    auto allowed = views(names);
    for (auto ioctl :
         {IoctlRequests::kvm, IoctlRequests::kvm_and_fionbio, IoctlRequests::kvm_and_terminal}) {
        CAPTURE(static_cast<int>(ioctl));
        auto prog = SeccompFilter(allowed, ioctl).bpf();
        CAPTURE(prog.size());
        auto wrong = wrong_verdicts(prog, names, ioctl);
        std::string first;
        for (std::size_t i = 0; i < wrong.size() && i < 20; ++i)
            first += wrong[i] + "\n";
        INFO(wrong.size() << " wrong verdicts; the first ones:\n" << first);
        CHECK(wrong.empty());
    }
}

TEST_CASE("seccomp: each role's filter program allows exactly its list", "[seccomp]") {
    using minivmm::detail::IoctlRequests;
    for (auto role : {minivmm::ThreadRole::vcpu, minivmm::ThreadRole::io, minivmm::ThreadRole::vmm,
                      minivmm::ThreadRole::program}) {
        CAPTURE(minivmm::to_string(role));
        auto list = minivmm::seccomp_allowlist(role);
        std::vector<std::string> names(list.begin(), list.end());
        const auto ioctl = role == minivmm::ThreadRole::vmm       ? IoctlRequests::kvm_and_fionbio
                           : role == minivmm::ThreadRole::program ? IoctlRequests::kvm_and_terminal
                                                                  : IoctlRequests::kvm;
        auto prog = minivmm::detail::SeccompFilter(list, ioctl).bpf();
        auto wrong = wrong_verdicts(prog, names, ioctl);
        INFO((wrong.empty() ? std::string() : wrong.front()));
        CHECK(wrong.empty());
    }
}

TEST_CASE("seccomp: a name that is no x86-64 system call is an error naming it", "[seccomp]") {
    using minivmm::detail::IoctlRequests;
    using minivmm::detail::SeccompFilter;
    // socketcall exists on i386 only: libseccomp knows it, but not on x86-64.
    for (std::string_view bad : {"no_such_call", "socketcall", ""}) {
        CAPTURE(bad);
        const std::string_view list[] = {"read", bad, "write"};
        CHECK_THROWS_AS(SeccompFilter(list, IoctlRequests::kvm), minivmm::Error);
        CHECK_THROWS_WITH(SeccompFilter(list, IoctlRequests::kvm),
                          Contains("'" + std::string(bad) + "'") && Contains("libseccomp"));
    }
}

TEST_CASE("seccomp: an x32 system call traps with the one-line report", "[seccomp]") {
    auto r = in_child([] {
        minivmm::install_seccomp(minivmm::ThreadRole::vcpu);
        // getpid is allowed, but not through the x32 ABI (bit 30 set).
        ::syscall(kX32Bit | SYS_getpid);
        return 0; // not reached
    });
    CHECK(r.status == 159);
    CHECK_THAT(r.err, Contains("the vcpu thread made system call " +
                               std::to_string(kX32Bit | SYS_getpid)) &&
                          Contains("--no-seccomp"));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}

namespace {

// getpid through the i386 ABI: int 0x80, eax = 20 (i386's number).
long i386_getpid() {
    long ret = 20;
    asm volatile("int $0x80" : "+a"(ret) : : "memory", "cc", "r8", "r9", "r10", "r11");
    return ret;
}

} // namespace

TEST_CASE("seccomp: an i386 system call (int 0x80) traps with the one-line report", "[seccomp]") {
    // Without a filter first: a kernel without 32-bit emulation (or with it
    // off: ia32_emulation=off) answers int 0x80 with a fault, never with a
    // system call, so there is nothing for the filter to catch.
    auto probe = in_child([] {
        ::signal(SIGSEGV, SIG_DFL); // not Catch's handler, which would report a failure
        return i386_getpid() == ::getpid() ? 0 : 1;
    });
    if (probe.status != 0)
        return minivmm::test::skip_test(
            "this kernel runs no i386 system calls (32-bit emulation off: int 0x80 ended the "
            "child with status " +
                std::to_string(probe.status) + ")",
            "MINIVMM_REQUIRE_IA32");
    auto r = in_child([] {
        minivmm::install_seccomp(minivmm::ThreadRole::vcpu);
        i386_getpid();
        return 0; // not reached
    });
    CHECK(r.status == 159);
    CHECK_THAT(r.err, Contains("the vcpu thread made system call 20") && Contains("--no-seccomp"));
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
}
