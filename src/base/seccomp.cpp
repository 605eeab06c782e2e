#include "minivmm/seccomp.hpp"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <vector>

#include "minivmm/error.hpp"

namespace minivmm {

namespace {

// Every thread: memory for malloc, futexes for locks, signals for kicks,
// time, and the way out; epoll_ctl because any thread may stop the VM, which
// posts to the event loop, and Asio re-arms its interrupter with it.
#define MINIVMM_COMMON_SYSCALLS                                                                    \
    SYS_read, SYS_write, SYS_writev, SYS_close, SYS_ioctl, SYS_mmap, SYS_munmap, SYS_mprotect,     \
        SYS_madvise, SYS_mremap, SYS_brk, SYS_futex, SYS_sched_yield, SYS_nanosleep,               \
        SYS_clock_nanosleep, SYS_clock_gettime, SYS_gettimeofday, SYS_getpid, SYS_gettid,          \
        SYS_rt_sigreturn, SYS_rt_sigprocmask, SYS_sigaltstack, SYS_tgkill, SYS_exit,               \
        SYS_exit_group, SYS_restart_syscall, SYS_epoll_ctl

// A vCPU thread: KVM_RUN and register reads, block requests served on the
// vCPU thread (hypercall and exit modes: pread/pwrite/fdatasync), and the
// start of a block I/O thread when the guest sets up its first ring
// (clone3 and friends, an eventfd, naming and scheduling the thread).
constexpr int kVcpu[] = {MINIVMM_COMMON_SYSCALLS, SYS_pread64, SYS_pwrite64, SYS_preadv,
                         SYS_pwritev, SYS_fdatasync, SYS_fsync, SYS_sync_file_range, SYS_poll,
                         SYS_ppoll, SYS_eventfd2, SYS_clone, SYS_clone3, SYS_set_robust_list,
                         SYS_rseq, SYS_prctl, SYS_sched_setscheduler, SYS_sched_getscheduler,
                         SYS_sched_getparam, SYS_getrandom,
                         // The I/O thread, which inherits this filter, adds its
                         // own; a filter can only take permissions away.
                         SYS_seccomp};

// An I/O thread: the same file I/O, its eventfds, polling.
constexpr int kIo[] = {
    MINIVMM_COMMON_SYSCALLS, SYS_pread64,       SYS_pwrite64,        SYS_preadv, SYS_pwritev,
    SYS_fdatasync,           SYS_fsync,         SYS_sync_file_range, SYS_poll,   SYS_ppoll,
    SYS_sched_getscheduler,  SYS_sched_getparam};

// The event-loop thread: the control socket (epoll, accept, send/recv),
// timers, hotplug (mmap, memfd or hugetlbfs RAM blocks, KVM slot ioctls),
// and teardown (joins, closing, unlinking the socket, giving back huge
// pages through /proc).
constexpr int kVmm[] = {MINIVMM_COMMON_SYSCALLS,
                        SYS_readv,
                        SYS_pread64,
                        SYS_pwrite64,
                        SYS_fdatasync,
                        SYS_epoll_wait,
                        SYS_epoll_pwait,
                        SYS_epoll_ctl,
                        SYS_epoll_create1,
                        SYS_eventfd2,
                        SYS_timerfd_create,
                        SYS_timerfd_settime,
                        SYS_timerfd_gettime,
                        SYS_accept,
                        SYS_accept4,
                        SYS_recvfrom,
                        SYS_recvmsg,
                        SYS_sendto,
                        SYS_sendmsg,
                        SYS_shutdown,
                        SYS_getsockopt,
                        SYS_setsockopt,
                        SYS_getsockname,
                        SYS_getpeername,
                        SYS_fcntl,
                        SYS_poll,
                        SYS_ppoll,
                        SYS_memfd_create,
                        SYS_ftruncate,
                        SYS_fallocate,
                        SYS_openat,
                        SYS_newfstatat,
                        SYS_fstat,
                        SYS_lseek,
                        SYS_unlink,
                        SYS_unlinkat,
                        SYS_rt_sigaction,
                        SYS_sched_getaffinity,
                        SYS_getrandom,
                        SYS_wait4};

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
constexpr int kSanitizerRuntime[] = {SYS_pipe,
                                     SYS_pipe2,
                                     SYS_sched_getaffinity,
                                     SYS_prctl,
                                     SYS_clone,
                                     SYS_clone3,
                                     SYS_ptrace,
                                     SYS_wait4,
                                     SYS_waitid,
                                     SYS_getdents64,
                                     SYS_openat,
                                     SYS_readlink,
                                     SYS_readlinkat,
                                     SYS_rt_sigaction,
                                     SYS_prlimit64,
                                     SYS_getrlimit,
                                     SYS_kill,
                                     SYS_tkill,
                                     SYS_lseek,
                                     SYS_fstat,
                                     SYS_newfstatat,
                                     SYS_getppid,
                                     SYS_set_robust_list,
                                     SYS_rseq,
                                     SYS_getrandom};
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

void install_sigsys_handler() {
    static std::once_flag once;
    static int error = 0;
    std::call_once(once, [] {
        struct sigaction sa {};
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (::sigaction(SIGSYS, &sa, nullptr) != 0) error = errno;
    });
    if (error != 0) throw KvmError("sigaction SIGSYS", error);
}

std::vector<sock_filter> build_filter(ThreadRole role) {
    auto allowed = seccomp_allowlist(role);
    std::vector<sock_filter> f;
    auto stmt = [&](unsigned short code, unsigned k) { f.push_back(BPF_STMT(code, k)); };
    auto jump = [&](unsigned short code, unsigned k, unsigned char jt, unsigned char jf) {
        f.push_back(BPF_JUMP(code, k, jt, jf));
    };
    constexpr unsigned kRetAllow = SECCOMP_RET_ALLOW;
    constexpr unsigned kRetTrap = SECCOMP_RET_TRAP;
    // Not x86-64 (e.g. an int 0x80 i386 call): forbidden.
    stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
    jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    stmt(BPF_RET | BPF_K, kRetTrap);
    stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
#ifdef MINIVMM_SANITIZER_RUNTIME
    for (int nr : kSanitizerRuntime) {
        jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1);
        stmt(BPF_RET | BPF_K, kRetAllow);
    }
#endif
    // ioctl: only KVM's requests (and FIONBIO on the event loop, for Asio).
    const std::size_t ioctl_check = f.size();
    jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 0); // jt patched below
    for (int nr : allowed) {
        if (nr == SYS_ioctl) continue;
        jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1);
        stmt(BPF_RET | BPF_K, kRetAllow);
    }
    stmt(BPF_RET | BPF_K, kRetTrap);
    // The ioctl request is args[1]; its low 32 bits hold type and number.
    const std::size_t ioctl_body = f.size();
    f[ioctl_check].jt = static_cast<unsigned char>(ioctl_body - ioctl_check - 1);
    stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[1]));
    if (role == ThreadRole::vmm) {
        jump(BPF_JMP | BPF_JEQ | BPF_K, FIONBIO, 0, 1);
        stmt(BPF_RET | BPF_K, kRetAllow);
    }
    stmt(BPF_ALU | BPF_AND | BPF_K, 0xff00);
    jump(BPF_JMP | BPF_JEQ | BPF_K, kKvmIoctlType << 8, 0, 1);
    stmt(BPF_RET | BPF_K, kRetAllow);
    stmt(BPF_RET | BPF_K, kRetTrap);
    return f;
}

} // namespace

