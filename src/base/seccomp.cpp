#include "minivmm/seccomp.hpp"

#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "base/seccomp_filter.hpp"
#include "minivmm/error.hpp"
#include "minivmm/unique_fd.hpp"

namespace minivmm {

namespace {

// Every thread: memory for malloc, futexes for locks, signals for kicks,
// time, and the way out; epoll_ctl because any thread may stop the VM, which
// posts to the event loop, and Asio re-arms its interrupter with it.
#define MINIVMM_COMMON_SYSCALLS                                                                    \
    "read", "write", "writev", "close", "ioctl", "mmap", "munmap", "mprotect", "madvise",          \
        "mremap", "brk", "futex", "sched_yield", "nanosleep", "clock_nanosleep", "clock_gettime",  \
        "gettimeofday", "getpid", "gettid", "rt_sigreturn", "rt_sigprocmask", "sigaltstack",       \
        "tgkill", "exit", "exit_group", "restart_syscall", "epoll_ctl"

// A vCPU thread: KVM_RUN and register reads, block requests served on the
// vCPU thread (hypercall and exit modes: pread/pwrite/fdatasync), and the
// start of a block I/O thread when the guest sets up its first ring
// (clone3 and friends, an eventfd, naming and scheduling the thread).
constexpr std::string_view kVcpu[] = {
    MINIVMM_COMMON_SYSCALLS, "pread64", "pwrite64", "preadv", "pwritev", "fdatasync", "fsync",
    "sync_file_range", "poll", "ppoll", "eventfd2", "clone", "clone3", "set_robust_list", "rseq",
    "prctl", "sched_setscheduler", "sched_getscheduler", "sched_getparam", "getrandom",
    // The I/O thread, which inherits this filter, adds its
    // own; a filter can only take permissions away.
    "seccomp"};

// The vCPU thread of a Linux program (minivmm-run --linux), which serves the
// program's system calls on the host (src/program/): KVM_RUN, then the calls
// those handlers make, and no more: files beneath the sandbox's directories
// (openat2 with RESOLVE_BENEATH, the *at calls on its fds), pipes, clocks and
// sleeps, ids, limits and resource figures, and the host's terminal answers
// on fds 0-2 (seven ioctl requests), and the start of another vCPU thread
// for a thread the program creates (below). No execve, no socket: the
// program's calls never become a host process or a connection.
constexpr std::string_view kProgram[] = {
    MINIVMM_COMMON_SYSCALLS, "readv", "pread64", "pwrite64", "preadv", "pwritev", "lseek", "openat",
    "openat2", "fcntl", "dup", "dup3", "pipe2", "fstat", "newfstatat", "statx", "fstatfs",
    "getdents64", "readlink", "readlinkat", "faccessat2", "fsync", "fdatasync", "ftruncate",
    "unlinkat", "mkdirat", "renameat2", "symlinkat", "fchmod", "fchmodat", "fchown", "fchownat",
    "utimensat", "getcwd", "uname", "umask", "getrandom", "getuid", "geteuid", "getgid", "getegid",
    "getppid", "getpgid", "getrlimit", "prlimit64", "getrusage", "sysinfo", "times",
    "sched_getaffinity", "clock_getres", "getcpu", "poll", "ppoll", "rt_sigpending",
    // A clone of a thread starts a vCPU thread here, which names and pins
    // itself and installs this filter again.
    "clone", "clone3", "set_robust_list", "rseq", "prctl", "sched_setaffinity", "seccomp"};

// An I/O thread: the same file I/O, its eventfds, polling.
constexpr std::string_view kIo[] = {MINIVMM_COMMON_SYSCALLS,
                                    "pread64",
                                    "pwrite64",
                                    "preadv",
                                    "pwritev",
                                    "fdatasync",
                                    "fsync",
                                    "sync_file_range",
                                    "poll",
                                    "ppoll",
                                    "sched_getscheduler",
                                    "sched_getparam"};

// The event-loop thread: the control socket (epoll, accept, send/recv),
// timers, hotplug (mmap, memfd or hugetlbfs RAM blocks, KVM slot ioctls),
// and teardown (joins, closing, unlinking the socket, giving back huge
// pages through /proc).
constexpr std::string_view kVmm[] = {MINIVMM_COMMON_SYSCALLS,
                                     "readv",
                                     "pread64",
                                     "pwrite64",
                                     "fdatasync",
                                     "epoll_wait",
                                     "epoll_pwait",
                                     "epoll_create1",
                                     "eventfd2",
                                     "timerfd_create",
                                     "timerfd_settime",
                                     "timerfd_gettime",
                                     "accept",
                                     "accept4",
                                     "recvfrom",
                                     "recvmsg",
                                     "sendto",
                                     "sendmsg",
                                     "shutdown",
                                     "getsockopt",
                                     "setsockopt",
                                     "getsockname",
                                     "getpeername",
                                     "fcntl",
                                     "poll",
                                     "ppoll",
                                     "memfd_create",
                                     "ftruncate",
                                     "fallocate",
                                     "openat",
                                     "newfstatat",
                                     "fstat",
                                     "lseek",
                                     "unlink",
                                     "unlinkat",
                                     "rt_sigaction",
                                     "sched_getaffinity",
                                     "getrandom",
                                     "wait4"};

#undef MINIVMM_COMMON_SYSCALLS

// Sanitizer builds only: their runtimes make calls of their own on any
// thread: sanitizer_common probes whether memory is readable by writing it
// into a pipe, new threads read their affinity, and LeakSanitizer's exit
// check stops the world from the main thread with a ptrace-ing clone that
// reads /proc/self/task. Release builds never get these; the default
// configuration of the test suite runs the strict lists.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MINIVMM_SANITIZER_RUNTIME 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MINIVMM_SANITIZER_RUNTIME 1
#endif
#endif
#ifdef MINIVMM_SANITIZER_RUNTIME
constexpr std::string_view kSanitizerRuntime[] = {"pipe",
                                                  "pipe2",
                                                  "sched_getaffinity",
                                                  "prctl",
                                                  "clone",
                                                  "clone3",
                                                  "ptrace",
                                                  "wait4",
                                                  "waitid",
                                                  "getdents64",
                                                  "openat",
                                                  "readlink",
                                                  "readlinkat",
                                                  "rt_sigaction",
                                                  "prlimit64",
                                                  "getrlimit",
                                                  "kill",
                                                  "tkill",
                                                  "lseek",
                                                  "fstat",
                                                  "newfstatat",
                                                  "getppid",
                                                  "set_robust_list",
                                                  "rseq",
                                                  "getrandom"};
#else
constexpr std::span<const std::string_view> kSanitizerRuntime;
#endif

constexpr unsigned kKvmIoctlType = 0xAE; // KVMIO, linux/kvm.h

// Set per thread by install_seccomp, read by the SIGSYS handler.
thread_local char t_role[16] = "?";

// Async-signal-safe: formats into a stack buffer, one write, _exit.
void on_sigsys(int, siginfo_t* info, void*) {
    char buf[200];
    std::size_t n = 0;
    auto put = [&](const char* s) {
        while (*s && n < sizeof buf - 1)
            buf[n++] = *s++;
    };
    auto put_num = [&](long v) {
        char digits[24];
        int k = 0;
        unsigned long u =
            v < 0 ? 0ul - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
        do
            digits[k++] = static_cast<char>('0' + u % 10);
        while ((u /= 10) != 0 && k < 23);
        if (v < 0) put("-");
        while (k > 0 && n < sizeof buf - 1)
            buf[n++] = digits[--k];
    };
    put("minivmm: seccomp: ");
    if (t_role[0] == '?') {
        put("a thread started by a sandboxed one");
    } else {
        put("the ");
        put(t_role);
        put(" thread");
    }
    put(" made system call ");
    put_num(info->si_syscall);
    put(", which its allowlist forbids; stopping the VMM (run with --no-seccomp to debug)\n");
    ssize_t ignored = ::write(2, buf, n);
    (void)ignored;
    ::_exit(128 + SIGSYS);
}

// The SIGSYS handler, and libseccomp's probe of what the kernel supports
// (a few seccomp() calls, kept in process-wide state): once, by one thread,
// before that thread has a filter.
void setup_process() {
    static std::once_flag once;
    static int error = 0;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (::sigaction(SIGSYS, &sa, nullptr) != 0) error = errno;
        seccomp_api_get();
    });
    if (error != 0) throw SystemError("sigaction SIGSYS", error);
}

std::string libseccomp_version() {
    const scmp_version* v = seccomp_version();
    return fmt::format("libseccomp {}.{}.{}", v->major, v->minor, v->micro);
}

// libseccomp returns -errno. The hint is its version: a call it refuses may
// be one it is too old for.
void check(int rc, std::string_view call, std::string_view what = {}) {
    if (rc < 0)
        throw SystemError(what.empty() ? std::string(call) : fmt::format("{} {}", call, what), -rc,
                          libseccomp_version());
}

detail::IoctlRequests ioctl_requests(ThreadRole role) {
    switch (role) {
    case ThreadRole::vmm:
        return detail::IoctlRequests::kvm_and_fionbio;
    case ThreadRole::program:
        return detail::IoctlRequests::kvm_and_terminal;
    default:
        return detail::IoctlRequests::kvm;
    }
}

// The terminal requests FileSystemCalls::ioctl passes to the host for a
// program's fds 0-2, and only those: not TIOCSTI, not the rest of type 0x54.
constexpr unsigned long kTerminalRequests[] = {TCGETS,     TCSETS,    TCSETSW, TCSETSF,
                                               TIOCGWINSZ, TIOCGPGRP, FIONREAD};

} // namespace

namespace detail {

void SeccompFilter::Release::operator()(void* ctx) const noexcept {
    seccomp_release(ctx);
}

SeccompFilter::SeccompFilter(std::span<const std::string_view> allowed, IoctlRequests ioctl)
    : ctx_(seccomp_init(SCMP_ACT_TRAP)) {
    if (!ctx_) throw SystemError("seccomp_init", ENOMEM, libseccomp_version());
    // Another ABI (i386's int 0x80, x32) traps too instead of killing the
    // process without a word; NO_NEW_PRIVS on load; the kernel's errno, not
    // ECANCELED, when the load fails.
    check(seccomp_attr_set(ctx_.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP), "seccomp_attr_set",
          "SCMP_FLTATR_ACT_BADARCH");
    check(seccomp_attr_set(ctx_.get(), SCMP_FLTATR_CTL_NNP, 1), "seccomp_attr_set",
          "SCMP_FLTATR_CTL_NNP");
    check(seccomp_attr_set(ctx_.get(), SCMP_FLTATR_API_SYSRAWRC, 1), "seccomp_attr_set",
          "SCMP_FLTATR_API_SYSRAWRC");
    bool ioctl_allowed = false;
    for (std::string_view name : allowed) {
        const int nr =
            seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, std::string(name).c_str());
        // Below 0: unknown, or a call of another architecture only (one of
        // libseccomp's pseudo-numbers), which a rule would quietly skip.
        if (nr < 0)
            throw Error(fmt::format("seccomp: '{}' is not an x86-64 system call that {} knows",
                                    name, libseccomp_version()));
        if (nr == SCMP_SYS(ioctl)) {
            ioctl_allowed = true;
            continue;
        }
        // A call named twice (the lists overlap) makes the same rule, which
        // libseccomp accepts.
        check(seccomp_rule_add_exact(ctx_.get(), SCMP_ACT_ALLOW, nr, 0), "seccomp_rule_add_exact",
              name);
    }
    if (ioctl_allowed) {
        // The request is 64 bits to libseccomp, compared as two halves: a
        // zero mask on the upper one ignores it, as the kernel does (its cmd
        // is an unsigned int) and as the old hand-built filter did.
        check(seccomp_rule_add_exact(ctx_.get(), SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, kKvmIoctlType << 8)),
              "seccomp_rule_add_exact", "ioctl");
        if (ioctl == IoctlRequests::kvm_and_fionbio)
            check(seccomp_rule_add_exact(ctx_.get(), SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                         SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffff, FIONBIO)),
                  "seccomp_rule_add_exact", "ioctl FIONBIO");
        if (ioctl == IoctlRequests::kvm_and_terminal)
            for (unsigned long request : kTerminalRequests)
                check(seccomp_rule_add_exact(ctx_.get(), SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffff, request)),
                      "seccomp_rule_add_exact", fmt::format("ioctl {:#x}", request));
        // KVM_RUN is a vCPU thread's hot call: ioctl is tested first.
        check(seccomp_syscall_priority(ctx_.get(), SCMP_SYS(ioctl), 255),
              "seccomp_syscall_priority", "ioctl");
    }
}