const char* to_string(ThreadRole role) noexcept {
    switch (role) {
    case ThreadRole::vcpu:
        return "vcpu";
    case ThreadRole::io:
        return "io";
    case ThreadRole::vmm:
        return "vmm";
    }
    return "?";
}

std::span<const int> seccomp_allowlist(ThreadRole role) noexcept {
    switch (role) {
    case ThreadRole::vcpu:
        return kVcpu;
    case ThreadRole::io:
        return kIo;
    case ThreadRole::vmm:
        return kVmm;
    }
    return {};
}

void install_seccomp(ThreadRole role) {
#if defined(__SANITIZE_ADDRESS__)
    // LeakSanitizer's check at exit runs on this thread and stops the world
    // with a ptrace-ing clone, which hangs under a filter; ASan builds leave
    // the event loop unconfined (the default build tests its list).
    if (role == ThreadRole::vmm) return;
#endif
    install_sigsys_handler();
    auto filter = build_filter(role);
    // The jump offsets above are 8-bit: the program must stay short.
    static_assert(sizeof(kVmm) / sizeof(int) < 120, "allowlist too long for 8-bit jumps");
    sock_fprog prog{static_cast<unsigned short>(filter.size()), filter.data()};
    std::strncpy(t_role, to_string(role), sizeof t_role - 1);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        throw KvmError("prctl PR_SET_NO_NEW_PRIVS", errno);
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        throw KvmError("seccomp SECCOMP_SET_MODE_FILTER", errno,
                       "the kernel needs CONFIG_SECCOMP_FILTER; run with --no-seccomp to go on "
                       "without the sandbox");
}

} // namespace minivmm