std::vector<sock_filter> SeccompFilter::bpf() const {
    UniqueFd fd(::memfd_create("minivmm-seccomp-bpf", MFD_CLOEXEC));
    if (!fd) throw SystemError("memfd_create", errno);
    check(seccomp_export_bpf(ctx_.get(), fd.get()), "seccomp_export_bpf");
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw SystemError("fstat", errno);
    std::vector<sock_filter> prog(static_cast<std::size_t>(st.st_size) / sizeof(sock_filter));
    const auto bytes = static_cast<ssize_t>(prog.size() * sizeof(sock_filter));
    const ssize_t n = ::pread(fd.get(), prog.data(), static_cast<std::size_t>(bytes), 0);
    if (n < 0) throw SystemError("pread", errno);
    if (n != bytes || bytes != st.st_size) throw SystemError("pread", EIO, "a short BPF program");
    return prog;
}

void SeccompFilter::load() const {
    if (const int rc = seccomp_load(ctx_.get()); rc < 0)
        throw SystemError("seccomp_load (PR_SET_NO_NEW_PRIVS, SECCOMP_SET_MODE_FILTER)", -rc,
                          "the kernel needs CONFIG_SECCOMP_FILTER; run with --no-seccomp to go on "
                          "without the sandbox");
}

SeccompFilter role_filter(ThreadRole role) {
    auto names = seccomp_allowlist(role);
    std::vector<std::string_view> allowed(names.begin(), names.end());
    allowed.insert(allowed.end(), std::begin(kSanitizerRuntime), std::end(kSanitizerRuntime));
    return SeccompFilter(allowed, ioctl_requests(role));
}

} // namespace detail

const char* to_string(ThreadRole role) noexcept {
    switch (role) {
    case ThreadRole::vcpu:
        return "vcpu";
    case ThreadRole::io:
        return "io";
    case ThreadRole::vmm:
        return "vmm";
    case ThreadRole::program:
        return "program";
    }
    return "?";
}

std::span<const std::string_view> seccomp_allowlist(ThreadRole role) noexcept {
    switch (role) {
    case ThreadRole::vcpu:
        return kVcpu;
    case ThreadRole::io:
        return kIo;
    case ThreadRole::vmm:
        return kVmm;
    case ThreadRole::program:
        return kProgram;
    }
    return {};
}

std::string seccomp_listing(ThreadRole role) {
    auto names = seccomp_allowlist(role);
    std::string text;
    for (std::string_view name : names) {
        text += name;
        if (name == "ioctl") {
            switch (ioctl_requests(role)) {
            case detail::IoctlRequests::kvm:
                text += "  (only KVM's requests, type 0xAE)";
                break;
            case detail::IoctlRequests::kvm_and_fionbio:
                text += "  (only KVM's requests, type 0xAE, and FIONBIO)";
                break;
            case detail::IoctlRequests::kvm_and_terminal:
                text += "  (only KVM's requests, type 0xAE, and TCGETS, TCSETS, TCSETSW, TCSETSF, "
                        "TIOCGWINSZ, TIOCGPGRP, FIONREAD)";
                break;
            }
        }
        text += '\n';
    }
    for (std::string_view name : kSanitizerRuntime)
        if (std::find(names.begin(), names.end(), name) == names.end())
            text += fmt::format("{}  (sanitizer runtime)\n", name);
    return text;
}

void install_seccomp(ThreadRole role) {
#if defined(__SANITIZE_ADDRESS__)
    // LeakSanitizer's check at exit runs on this thread and stops the world
    // with a ptrace-ing clone, which hangs under a filter; ASan builds leave
    // the event loop unconfined (the default build tests its list).
    if (role == ThreadRole::vmm) return;
#endif
    setup_process();
    auto filter = detail::role_filter(role);
    std::strncpy(t_role, to_string(role), sizeof t_role - 1);
    filter.load();
}

} // namespace minivmm
