#include "program/process_calls.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <limits>
#include <span>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "minivmm/log.hpp"

namespace minivmm::linux_abi {

// The structures the guest reads are the host's own on x86-64.
static_assert(sizeof(struct sysinfo) == 112 && offsetof(struct sysinfo, mem_unit) == 104);
static_assert(sizeof(struct rusage) == 144);
static_assert(sizeof(struct tms) == 32);

namespace {

// arch/x86 TASK_SIZE_MAX with 4-level paging: the first address above user
// space (arch_prctl's limit for FS/GS bases; access_ok's for user pointers).
constexpr std::uint64_t kTaskSizeMax = (1ull << 47) - 4096;
constexpr std::int64_t kNsPerSec = 1'000'000'000;
constexpr std::int64_t kKtimeMax = std::numeric_limits<std::int64_t>::max();
constexpr std::uint64_t kMaxRwCount = INT_MAX & ~std::uint64_t{4095}; // include/linux/fs.h
constexpr std::uint64_t kPage = 4096;
constexpr long kUserHz = 100; // USER_HZ: clock_t ticks per second

// asm/prctl.h
constexpr int kArchSetGs = 0x1001;
constexpr int kArchSetFs = 0x1002;
constexpr int kArchGetFs = 0x1003;
constexpr int kArchGetGs = 0x1004;

// uapi/linux/resource.h: RLIM_NLIMITS and the resources with special rules.
constexpr unsigned kRlimits = 16;
constexpr std::uint64_t kRlimInfinity = ~std::uint64_t{0};

// uapi/linux/random.h
constexpr std::uint64_t kGrndNonblock = 1, kGrndRandom = 2, kGrndInsecure = 4;

// Clock ids (uapi/linux/time.h) and the CPU-clock encoding of negative ones
// (include/linux/posix-timers.h: ~pid << 3 | perthread << 2 | which).
constexpr int kClockSgiCycle = 10; // never a valid clock
constexpr int kClockTai = 11;
constexpr int kCpuClockPerthread = 4;
constexpr int kCpuClockWhichMask = 3; // PROF 0, VIRT 1, SCHED 2
constexpr int kCpuClockSched = 2;
constexpr int kClockFd = 3; // (id & 7) == 3: a dynamic clock, named by an fd
constexpr std::uint64_t kTimerAbstime = 1;

// Signals (uapi/asm-generic/signal-defs.h, arch/x86 signal.h).
constexpr std::uint64_t kSigDfl = 0, kSigIgn = 1;
constexpr std::uint64_t kSigsetSize = 8;
// UAPI_SA_FLAGS for x86: NOCLDSTOP NOCLDWAIT SIGINFO EXPOSE_TAGBITS RESTORER
// ONSTACK RESTART NODEFER RESETHAND. do_sigaction clears every other bit.
constexpr std::uint64_t kUapiSaFlags =
    0x1 | 0x2 | 0x4 | 0x800 | 0x04000000 | 0x08000000 | 0x10000000 | 0x40000000 | 0x80000000;
constexpr std::uint32_t kSsOnstack = 1, kSsDisable = 2, kSsAutodisarm = 1u << 31;
constexpr std::uint64_t kMinSigStackSize = 2048; // x86 MINSIGSTKSZ

// uapi/linux/prctl.h
constexpr int kPrGetDumpable = 3, kPrSetDumpable = 4, kPrSetName = 15, kPrGetName = 16,
              kPrSetNoNewPrivs = 38, kPrGetNoNewPrivs = 39;

// uapi/linux/sched.h: the clone flags a thread is made with (as pthreads
// pass them), and those it may add.
constexpr std::uint64_t kCsignal = 0xff, kCloneVm = 0x100, kCloneFs = 0x200, kCloneFiles = 0x400,
                        kCloneSighand = 0x800, kCloneParent = 0x8000, kCloneThread = 0x10000,
                        kCloneSysvsem = 0x40000, kCloneSettls = 0x80000,
                        kCloneParentSettid = 0x100000, kCloneChildCleartid = 0x200000,
                        kCloneDetached = 0x400000, kCloneChildSettid = 0x1000000,
                        kCloneNewns = 0x20000;
constexpr std::uint64_t kThreadFlags =
    kCloneVm | kCloneFs | kCloneFiles | kCloneSighand | kCloneThread | kCloneSysvsem;
constexpr std::uint64_t kThreadOptionalFlags =
    kCloneSettls | kCloneParentSettid | kCloneChildCleartid | kCloneChildSettid | kCloneDetached;

// uapi/linux/futex.h
constexpr int kFutexWait = 0, kFutexWake = 1, kFutexRequeue = 3, kFutexCmpRequeue = 4,
              kFutexWakeOp = 5, kFutexLockPi = 6, kFutexWaitBitset = 9, kFutexWakeBitset = 10,
              kFutexWaitRequeuePi = 11, kFutexLockPi2 = 13;
constexpr int kFutexPrivateFlag = 128, kFutexClockRealtime = 256;
constexpr std::uint32_t kFutexBitsetMatchAny = 0xffffffff;
constexpr std::uint32_t kFutexWaiters = 0x80000000, kFutexOwnerDied = 0x40000000,
                        kFutexTidMask = 0x3fffffff;

struct Timespec {
    std::int64_t sec;
    std::int64_t nsec;
};
struct Timeval {
    std::int64_t sec;
    std::int64_t usec;
};
// stack_t on x86-64.
struct StackT {
    std::uint64_t sp;
    std::int32_t flags;
    std::uint32_t pad;
    std::uint64_t size;
};
static_assert(sizeof(StackT) == 24 && sizeof(Timespec) == 16);

// A guest int argument (pid_t, clockid_t, int): the low 32 bits, as Linux's
// syscall wrappers take it.
int int_arg(std::uint64_t reg) {
    return static_cast<int>(static_cast<std::uint32_t>(reg));
}

std::uint64_t signal_bit(int sig) {
    return std::uint64_t{1} << (sig - 1);
}

// The signals the process itself could never take or block (sig_kernel_only).
constexpr std::uint64_t kUnblockable =
    (std::uint64_t{1} << (SIGKILL - 1)) | (std::uint64_t{1} << (SIGSTOP - 1));

bool default_ignored(int sig) { // sig_kernel_ignore
    return sig == SIGCONT || sig == SIGCHLD || sig == SIGWINCH || sig == SIGURG;
}
bool stop_signal(int sig) { // sig_kernel_stop
    return sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}
constexpr std::uint64_t kStopSignals =
    (std::uint64_t{1} << (SIGSTOP - 1)) | (std::uint64_t{1} << (SIGTSTP - 1)) |
    (std::uint64_t{1} << (SIGTTIN - 1)) | (std::uint64_t{1} << (SIGTTOU - 1));
// The synchronous signals next_signal takes first.
constexpr std::uint64_t kSynchronousSignals =
    (std::uint64_t{1} << (SIGSEGV - 1)) | (std::uint64_t{1} << (SIGBUS - 1)) |
    (std::uint64_t{1} << (SIGILL - 1)) | (std::uint64_t{1} << (SIGTRAP - 1)) |
    (std::uint64_t{1} << (SIGFPE - 1)) | (std::uint64_t{1} << (SIGSYS - 1));

// sig_handler_ignored: whether sending `sig` under `action` does nothing.
bool ignored_by(int sig, const ProcessCalls::SignalAction& action) {
    return action.handler == kSigIgn || (action.handler == kSigDfl && default_ignored(sig));
}

std::string signal_name(int sig) {
    static constexpr std::string_view kNames[] = {
        "",          "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",   "SIGTRAP", "SIGABRT", "SIGBUS",
        "SIGFPE",    "SIGKILL", "SIGUSR1",   "SIGSEGV", "SIGUSR2",  "SIGPIPE", "SIGALRM", "SIGTERM",
        "SIGSTKFLT", "SIGCHLD", "SIGCONT",   "SIGSTOP", "SIGTSTP",  "SIGTTIN", "SIGTTOU", "SIGURG",
        "SIGXCPU",   "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO",   "SIGPWR",  "SIGSYS"};
    if (sig > 0 && sig < static_cast<int>(std::size(kNames))) return std::string(kNames[sig]);
    return fmt::format("signal {}", sig); // the real-time signals 32..64
}

// timespec64_valid.
bool valid_timespec(const Timespec& ts) {
    return ts.sec >= 0 && ts.nsec >= 0 && ts.nsec < kNsPerSec;
}

// timespec64_to_ktime: nanoseconds, saturated at KTIME_MAX.
std::int64_t to_ns(const Timespec& ts) {
    if (ts.sec >= kKtimeMax / kNsPerSec) return kKtimeMax;
    return ts.sec * kNsPerSec + ts.nsec;
}

Timespec to_timespec(std::int64_t ns) {
    return {ns / kNsPerSec, ns % kNsPerSec};
}

// ktime_add_safe.
std::int64_t add_saturated(std::int64_t a, std::int64_t b) {
    std::int64_t sum;
    if (__builtin_add_overflow(a, b, &sum)) return kKtimeMax;
    return sum;
}

std::int64_t host_now_ns(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
}

// The calling host thread's CPU-time clock for `which` (PROF, VIRT, SCHED):
// MAKE_THREAD_CPUCLOCK(0, which). The guest's process clock is its one
// thread's, which the calling host thread runs.
clockid_t host_thread_cpu_clock(int which) {
    return static_cast<clockid_t>((~0 << 3) | kCpuClockPerthread | which);
}

bool host_has_rtc() {
    timespec ts{};
    return ::clock_getres(CLOCK_REALTIME_ALARM, &ts) == 0;
}

std::array<std::uint64_t, 2> host_rlimit(int resource) {
    struct rlimit r {};
    if (::getrlimit(resource, &r) != 0) return {0, 0};
    return {r.rlim_cur, r.rlim_max};
}

} // namespace

// A point in time on a host clock.
struct ProcessCalls::Deadline {
    clockid_t clock;
    std::int64_t at_ns;
};

std::uint32_t ProcessCalls::Options::host_uid() {
    return ::getuid();
}

std::uint32_t ProcessCalls::Options::host_gid() {
    return ::getgid();
}

std::uint32_t ProcessCalls::Options::host_umask() {
    // umask(2) can only be read by changing it, which would race with the
    // VMM's other threads; procfs shows it (Linux 4.7 and later).
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.starts_with("Umask:")) return std::stoul(line.substr(6), nullptr, 8) & 0777;
    }
    return 022;
}

ProcessCalls::ProcessCalls(Options options, UserMemory& memory, FileTable& files)
    : options_(std::move(options)), cpus_(std::max(1, options_.cpus)), memory_(memory),
      files_(files), sleeper_(options_.sleeper), umask_(options_.umask & 0777),
      next_tid_(options_.pid + 1) {
    // The limits Linux starts init with (include/asm-generic/resource.h),
    // except those the VMM fixes: the stack is one mapping of stack_size, the
    // fd table has its own size, and NPROC and SIGPENDING, which Linux sizes
    // from the machine's memory, are the host's.
    const std::array<std::uint64_t, 2> infinite{kRlimInfinity, kRlimInfinity};
    rlimits_.fill(infinite);
    rlimits_[RLIMIT_STACK] = {options_.stack_size, options_.stack_size};
    rlimits_[RLIMIT_CORE] = {0, kRlimInfinity};
    rlimits_[RLIMIT_NPROC] = host_rlimit(RLIMIT_NPROC);
    rlimits_[RLIMIT_NOFILE] = {static_cast<std::uint64_t>(files.limit()),
                               static_cast<std::uint64_t>(files.hard_limit())};
    rlimits_[RLIMIT_MEMLOCK] = {8ull << 20, 8ull << 20};
    rlimits_[RLIMIT_SIGPENDING] = host_rlimit(RLIMIT_SIGPENDING);
    rlimits_[RLIMIT_MSGQUEUE] = {819200, 819200};
    rlimits_[RLIMIT_NICE] = {0, 0};
    rlimits_[RLIMIT_RTPRIO] = {0, 0};

    affinity_.assign(static_cast<std::size_t>((cpus_ + 63) / 64), 0);
    for (int cpu = 0; cpu < cpus_; ++cpu)
        affinity_[static_cast<std::size_t>(cpu / 64)] |= std::uint64_t{1} << (cpu % 64);

    const std::size_t n = std::min(options_.command_name.size(), command_name_.size() - 1);
    std::copy_n(options_.command_name.begin(), n, command_name_.begin());
}

std::uint32_t ProcessCalls::umask() const {
    std::lock_guard lock(mutex_);
    return umask_;
}

std::array<std::uint64_t, 2> ProcessCalls::rlimit(unsigned resource) const {
    std::lock_guard lock(mutex_);
    return resource < kRlimits ? rlimits_[resource] : std::array<std::uint64_t, 2>{0, 0};
}

ProcessCalls::ThreadState& ProcessCalls::thread_state(int tid) {
    return threads_[tid];
}

bool ProcessCalls::names_self(int id, const ThreadContext& thread) const {
    if (id == options_.pid || id == thread.tid()) return true;
    std::lock_guard lock(mutex_);
    return threads_.count(id) != 0;
}

int ProcessCalls::live_threads() const {
    std::lock_guard lock(mutex_);
    return live_threads_;
}

namespace {

// Guest memory, one value at a time.
template <class T>
bool put(UserMemory& mem, std::uint64_t va, const T& value) {
    return mem.copy_out(va, std::as_bytes(std::span(&value, 1)));
}
template <class T>
bool get(const UserMemory& mem, std::uint64_t va, T& value) {
    return mem.copy_in(va, std::as_writable_bytes(std::span(&value, 1)));
}

SyscallResult value(std::int64_t v) {
    return SyscallResult{v, SyscallResult::Then::resume, 0, {}};
}

} // namespace

std::optional<SyscallResult> ProcessCalls::call(const SyscallArgs& args, ThreadContext& thread) {
    const std::uint64_t* a = args.a;
    switch (args.nr) {
    case __NR_uname:
        return value(uname(a[0]));
    case __NR_getpid:
        return value(options_.pid);
    case __NR_gettid:
        return value(thread.tid());
    case __NR_getppid:
        return value(options_.ppid);
    case __NR_getuid:
    case __NR_geteuid:
        return value(options_.uid);
    case __NR_getgid:
    case __NR_getegid:
        return value(options_.gid);
    // Real, effective and saved ids are one id here (kernel/sys.c getresuid).
    // No supplementary groups (kernel/groups.c getgroups with an empty
    // group_info): 0 whatever the size, EINVAL for a negative one.
    case __NR_getgroups:
        return value(static_cast<int>(a[0]) < 0 ? -EINVAL : 0);
    case __NR_getresuid:
        return value(three_ids(a[0], a[1], a[2], options_.uid));
    case __NR_getresgid:
        return value(three_ids(a[0], a[1], a[2], options_.gid));
    // The program leads its own session and process group (as a container's
    // first process does): pgid = sid = pid.
    case __NR_getpgid:
    case __NR_getsid:
        return value(getpgid(int_arg(a[0]), thread));
    case __NR_getpgrp:
        return value(options_.pid);
    case __NR_setsid:
        return value(-EPERM); // ksys_setsid: a process group leader already
    case __NR_setpgid:
        return value(setpgid(int_arg(a[0]), int_arg(a[1]), thread));
    case __NR_arch_prctl:
        return value(arch_prctl(int_arg(a[0]), a[1], thread));
    case __NR_set_tid_address: {
        std::lock_guard lock(mutex_);
        thread_state(thread.tid()).clear_child_tid = a[0];
        return value(thread.tid());
    }
    case __NR_set_robust_list: {
        if (a[1] != 24) return value(-EINVAL); // sizeof(struct robust_list_head)
        std::lock_guard lock(mutex_);
        thread_state(thread.tid()).robust_list = a[0];
        return value(0);
    }
    case __NR_get_robust_list:
        return value(get_robust_list(int_arg(a[0]), a[1], a[2], thread));
    case __NR_rseq:
        // Restartable sequences need the kernel to fix up the thread's
        // registers on preemption and migration; there is neither here, and
        // glibc and musl take ENOSYS as "not registered".
        return value(-ENOSYS);
    case __NR_prlimit64:
        return value(prlimit(int_arg(a[0]), a[1], a[2], a[3], thread));
    case __NR_getrlimit:
        return value(getrlimit(a[0], a[1]));
    case __NR_setrlimit:
        return value(setrlimit(a[0], a[1]));
    case __NR_getrandom:
        return value(getrandom(a[0], a[1], a[2]));
    case __NR_clock_gettime:
        return value(clock_gettime(int_arg(a[0]), a[1], thread));
    case __NR_clock_getres:
        return value(clock_getres(int_arg(a[0]), a[1], thread));
    case __NR_gettimeofday:
        return value(gettimeofday(a[0], a[1]));
    case __NR_time:
        return value(time(a[0]));
    case __NR_nanosleep:
        return clock_nanosleep(CLOCK_MONOTONIC, 0, a[0], a[1], thread);
    case __NR_clock_nanosleep:
        return clock_nanosleep(int_arg(a[0]), a[1], a[2], a[3], thread);
    case __NR_sched_yield:
        ::sched_yield();
        return value(0);
    case __NR_sched_getaffinity:
        return value(sched_getaffinity(int_arg(a[0]), a[1], a[2], thread));
    case __NR_sched_setaffinity:
        return value(sched_setaffinity(int_arg(a[0]), a[1], a[2], thread));
    case __NR_getcpu:
        return value(getcpu(a[0], a[1]));
    case __NR_rt_sigaction:
        return value(rt_sigaction(int_arg(a[0]), a[1], a[2], a[3]));
    case __NR_rt_sigprocmask:
        return rt_sigprocmask(int_arg(a[0]), a[1], a[2], a[3], thread);
    case __NR_rt_sigpending:
        return value(rt_sigpending(a[0], a[1], thread));
    case __NR_sigaltstack:
        return value(sigaltstack(a[0], a[1], thread));
    case __NR_rt_sigreturn:
        // The frame is read, and the registers set, by the runner.
        return SyscallResult{0, SyscallResult::Then::sigreturn, 0, {}};
    case __NR_rt_sigsuspend:
        return rt_sigsuspend(a[0], a[1], thread);
    case __NR_pause:
        return pause(thread);
    case __NR_alarm:
        return value(alarm(a[0]));
    case __NR_setitimer:
        return value(setitimer(int_arg(a[0]), a[1], a[2]));
    case __NR_getitimer:
        return value(getitimer(int_arg(a[0]), a[1]));
    case __NR_umask: {
        std::lock_guard lock(mutex_);
        return value(std::exchange(umask_, static_cast<std::uint32_t>(a[0] & 0777)));
    }
    case __NR_sysinfo:
        return value(sysinfo(a[0]));
    case __NR_getrusage:
        return value(getrusage(int_arg(a[0]), a[1]));
    case __NR_times:
        return value(times(a[0]));
    case __NR_prctl:
        return value(prctl(int_arg(a[0]), a[1], a[2], a[3], a[4]));
    case __NR_kill:
        return kill(int_arg(a[0]), int_arg(a[1]), thread);
    case __NR_tgkill:
        if (int_arg(a[0]) <= 0 || int_arg(a[1]) <= 0) return value(-EINVAL);
        return tgkill(int_arg(a[0]), int_arg(a[1]), int_arg(a[2]), thread);
    case __NR_tkill:
        return tgkill(0, int_arg(a[0]), int_arg(a[1]), thread);
    case __NR_exit:
        return exit_thread(static_cast<int>(a[0] & 0xff), thread);
    case __NR_clone:
        // x86-64's argument order: flags, stack, parent_tid, child_tid, tls.
        return value(clone(a[0] & ~std::uint64_t{kCsignal}, a[0] & kCsignal, a[1], a[2], a[3], a[4],
                           thread));
    case __NR_clone3:
        return value(clone3(a[0], a[1], thread));
    case __NR_exit_group:
        return SyscallResult{
            0, SyscallResult::Then::exit_process, static_cast<int>(a[0] & 0xff), {}};
    case __NR_futex:
        return futex(args, thread);
    default:
        return std::nullopt;
    }
}

// ---- identity ----

std::int64_t ProcessCalls::three_ids(std::uint64_t r, std::uint64_t e, std::uint64_t s,
                                     std::uint32_t id) {
    for (std::uint64_t va : {r, e, s})
        if (!memory_.copy_out(va, std::as_bytes(std::span(&id, 1)))) return -EFAULT;
    return 0;
}

std::int64_t ProcessCalls::uname(std::uint64_t buf) {
    // struct new_utsname: six fields of 65 bytes, NUL-padded.
    constexpr std::size_t kField = 65;
    std::array<char, 6 * kField> out{};
    struct utsname host {};
    ::uname(&host);
    const std::string_view fields[] = {"Linux",      options_.nodename, host.release,
                                       host.version, "x86_64",          "(none)"};
    for (std::size_t i = 0; i < std::size(fields); ++i)
        std::copy_n(fields[i].begin(), std::min(fields[i].size(), kField - 1),
                    out.begin() + static_cast<std::ptrdiff_t>(i * kField));
    return memory_.copy_out(buf, std::as_bytes(std::span(out))) ? 0 : -EFAULT;
}

std::int64_t ProcessCalls::getpgid(int pid, const ThreadContext& thread) const {
    if (pid != 0 && !names_self(pid, thread)) return -ESRCH;
    return options_.pid;
}

std::int64_t ProcessCalls::setpgid(int pid, int pgid, const ThreadContext& thread) const {
    // ksys_setpgid's checks in its order; the program leads its session, and
    // a session leader cannot change its process group.
    if (pid == 0) pid = options_.pid;
    if (pgid == 0) pgid = pid;
    if (pgid < 0) return -EINVAL;
    if (!names_self(pid, thread)) return -ESRCH;
    if (pid != options_.pid) return -EINVAL; // a thread, not the group leader
    return -EPERM;
}

std::int64_t ProcessCalls::arch_prctl(int code, std::uint64_t addr, ThreadContext& thread) {
    // do_arch_prctl_64; every other code (CPUID faulting, XSTATE
    // permissions, shadow stacks, vDSO mapping) is -EINVAL, as on a kernel
    // without those features.
    switch (code) {
    case kArchSetFs:
    case kArchSetGs:
        if (addr >= kTaskSizeMax) return -EPERM;
        if (code == kArchSetFs)
            thread.set_fs_base(addr);
        else
            thread.set_gs_base(addr);
        return 0;
    case kArchGetFs:
        return put(memory_, addr, thread.fs_base()) ? 0 : -EFAULT;
    case kArchGetGs:
        return put(memory_, addr, thread.gs_base()) ? 0 : -EFAULT;
    default:
        return -EINVAL;
    }
}

std::int64_t ProcessCalls::get_robust_list(int pid, std::uint64_t head_ptr, std::uint64_t len_ptr,
                                           const ThreadContext& thread) {
    if (pid != 0 && pid != thread.tid()) return -ESRCH; // a thread id
    std::uint64_t head;
    {
        std::lock_guard lock(mutex_);
        head = thread_state(thread.tid()).robust_list;
    }
    if (!put(memory_, len_ptr, std::uint64_t{24})) return -EFAULT;
    return put(memory_, head_ptr, head) ? 0 : -EFAULT;
}

// ---- resource limits ----

std::int64_t ProcessCalls::change_rlimit(std::uint64_t resource,
                                         const std::optional<std::array<std::uint64_t, 2>>& wanted,
                                         std::array<std::uint64_t, 2>& old) {
    // do_prlimit. Raising a hard limit needs CAP_SYS_RESOURCE, which the
    // program has when it runs as root. The stack and the fd table cannot
    // grow past what the VMM gave them, so their hard limits are ceilings
    // even for root, as sysctl nr_open is for RLIMIT_NOFILE in Linux.
    if (resource >= kRlimits) return -EINVAL;
    if (wanted) {
        const auto [soft, hard] = *wanted;
        if (soft > hard) return -EINVAL;
        if (resource == RLIMIT_NOFILE && hard > static_cast<std::uint64_t>(files_.hard_limit()))
            return -EPERM;
        if (resource == RLIMIT_STACK && hard > options_.stack_size) return -EPERM;
    }
    std::lock_guard lock(mutex_);
    old = rlimits_[resource];
    if (!wanted) return 0;
    if ((*wanted)[1] > old[1] && options_.uid != 0) return -EPERM;
    rlimits_[resource] = *wanted;
    if (resource == RLIMIT_NOFILE)
        files_.set_limit(static_cast<int>(std::min<std::uint64_t>((*wanted)[0], INT_MAX)));
    return 0;
}

std::int64_t ProcessCalls::prlimit(int pid, std::uint64_t resource, std::uint64_t new_limit,
                                   std::uint64_t old_limit, const ThreadContext& thread) {
    std::optional<std::array<std::uint64_t, 2>> wanted;
    if (new_limit) {
        std::array<std::uint64_t, 2> limits;
        if (!get(memory_, new_limit, limits)) return -EFAULT;
        wanted = limits;
    }
    if (pid != 0 && !names_self(pid, thread)) return -ESRCH;
    std::array<std::uint64_t, 2> old{};
    if (std::int64_t r = change_rlimit(static_cast<std::uint32_t>(resource), wanted, old)) return r;
    if (old_limit && !put(memory_, old_limit, old)) return -EFAULT;
    return 0;
}

std::int64_t ProcessCalls::getrlimit(std::uint64_t resource, std::uint64_t limit) {
    std::array<std::uint64_t, 2> old{};
    if (std::int64_t r = change_rlimit(static_cast<std::uint32_t>(resource), std::nullopt, old))
        return r;
    return put(memory_, limit, old) ? 0 : -EFAULT;
}

std::int64_t ProcessCalls::setrlimit(std::uint64_t resource, std::uint64_t limit) {
    std::array<std::uint64_t, 2> wanted, old;
    if (!get(memory_, limit, wanted)) return -EFAULT;
    return change_rlimit(static_cast<std::uint32_t>(resource), wanted, old);
}

// ---- randomness ----

std::int64_t ProcessCalls::getrandom(std::uint64_t buf, std::uint64_t count, std::uint64_t flags) {
    // The host's pool is initialised, so no flag makes a difference beyond
    // validation (drivers/char/random.c, since Linux 5.6).
    if (flags & ~(kGrndNonblock | kGrndRandom | kGrndInsecure)) return -EINVAL;
    if ((flags & (kGrndInsecure | kGrndRandom)) == (kGrndInsecure | kGrndRandom)) return -EINVAL;
    count = std::min(count, kMaxRwCount);
    if (buf > kTaskSizeMax || count > kTaskSizeMax - buf) return -EFAULT; // access_ok
    // Page by page, so that a buffer running into an unmapped page gets the
    // bytes before it, as get_random_bytes_user gives them.
    std::array<std::byte, kPage> chunk;
    std::uint64_t done = 0;
    while (done < count) {
        const std::uint64_t va = buf + done;
        const std::size_t n = static_cast<std::size_t>(std::min(count - done, kPage - va % kPage));
        std::size_t got = 0;
        while (got < n) {
            ssize_t r = ::getrandom(chunk.data() + got, n - got, 0);
            if (r < 0 && errno != EINTR) return done > 0 ? static_cast<std::int64_t>(done) : -errno;
            if (r > 0) got += static_cast<std::size_t>(r);
        }
        if (!memory_.copy_out(va, std::span(chunk.data(), n)))
            return done > 0 ? static_cast<std::int64_t>(done) : -EFAULT;
        done += n;
    }
    return static_cast<std::int64_t>(done);
}

// ---- clocks ----

namespace {

// What a guest clock id is to the VMM.
struct ClockChoice {
    int error = 0;             // -errno: no such clock
    clockid_t host = 0;        // the host clock that answers it
    bool cpu_time = false;     // a CPU-time clock
    bool thread_clock = false; // the per-thread kind (no clock_nanosleep)
};

// clockid_to_kclock and, for negative ids, pid_for_clock: the fixed clocks
// are the host's own; the CPU-time clocks of the program (or of its one
// thread) are the calling host thread's, which runs it. A dynamic clock
// needs a PTP device fd, which no guest fd is.
ClockChoice choose_clock(int clock, int pid, int tid) {
    if (clock >= 0) {
        if (clock == kClockSgiCycle || clock > kClockTai) return {-EINVAL};
        if (clock == CLOCK_PROCESS_CPUTIME_ID || clock == CLOCK_THREAD_CPUTIME_ID)
            return {0, CLOCK_THREAD_CPUTIME_ID, true, clock == CLOCK_THREAD_CPUTIME_ID};
        return {0, static_cast<clockid_t>(clock)};
    }
    if ((clock & 7) == kClockFd) return {-EINVAL};
    const int which = clock & kCpuClockWhichMask;
    if (which > kCpuClockSched) return {-EINVAL};
    const bool per_thread = (clock & kCpuClockPerthread) != 0;
    // pid_for_clock: 0 is the caller; a thread clock names a thread of the
    // program, a process clock the program (by its pid, or its thread's id).
    const int owner = ~(clock >> 3);
    const bool known = owner == 0 || owner == tid || (!per_thread && owner == pid);
    if (!known) return {-EINVAL};
    return {0, which == kCpuClockSched ? CLOCK_THREAD_CPUTIME_ID : host_thread_cpu_clock(which),
            true, per_thread};
}

} // namespace

std::int64_t ProcessCalls::clock_gettime(int clock, std::uint64_t tp, const ThreadContext& thread) {
    const ClockChoice c = choose_clock(clock, options_.pid, thread.tid());
    if (c.error) return c.error;
    timespec ts{};
    // The alarm clocks fail without an RTC, on the host as in Linux.
    if (::clock_gettime(c.host, &ts) != 0) return -errno;
    const Timespec out{ts.tv_sec, ts.tv_nsec};
    return put(memory_, tp, out) ? 0 : -EFAULT;
}

std::int64_t ProcessCalls::clock_getres(int clock, std::uint64_t tp, const ThreadContext& thread) {
    const ClockChoice c = choose_clock(clock, options_.pid, thread.tid());
    if (c.error) return c.error;
    timespec ts{};
    if (::clock_getres(c.host, &ts) != 0) return -errno;
    const Timespec out{ts.tv_sec, ts.tv_nsec};
    if (tp && !put(memory_, tp, out)) return -EFAULT; // a null tp is allowed
    return 0;
}

std::int64_t ProcessCalls::gettimeofday(std::uint64_t tv, std::uint64_t tz) {
    if (tv) {
        const std::int64_t now = host_now_ns(CLOCK_REALTIME);
        const Timeval out{now / kNsPerSec, now % kNsPerSec / 1000};
        if (!put(memory_, tv, out)) return -EFAULT;
    }
    // The kernel's sys_tz, which nothing here sets: UTC, no DST.
    if (tz && !put(memory_, tz, std::array<std::int32_t, 2>{0, 0})) return -EFAULT;
    return 0;
}

std::int64_t ProcessCalls::time(std::uint64_t tloc) {
    const std::int64_t now = host_now_ns(CLOCK_REALTIME) / kNsPerSec;
    if (tloc && !put(memory_, tloc, now)) return -EFAULT;
    return now;
}

// ---- sleeping ----

namespace {

// How long one host wait lasts at most before the waiter looks whether the
// VM is stopping or pausing (a kick can land just before the wait begins).
constexpr std::int64_t kWaitSliceNs = 50'000'000;

long host_futex(std::uint32_t* word, int op, std::uint32_t val, const timespec* timeout,
                std::uint32_t* word2, std::uint32_t val3) {
    return ::syscall(SYS_futex, word, op | kFutexPrivateFlag, val, timeout, word2, val3);
}

} // namespace

bool ProcessCalls::sleep_until(const Deadline& deadline, std::int64_t& left_ns, int tid) {
    // A sleeper may wake early; a realtime clock may be set: look again
    // after each sleep.
    for (;;) {
        const std::int64_t now = host_now_ns(deadline.clock);
        if (now >= deadline.at_ns) return true;
        bool go_on = true;
        if (sleeper_) {
            go_on = sleeper_(std::chrono::nanoseconds(deadline.at_ns - now));
        } else {
            // Slices on the thread's wake word: a signal wakes it at once, a
            // stop or pause within a slice.
            go_on = !(options_.interrupted && options_.interrupted());
            if (go_on) wait_a_while(tid, std::min(deadline.at_ns - now, kWaitSliceNs));
        }
        if (!go_on || signal_due(tid)) {
            left_ns = deadline.at_ns - host_now_ns(deadline.clock);
            return false;
        }
    }
}

void ProcessCalls::sleep_until_signal(int tid) {
    std::int64_t left_ns = 0;
    sleep_until(Deadline{CLOCK_MONOTONIC, kKtimeMax}, left_ns, tid);
}

void ProcessCalls::wait_a_while(int tid, std::int64_t ns) {
    std::shared_ptr<Wake> wake;
    std::uint32_t seq = 0;
    {
        std::lock_guard lock(mutex_);
        const ThreadState& t = thread_state(tid);
        wake = t.wake;
        seq = wake->seq.load();
        if (signal_due_locked(t)) return;
    }
    const timespec rel{ns / kNsPerSec, ns % kNsPerSec};
    host_futex(reinterpret_cast<std::uint32_t*>(&wake->seq), kFutexWait, seq, &rel, nullptr, 0);
}

void ProcessCalls::wake_thread_locked(const ThreadState& thread) {
    thread.wake->seq.fetch_add(1);
    host_futex(reinterpret_cast<std::uint32_t*>(&thread.wake->seq), kFutexWake, INT_MAX, nullptr,
               nullptr, 0);
    // A thread in a futex wait on a guest word: woken there (a spurious
    // wake-up for the word's other waiters, which futex allows).
    if (std::uint32_t* w = thread.wake->futex.load())
        host_futex(w, kFutexWake, INT_MAX, nullptr, nullptr, 0);
}

void ProcessCalls::wake_all() {
    std::lock_guard lock(mutex_);
    for (auto& [tid, t] : threads_)
        wake_thread_locked(t);
}

SyscallResult ProcessCalls::clock_nanosleep(int clock, std::uint64_t flags, std::uint64_t req,
                                            std::uint64_t rem, const ThreadContext& thread) {
    // SYSCALL clock_nanosleep, then the clock's nsleep: common_nsleep for
    // REALTIME, MONOTONIC, BOOTTIME and TAI; alarm_timer_nsleep for the
    // alarm clocks; posix_cpu_nsleep for the process CPU-time clocks. The
    // others (thread CPU time, MONOTONIC_RAW, the COARSE clocks, dynamic
    // clocks) have none: EOPNOTSUPP.
    if (clock == kClockSgiCycle || clock > kClockTai) return value(-EINVAL);
    const bool alarm = clock == CLOCK_REALTIME_ALARM || clock == CLOCK_BOOTTIME_ALARM;
    const bool can_sleep = clock == CLOCK_REALTIME || clock == CLOCK_MONOTONIC ||
                           clock == CLOCK_BOOTTIME || clock == kClockTai || alarm ||
                           clock == CLOCK_PROCESS_CPUTIME_ID ||
                           (clock < 0 && (clock & 7) != kClockFd);
    if (!can_sleep) return value(-EOPNOTSUPP);
    Timespec ts;
    if (!get(memory_, req, ts)) return value(-EFAULT);
    if (!valid_timespec(ts)) return value(-EINVAL);
    const ClockChoice c = choose_clock(clock, options_.pid, thread.tid());
    if (c.error) return value(c.error);
    const bool absolute = (flags & kTimerAbstime) != 0;
    if (absolute) rem = 0; // nothing is left over of an absolute sleep
    if (alarm) {
        if (!host_has_rtc()) return value(-EOPNOTSUPP);
        if (flags & ~kTimerAbstime) return value(-EINVAL);
        if (options_.uid != 0) return value(-EPERM); // CAP_WAKE_ALARM
    }
    if (c.cpu_time) {
        // posix_cpu_nsleep: not on a thread's own clock; on the process's,
        // it waits for the CPU time of the program's threads, which cannot
        // grow while the only thread sleeps (threads come with part 2).
        if (c.thread_clock) return value(-EINVAL);
        const std::int64_t now = host_now_ns(c.host);
        if (absolute ? now >= to_ns(ts) : to_ns(ts) == 0) return value(0);
        return SyscallResult{0, SyscallResult::Then::killed_by_signal, SIGKILL,
                             "deadlock: clock_nanosleep on the process CPU-time clock waits "
                             "for CPU time that no thread can use while the only thread sleeps"};
    }
    Deadline deadline{CLOCK_MONOTONIC, 0};
    if (absolute) {
        deadline.clock = clock == CLOCK_REALTIME_ALARM   ? CLOCK_REALTIME
                         : clock == CLOCK_BOOTTIME_ALARM ? CLOCK_BOOTTIME
                                                         : static_cast<clockid_t>(clock);
        deadline.at_ns = to_ns(ts);
    } else {
        // A relative sleep is measured on the monotonic clock whichever
        // clock is named (hrtimer_nanosleep with HRTIMER_MODE_REL).
        deadline.at_ns = add_saturated(host_now_ns(CLOCK_MONOTONIC), to_ns(ts));
    }
    std::int64_t left_ns = 0;
    if (sleep_until(deadline, left_ns, thread.tid())) return value(0);
    // do_nanosleep, interrupted: with somewhere to put the time left, none
    // left means done; otherwise -EINTR (the kernel's restart, which a
    // stopping VM never makes).
    if (rem) {
        if (left_ns <= 0) return value(0);
        if (!put(memory_, rem, to_timespec(left_ns))) return value(-EFAULT);
    }
    return value(-EINTR);
}

// ---- scheduling ----

std::int64_t ProcessCalls::sched_getaffinity(int pid, std::uint64_t len, std::uint64_t mask,
                                             const ThreadContext& thread) {
    const auto len32 = static_cast<std::uint32_t>(len); // unsigned int len
    if (static_cast<std::uint32_t>(len32 * 8) < static_cast<std::uint32_t>(cpus_))
        return -EINVAL; // len * BITS_PER_BYTE < nr_cpu_ids
    if (len32 % sizeof(std::uint64_t)) return -EINVAL;
    if (pid != 0 && !names_self(pid, thread)) return -ESRCH;
    std::vector<std::uint64_t> current;
    {
        std::lock_guard lock(mutex_);
        current = affinity_;
    }
    // cpumask_size(): whole longs for the CPUs there are.
    const auto bytes = std::as_bytes(std::span(current));
    const std::size_t out = std::min<std::size_t>(len32, bytes.size());
    if (!memory_.copy_out(mask, bytes.first(out))) return -EFAULT;
    return static_cast<std::int64_t>(out);
}

std::int64_t ProcessCalls::sched_setaffinity(int pid, std::uint64_t len, std::uint64_t mask,
                                             const ThreadContext& thread) {
    // get_user_cpu_mask: a shorter mask is zero-extended, a longer one cut.
    std::vector<std::uint64_t> wanted(affinity_.size(), 0);
    auto bytes = std::as_writable_bytes(std::span(wanted));
    const std::size_t in = std::min<std::size_t>(static_cast<std::uint32_t>(len), bytes.size());
    if (in > 0 && !memory_.copy_in(mask, bytes.first(in))) return -EFAULT;
    if (pid != 0 && !names_self(pid, thread)) return -ESRCH;
    // Only CPUs that exist count; none of them is -EINVAL
    // (__set_cpus_allowed_ptr finds no CPU to run on).
    bool any = false;
    for (std::size_t i = 0; i < wanted.size(); ++i) {
        const int cpus_here = std::min(64, cpus_ - static_cast<int>(i * 64));
        if (cpus_here < 64) wanted[i] &= (std::uint64_t{1} << cpus_here) - 1;
        any = any || wanted[i] != 0;
    }
    if (!any) return -EINVAL;
    std::lock_guard lock(mutex_);
    affinity_ = std::move(wanted);
    return 0;
}

std::int64_t ProcessCalls::getcpu(std::uint64_t cpu, std::uint64_t node) {
    // The one thread runs on vCPU 0, NUMA node 0. Both pointers are
    // optional; both are written even if the first fails.
    bool ok = true;
    if (cpu) ok = put(memory_, cpu, std::uint32_t{0}) && ok;
    if (node) ok = put(memory_, node, std::uint32_t{0}) && ok;
    return ok ? 0 : -EFAULT;
}

// ---- signals ----

std::int64_t ProcessCalls::rt_sigaction(int sig, std::uint64_t act, std::uint64_t oldact,
                                        std::uint64_t sigsetsize) {
    if (sigsetsize != kSigsetSize) return -EINVAL;
    SignalAction wanted;
    if (act && !get(memory_, act, wanted)) return -EFAULT;
    // do_sigaction
    if (sig < 1 || sig > kSignals || (act && (signal_bit(sig) & kUnblockable))) return -EINVAL;
    SignalAction old;
    {
        std::lock_guard lock(mutex_);
        SignalAction& slot = actions_[static_cast<std::size_t>(sig - 1)];
        old = slot;
        if (act) {
            wanted.flags &= kUapiSaFlags; // unknown bits read back as clear
            wanted.mask &= ~kUnblockable;
            slot = wanted;
            // A pending signal that is now ignored is discarded.
            if (ignored_by(sig, wanted)) {
                pending_signals_ &= ~signal_bit(sig);
                for (auto& [tid, t] : threads_)
                    t.pending &= ~signal_bit(sig);
                update_pending_flag();
            }
        }
    }
    if (oldact && !put(memory_, oldact, old)) return -EFAULT;
    return 0;
}

SyscallResult ProcessCalls::rt_sigprocmask(int how, std::uint64_t set, std::uint64_t oldset,
                                           std::uint64_t sigsetsize, const ThreadContext& thread) {
    if (sigsetsize != kSigsetSize) return value(-EINVAL);
    std::uint64_t wanted = 0;
    if (set && !get(memory_, set, wanted)) return value(-EFAULT);
    std::lock_guard lock(mutex_);
    ThreadState& state = thread_state(thread.tid());
    const std::uint64_t old = state.blocked;
    if (set) {
        wanted &= ~kUnblockable;
        switch (how) {
        case SIG_BLOCK:
            state.blocked |= wanted;
            break;
        case SIG_UNBLOCK:
            state.blocked &= ~wanted;
            break;
        case SIG_SETMASK:
            state.blocked = wanted;
            break;
        default:
            return value(-EINVAL);
        }
    }
    const std::int64_t result = oldset && !put(memory_, oldset, old) ? -EFAULT : 0;
    // A pending signal just unblocked is taken on the way back to the program.
    if (auto end = take_unblocked_signals(state)) return *end;
    return value(result);
}

std::int64_t ProcessCalls::rt_sigpending(std::uint64_t set, std::uint64_t sigsetsize,
                                         const ThreadContext& thread) {
    if (sigsetsize > kSigsetSize) return -EINVAL;
    std::uint64_t pending;
    {
        std::lock_guard lock(mutex_);
        const ThreadState& t = thread_state(thread.tid());
        pending = (pending_signals_ | t.pending) & t.blocked;
    }
    const auto bytes = std::as_bytes(std::span(&pending, 1)).first(sigsetsize);
    return bytes.empty() || memory_.copy_out(set, bytes) ? 0 : -EFAULT;
}

std::int64_t ProcessCalls::sigaltstack(std::uint64_t ss, std::uint64_t old_ss,
                                       const ThreadContext& thread) {
    StackT wanted{};
    if (ss && !get(memory_, ss, wanted)) return -EFAULT;
    const std::uint64_t sp = thread.stack_pointer();
    StackT old{};
    std::int64_t result = 0;
    {
        std::lock_guard lock(mutex_);
        ThreadState& t = thread_state(thread.tid());
        // do_sigaltstack: the old settings, with sas_ss_flags.
        old.sp = t.altstack.sp;
        old.size = t.altstack.size;
        old.flags = static_cast<std::int32_t>(alt_stack_flags(t.altstack, sp));
        if (ss)
            result = change_altstack_locked(
                t, {wanted.sp, wanted.size, static_cast<std::uint32_t>(wanted.flags)}, sp);
    }
    if (result == 0 && old_ss && !put(memory_, old_ss, old)) return -EFAULT;
    return result;
}

std::int64_t ProcessCalls::change_altstack_locked(ThreadState& t, AltStack wanted,
                                                  std::uint64_t sp) {
    const std::uint32_t mode = wanted.flags & ~kSsAutodisarm;
    if (on_alt_stack(t.altstack, sp)) return -EPERM;
    if (mode != kSsDisable && mode != kSsOnstack && mode != 0) return -EINVAL;
    if (mode == kSsDisable) {
        wanted.sp = 0;
        wanted.size = 0;
    } else if (wanted.size < kMinSigStackSize) {
        const bool unchanged = t.altstack.sp == wanted.sp && t.altstack.size == wanted.size &&
                               t.altstack.flags == wanted.flags;
        if (!unchanged) return -ENOMEM;
    }
    t.altstack = wanted;
    return 0;
}

namespace {

constexpr int kSiUser = 0, kSiKernel = 0x80, kSiTkill = -6;
constexpr std::uint64_t kSaNodefer = 0x40000000, kSaResethand = 0x80000000;

} // namespace

int ProcessCalls::queue_signal(int tid, const SignalInfo& info) {
    const int sig = info.signo;
    const std::uint64_t bit = signal_bit(sig);
    ThreadState* target = tid ? &thread_state(tid) : nullptr;
    // prepare_signal: SIGCONT discards pending stop signals, a stop signal a
    // pending SIGCONT, everywhere.
    const std::uint64_t discard = sig == SIGCONT     ? kStopSignals
                                  : stop_signal(sig) ? signal_bit(SIGCONT)
                                                     : 0;
    pending_signals_ &= ~discard;
    for (auto& [id, t] : threads_)
        t.pending &= ~discard;
    // sig_ignored: a blocked signal is never ignored at sending time (its
    // action may change before it is unblocked); for the process, when
    // every thread blocks it.
    const bool ignored =
        ignored_by(sig, actions_[static_cast<std::size_t>(sig - 1)]) && !(bit & kUnblockable);
    bool blocked_everywhere = !threads_.empty();
    for (const auto& [id, t] : threads_)
        blocked_everywhere = blocked_everywhere && (t.blocked & bit);
    if (ignored && !(target ? (target->blocked & bit) : blocked_everywhere)) return 0;
    // One of each standard signal is queued; a second is merged into it
    // (legacy_queue); real-time ones are not queued more than once here.
    if (target) {
        if (!(target->pending & bit)) target->info[static_cast<std::size_t>(sig - 1)] = info;
        target->pending |= bit;
    } else {
        if (!(pending_signals_ & bit)) pending_info_[static_cast<std::size_t>(sig - 1)] = info;
        pending_signals_ |= bit;
    }
    update_pending_flag();
    // complete_signal: the thread it was sent to, or for the process the
    // main thread if it takes it, else any thread that does.
    if (target) {
        if (target->blocked & bit && !(bit & kUnblockable)) return 0;
        wake_thread_locked(*target);
        return tid;
    }
    auto takes = [&](const ThreadState& t) { return !(t.blocked & bit) || (bit & kUnblockable); };
    auto main = threads_.find(options_.pid);
    if (main == threads_.end() || !takes(main->second)) {
        main = std::find_if(threads_.begin(), threads_.end(),
                            [&](const auto& entry) { return takes(entry.second); });
    }
    if (main == threads_.end()) return threads_.empty() ? options_.pid : 0;
    wake_thread_locked(main->second);
    return main->first;
}

int ProcessCalls::peek_signal_locked(const ThreadState& thread) const {
    // dequeue_signal: the thread's own first, then the process's; within
    // each, the synchronous signals first (next_signal), then the lowest.
    const std::uint64_t allowed = ~(thread.blocked & ~kUnblockable);
    auto pick = [](std::uint64_t ready) {
        const std::uint64_t p = (ready & kSynchronousSignals) ? ready & kSynchronousSignals : ready;
        return std::countr_zero(p) + 1;
    };
    if (const std::uint64_t own = thread.pending & allowed) return pick(own);
    if (const std::uint64_t shared = pending_signals_ & allowed) return pick(shared);
    return 0;
}

bool ProcessCalls::signal_due(int tid) const {
    if (!signals_pending()) return false;
    std::lock_guard lock(mutex_);
    auto it = threads_.find(tid);
    return it == threads_.end() ? (pending_signals_ != 0) : signal_due_locked(it->second);
}

void ProcessCalls::update_pending_flag() {
    bool any = pending_signals_ != 0;
    for (const auto& [id, t] : threads_)
        any = any || t.pending != 0;
    any_pending_.store(any, std::memory_order_release);
}

std::optional<SyscallResult> ProcessCalls::take_unblocked_signals(ThreadState& thread) {
    // The default actions and ignored signals are taken here, on the way
    // back from the call that made them due; a handler is left for the
    // runner (next_signal).
    for (;;) {
        const int sig = peek_signal_locked(thread);
        if (!sig) return std::nullopt;
        const SignalAction& action = actions_[static_cast<std::size_t>(sig - 1)];
        if (sig != SIGKILL && action.handler != kSigDfl && action.handler != kSigIgn)
            return std::nullopt;
        auto outcome = next_signal_locked(thread);
        if (outcome && outcome->end) return outcome->end;
    }
}

std::optional<ProcessCalls::SignalOutcome> ProcessCalls::next_signal(int tid) {
    std::lock_guard lock(mutex_);
    ThreadState& thread = thread_state(tid);
    for (;;) {
        auto outcome = next_signal_locked(thread);
        if (!outcome || outcome->end || outcome->handler) return outcome;
    }
}

std::optional<ProcessCalls::SignalOutcome> ProcessCalls::next_signal_locked(ThreadState& thread) {
    const int sig = peek_signal_locked(thread);
    if (!sig) return std::nullopt;
    SignalInfo info;
    if (thread.pending & signal_bit(sig)) {
        thread.pending &= ~signal_bit(sig);
        info = thread.info[static_cast<std::size_t>(sig - 1)];
    } else {
        pending_signals_ &= ~signal_bit(sig);
        info = pending_info_[static_cast<std::size_t>(sig - 1)];
    }
    update_pending_flag();
    SignalAction& action = actions_[static_cast<std::size_t>(sig - 1)];
    const std::string name = signal_name(sig);
    const char* source = info.code == kSiKernel ? "its interval timer (alarm or setitimer)"
                                                : "the program to itself";
    SignalOutcome out;
    if (sig == SIGKILL ||
        (action.handler == kSigDfl && !default_ignored(sig) && !stop_signal(sig))) {
        // The default action of the rest: terminate (with a core dump for
        // some, which the VMM does not write).
        out.end = SyscallResult{0, SyscallResult::Then::killed_by_signal, sig,
                                fmt::format("killed by {} (sent by {})", name, source)};
        return out;
    }
    if (action.handler == kSigIgn || action.handler == kSigDfl) {
        // Ignored; or SIGTSTP/TTIN/TTOU in an orphaned process group (the
        // program leads its session): discarded.
        if (sig == SIGSTOP)
            out.end = SyscallResult{0, SyscallResult::Then::killed_by_signal, sig,
                                    fmt::format("stopped by SIGSTOP (sent by {}), and nothing "
                                                "can continue it",
                                                source)};
        return out;
    }
    // handle_signal: the frame saves the mask to restore (rt_sigsuspend's
    // if it saved one), then the action's mask and, without SA_NODEFER,
    // the signal itself are blocked; SA_RESETHAND makes the action the
    // default again; SS_AUTODISARM takes the alternate stack away.
    SignalFrameRequest frame;
    frame.sig = sig;
    frame.handler = action.handler;
    frame.flags = action.flags;
    frame.restorer = action.restorer;
    frame.info = info;
    frame.saved_mask = thread.saved_mask.value_or(thread.blocked);
    thread.saved_mask.reset();
    frame.altstack = thread.altstack;
    thread.blocked |= action.mask | ((action.flags & kSaNodefer) ? 0 : signal_bit(sig));
    thread.blocked &= ~kUnblockable;
    if (action.flags & kSaResethand) action = SignalAction{};
    if (thread.altstack.flags & kSsAutodisarm) thread.altstack = AltStack{};
    out.handler = frame;
    return out;
}

ProcessCalls::SignalOutcome ProcessCalls::fault_signal(int tid, const SignalInfo& info,
                                                       std::string message) {
    std::lock_guard lock(mutex_);
    ThreadState& thread = thread_state(tid);
    const int sig = info.signo;
    SignalAction& action = actions_[static_cast<std::size_t>(sig - 1)];
    const bool blocked = thread.blocked & signal_bit(sig);
    SignalOutcome out;
    // force_sig_info_to_task: blocked or ignored, the signal is unblocked
    // and its action reset, so the default ends the program.
    if (blocked || action.handler == kSigIgn || action.handler == kSigDfl) {
        if (blocked || action.handler == kSigIgn) action = SignalAction{};
        out.end = SyscallResult{0, SyscallResult::Then::killed_by_signal, sig, std::move(message)};
        return out;
    }
    // Delivered at once, ahead of anything pending (it is the thread's own
    // and synchronous).
    thread.info[static_cast<std::size_t>(sig - 1)] = info;
    thread.pending |= signal_bit(sig);
    update_pending_flag();
    auto next = next_signal_locked(thread);
    if (next) out = std::move(*next);
    return out;
}

void ProcessCalls::restore_after_handler(int tid, std::uint64_t blocked, const AltStack& altstack,
                                         std::uint64_t sp) {
    std::lock_guard lock(mutex_);
    ThreadState& t = thread_state(tid);
    t.blocked = blocked & ~kUnblockable;
    // restore_altstack runs do_sigaltstack with the restored RSP; a refusal
    // (on the current alternate stack, bad flags or size) is ignored.
    change_altstack_locked(t, altstack, sp);
}

SyscallResult ProcessCalls::kill(int pid, int sig, const ThreadContext& thread) {
    // kill_something_info: pid > 0 a process, 0 the caller's process group,
    // -1 every process but init and the caller, < -1 process group -pid.
    bool self = false;
    if (pid > 0)
        self = names_self(pid, thread);
    else if (pid == 0)
        self = true;
    else if (pid != -1 && pid != INT_MIN)
        self = -pid == options_.pid; // the program's process group
    if (!self) return value(-ESRCH);
    if (sig < 0 || sig > kSignals) return value(-EINVAL); // check_kill_permission
    if (sig == 0) return value(0);                        // a probe
    SignalInfo info{sig, kSiUser, options_.pid, options_.uid};
    int interrupt = 0;
    {
        std::lock_guard lock(mutex_);
        ThreadState& self_state = thread_state(thread.tid());
        interrupt = queue_signal(0, info);
        if (interrupt == thread.tid() || signal_due_locked(self_state)) {
            if (auto end = take_unblocked_signals(self_state)) return *end;
            interrupt = interrupt == thread.tid() ? 0 : interrupt;
        }
    }
    if (interrupt && options_.interrupt_thread) options_.interrupt_thread(interrupt);
    return value(0);
}

SyscallResult ProcessCalls::tgkill(int tgid, int tid, int sig, const ThreadContext& thread) {
    // tgkill (tgid > 0) and tkill (tgid 0), then do_send_specific.
    if (tid <= 0 || tgid < 0) return value(-EINVAL);
    if (tgid > 0 && tgid != options_.pid) return value(-ESRCH);
    if (sig < 0 || sig > kSignals) return value(-EINVAL);
    int interrupt = 0;
    {
        std::lock_guard lock(mutex_);
        if (tid != thread.tid() && !threads_.count(tid)) return value(-ESRCH);
        if (sig == 0) return value(0);
        interrupt = queue_signal(tid, SignalInfo{sig, kSiTkill, options_.pid, options_.uid});
        if (tid == thread.tid()) {
            if (auto end = take_unblocked_signals(thread_state(tid))) return *end;
            interrupt = 0;
        }
    }
    if (interrupt && options_.interrupt_thread) options_.interrupt_thread(interrupt);
    return value(0);
}

// ---- sleeping until a signal ----

SyscallResult ProcessCalls::pause(const ThreadContext& thread) {
    // sys_pause: until a signal is due; -ERESTARTNOHAND, which a handler
    // turns into EINTR (and a signal without one either ends the program
    // or was ignored and does not wake it).
    sleep_until_signal(thread.tid());
    return value(-EINTR);
}

SyscallResult ProcessCalls::rt_sigsuspend(std::uint64_t mask, std::uint64_t sigsetsize,
                                          const ThreadContext& thread) {
    if (sigsetsize != kSigsetSize) return value(-EINVAL);
    std::uint64_t wanted = 0;
    if (!get(memory_, mask, wanted)) return value(-EFAULT);
    {
        // The old mask comes back once the handler has run (the frame saves
        // it: set_restore_sigmask).
        std::lock_guard lock(mutex_);
        ThreadState& t = thread_state(thread.tid());
        t.saved_mask = t.blocked;
        t.blocked = wanted & ~kUnblockable;
    }
    sleep_until_signal(thread.tid());
    std::lock_guard lock(mutex_);
    ThreadState& t = thread_state(thread.tid());
    if (auto end = take_unblocked_signals(t)) return *end;
    if (!signal_due_locked(t) && t.saved_mask) {
        // Woken by a stop or pause, or what woke it was ignored: the mask
        // is the old one again.
        t.blocked = *t.saved_mask;
        t.saved_mask.reset();
    }
    return value(-EINTR);
}

// ---- the interval timer ----

ProcessCalls::Itimerval ProcessCalls::itimer_locked() const {
    // get_itimerval for ITIMER_REAL: an armed timer never reads as 0 left
    // (1 us instead: 0 would mean disarmed).
    if (!itimer_at_ns_) return {};
    const std::int64_t left = *itimer_at_ns_ - host_now_ns(CLOCK_MONOTONIC);
    const std::int64_t left_us = left <= 0 ? 1 : (left + 999) / 1000;
    const std::int64_t interval_us = itimer_interval_ns_ / 1000;
    return {interval_us / 1'000'000, interval_us % 1'000'000, left_us / 1'000'000,
            left_us % 1'000'000};
}

void ProcessCalls::arm_itimer_locked(std::int64_t value_ns, std::int64_t interval_ns) {
    if (value_ns == 0) {
        itimer_at_ns_.reset();
        itimer_interval_ns_ = 0;
    } else {
        itimer_at_ns_ = add_saturated(host_now_ns(CLOCK_MONOTONIC), value_ns);
        itimer_interval_ns_ = interval_ns;
    }
}

std::int64_t ProcessCalls::setitimer(int which, std::uint64_t value_va, std::uint64_t old_va) {
    struct {
        Timeval interval, value;
    } wanted{};
    // ITIMER_VIRTUAL and ITIMER_PROF (timers of the program's CPU time) are
    // not kept: EINVAL, as for an unknown timer (docs/linux-programs.md).
    if (which != ITIMER_REAL) return -EINVAL;
    // A null new value disarms, as Linux still allows (with a warning of its
    // own).
    if (value_va && !get(memory_, value_va, wanted)) return -EFAULT;
    auto valid = [](const Timeval& tv) {
        return tv.sec >= 0 && tv.usec >= 0 && tv.usec < 1'000'000;
    };
    if (!valid(wanted.value) || !valid(wanted.interval)) return -EINVAL;
    auto ns = [](const Timeval& tv) {
        return tv.sec >= kKtimeMax / kNsPerSec ? kKtimeMax : tv.sec * kNsPerSec + tv.usec * 1000;
    };
    Itimerval old;
    {
        std::lock_guard lock(mutex_);
        old = itimer_locked();
        arm_itimer_locked(ns(wanted.value), ns(wanted.interval));
    }
    if (options_.timers_changed) options_.timers_changed();
    if (old_va && !put(memory_, old_va, old)) return -EFAULT;
    return 0;
}

std::int64_t ProcessCalls::getitimer(int which, std::uint64_t value_va) {
    if (which != ITIMER_REAL) return -EINVAL; // as setitimer
    Itimerval now;
    {
        std::lock_guard lock(mutex_);
        now = itimer_locked();
    }
    return put(memory_, value_va, now) ? 0 : -EFAULT;
}

std::int64_t ProcessCalls::alarm(std::uint64_t seconds_arg) {
    // alarm_setitimer: whole seconds, no interval; what was left, rounded
    // to the nearest second but never 0 for an armed timer.
    const auto seconds = static_cast<std::uint32_t>(seconds_arg);
    Itimerval old;
    {
        std::lock_guard lock(mutex_);
        old = itimer_locked();
        arm_itimer_locked(static_cast<std::int64_t>(seconds) * kNsPerSec, 0);
    }
    if (options_.timers_changed) options_.timers_changed();
    std::int64_t secs = old.value_sec;
    const std::int64_t us = old.value_usec;
    if ((secs == 0 && us) || us >= 500'000) ++secs;
    return secs;
}

std::optional<std::int64_t> ProcessCalls::next_timer_ns() const {
    std::lock_guard lock(mutex_);
    return itimer_at_ns_;
}

void ProcessCalls::fire_timers(std::int64_t now_ns) {
    int interrupt = 0;
    {
        std::lock_guard lock(mutex_);
        if (!itimer_at_ns_ || now_ns < *itimer_at_ns_) return;
        // it_real_fn: SIGALRM to the process (SEND_SIG_PRIV: SI_KERNEL),
        // then re-armed by the interval; missed periods are not sent twice.
        if (itimer_interval_ns_ > 0) {
            const std::int64_t missed = (now_ns - *itimer_at_ns_) / itimer_interval_ns_ + 1;
            itimer_at_ns_ = add_saturated(*itimer_at_ns_, missed * itimer_interval_ns_);
        } else {
            itimer_at_ns_.reset();
        }
        interrupt = queue_signal(0, SignalInfo{SIGALRM, kSiKernel, 0, 0});
    }
    if (interrupt && options_.interrupt_thread) options_.interrupt_thread(interrupt);
}

// ---- the system as the program sees it ----

MemoryFigures ProcessCalls::memory_figures() const {
    if (options_.memory) return options_.memory();
    struct sysinfo host {};
    ::sysinfo(&host);
    struct rusage self {};
    ::getrusage(RUSAGE_SELF, &self);
    return {host.totalram * host.mem_unit, host.freeram * host.mem_unit,
            static_cast<std::uint64_t>(self.ru_maxrss) * 1024};
}

std::int64_t ProcessCalls::sysinfo(std::uint64_t info) {
    // do_sysinfo on 64 bits: sizes in bytes (mem_unit 1), uptime in whole
    // seconds rounded up; the load averages are the host's (what the
    // program also reads in the host's /proc/loadavg); no swap.
    struct sysinfo host {};
    ::sysinfo(&host);
    struct sysinfo out {};
    const auto up = std::chrono::steady_clock::now() - options_.started;
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(up).count();
    out.uptime = ns / kNsPerSec + (ns % kNsPerSec ? 1 : 0);
    std::copy(std::begin(host.loads), std::end(host.loads), std::begin(out.loads));
    const MemoryFigures mem = memory_figures();
    out.totalram = mem.total;
    out.freeram = std::min(mem.free, mem.total);
    {
        std::lock_guard lock(mutex_);
        out.procs = static_cast<unsigned short>(std::max<std::size_t>(1, threads_.size()));
    }
    out.mem_unit = 1;
    return put(memory_, info, out) ? 0 : -EFAULT;
}

std::int64_t ProcessCalls::getrusage(int who, std::uint64_t usage) {
    if (who != RUSAGE_SELF && who != RUSAGE_CHILDREN && who != RUSAGE_THREAD) return -EINVAL;
    struct rusage out {};
    if (who != RUSAGE_CHILDREN) { // no child ever ran
        // The program's one thread is the calling host thread: its CPU time
        // (guest time counts as user time) and context switches. Its page
        // faults are the VMM's, not the program's: left at 0.
        struct rusage host {};
        ::getrusage(RUSAGE_THREAD, &host);
        out.ru_utime = host.ru_utime;
        out.ru_stime = host.ru_stime;
        out.ru_nvcsw = host.ru_nvcsw;
        out.ru_nivcsw = host.ru_nivcsw;
        out.ru_maxrss = static_cast<long>(memory_figures().peak_resident / 1024);
    }
    return put(memory_, usage, out) ? 0 : -EFAULT;
}

std::int64_t ProcessCalls::times(std::uint64_t buf) {
    if (buf) {
        struct rusage host {};
        ::getrusage(RUSAGE_THREAD, &host);
        const auto ticks = [](const timeval& tv) {
            return static_cast<long>(tv.tv_sec * kUserHz + tv.tv_usec / (1'000'000 / kUserHz));
        };
        struct tms out {};
        out.tms_utime = ticks(host.ru_utime);
        out.tms_stime = ticks(host.ru_stime);
        if (!put(memory_, buf, out)) return -EFAULT;
    }
    // Clock ticks since an arbitrary point: the VM's start.
    const auto up = std::chrono::steady_clock::now() - options_.started;
    return std::chrono::duration_cast<std::chrono::milliseconds>(up).count() / (1000 / kUserHz);
}

std::int64_t ProcessCalls::prctl(int option, std::uint64_t arg2, std::uint64_t arg3,
                                 std::uint64_t arg4, std::uint64_t arg5) {
    switch (option) {
    case kPrSetName: {
        // strncpy_from_user of at most 15 bytes: a longer name is cut, a
        // fault before its NUL or 15th byte is -EFAULT.
        std::array<char, 16> name{};
        for (std::size_t i = 0; i + 1 < name.size(); ++i) {
            char c;
            if (!get(memory_, arg2 + i, c)) return -EFAULT;
            if (c == '\0') break;
            name[i] = c;
        }
        std::lock_guard lock(mutex_);
        command_name_ = name;
        return 0;
    }
    case kPrGetName: {
        std::array<char, 16> name;
        {
            std::lock_guard lock(mutex_);
            name = command_name_;
        }
        return put(memory_, arg2, name) ? 0 : -EFAULT;
    }
    case kPrGetDumpable: {
        std::lock_guard lock(mutex_);
        return dumpable_;
    }
    case kPrSetDumpable: {
        // SUID_DUMP_DISABLE or SUID_DUMP_USER; 2 is for the kernel alone.
        if (arg2 != 0 && arg2 != 1) return -EINVAL;
        std::lock_guard lock(mutex_);
        dumpable_ = static_cast<int>(arg2);
        return 0;
    }
    case kPrSetNoNewPrivs: {
        if (arg2 != 1 || arg3 || arg4 || arg5) return -EINVAL;
        std::lock_guard lock(mutex_);
        no_new_privs_ = true; // once set, for good
        return 0;
    }
    case kPrGetNoNewPrivs: {
        if (arg2 || arg3 || arg4 || arg5) return -EINVAL;
        std::lock_guard lock(mutex_);
        return no_new_privs_ ? 1 : 0;
    }
    default:
        return -EINVAL;
    }
}

// ---- futex ----

namespace {

// get_futex_key's checks: 4-byte alignment (EINVAL), a user address
// (EFAULT); a shared futex's page must also be there, and writable for
// `write` (a private one is only a number).
std::int64_t futex_key(UserMemory& mem, std::uint64_t uaddr, bool shared, bool write) {
    if (uaddr % 4) return -EINVAL;
    if (uaddr > kTaskSizeMax - 4) return -EFAULT;
    if (!shared) return 0;
    std::uint32_t word;
    if (!get(mem, uaddr, word)) return -EFAULT;
    if (write && !put(mem, uaddr, word)) return -EFAULT; // writes back what is there
    return 0;
}

} // namespace

ProcessCalls::FutexArgs::FutexArgs(const SyscallArgs& a)
    : uaddr(a.a[0]), op(int_arg(a.a[1])), val(static_cast<std::uint32_t>(a.a[2])), utime(a.a[3]),
      uaddr2(a.a[4]), val3(static_cast<std::uint32_t>(a.a[5])),
      cmd(op & ~(kFutexPrivateFlag | kFutexClockRealtime)) {}

SyscallResult ProcessCalls::futex(const SyscallArgs& args, const ThreadContext& thread) {
    // SYSCALL futex and do_futex (kernel/futex/syscalls.c). With one thread
    // there is never a waiter: a wake wakes nobody, a requeue moves nobody,
    // and a wait that nothing times out waits for ever.
    const FutexArgs f(args);
    const auto [uaddr, op, val, utime, uaddr2, val3, cmd] = f;
    const bool shared = !(op & kFutexPrivateFlag);
    if (live_threads() > 1) return value(threaded_futex(f, thread.tid()));

    std::optional<Deadline> deadline;
    const bool has_timeout = cmd == kFutexWait || cmd == kFutexWaitBitset || cmd == kFutexLockPi ||
                             cmd == kFutexLockPi2 || cmd == kFutexWaitRequeuePi;
    if (utime && has_timeout) {
        Timespec ts;
        if (!get(memory_, utime, ts)) return value(-EFAULT);
        if (!valid_timespec(ts)) return value(-EINVAL);
        // futex_init_timeout: FUTEX_WAIT's is relative; the others' absolute,
        // on CLOCK_REALTIME when asked, else CLOCK_MONOTONIC.
        if (cmd == kFutexWait)
            deadline =
                Deadline{CLOCK_MONOTONIC, add_saturated(host_now_ns(CLOCK_MONOTONIC), to_ns(ts))};
        else
            deadline =
                Deadline{(op & kFutexClockRealtime) ? CLOCK_REALTIME : CLOCK_MONOTONIC, to_ns(ts)};
    }
    if ((op & kFutexClockRealtime) && cmd != kFutexWaitBitset && cmd != kFutexWaitRequeuePi &&
        cmd != kFutexLockPi2)
        return value(-ENOSYS);

    switch (cmd) {
    case kFutexWait:
    case kFutexWaitBitset: {
        const std::uint32_t bitset = cmd == kFutexWait ? kFutexBitsetMatchAny : val3;
        if (!bitset) return value(-EINVAL);
        if (std::int64_t r = futex_key(memory_, uaddr, shared, false)) return value(r);
        std::uint32_t current;
        if (!get(memory_, uaddr, current)) return value(-EFAULT);
        if (current != val) return value(-EAGAIN);
        bool timer_armed = false;
        {
            std::lock_guard lock(mutex_);
            timer_armed = itimer_at_ns_.has_value();
        }
        // Only a signal could end a wait without a timeout: with no timer
        // to send one, no other thread can.
        if (!deadline && !timer_armed)
            return SyscallResult{
                0, SyscallResult::Then::killed_by_signal, SIGKILL,
                fmt::format("deadlock: thread {} waits on futex {:#x} with no timeout, and no "
                            "other thread could wake it",
                            thread.tid(), uaddr)};
        if (!deadline) {
            sleep_until_signal(thread.tid());
            return value(-EINTR);
        }
        std::int64_t left_ns = 0;
        return value(sleep_until(*deadline, left_ns, thread.tid()) ? -ETIMEDOUT : -EINTR);
    }
    case kFutexWake:
    case kFutexWakeBitset: {
        const std::uint32_t bitset = cmd == kFutexWake ? kFutexBitsetMatchAny : val3;
        if (!bitset) return value(-EINVAL);
        if (std::int64_t r = futex_key(memory_, uaddr, shared, false)) return value(r);
        return value(0);
    }
    case kFutexRequeue:
    case kFutexCmpRequeue: {
        // futex_requeue; nr_requeue is the timeout argument's low 32 bits.
        if (static_cast<std::int32_t>(val) < 0 || static_cast<std::int32_t>(utime) < 0)
            return value(-EINVAL);
        if (std::int64_t r = futex_key(memory_, uaddr, shared, false)) return value(r);
        if (std::int64_t r = futex_key(memory_, uaddr2, shared, false)) return value(r);
        if (cmd == kFutexCmpRequeue) {
            std::uint32_t current;
            if (!get(memory_, uaddr, current)) return value(-EFAULT);
            if (current != val3) return value(-EAGAIN);
        }
        return value(0);
    }
    case kFutexWakeOp: {
        // futex_wake_op and futex_atomic_op_inuser: the operation on *uaddr2
        // happens (one thread: no other can see it half done), then the
        // comparison decides whether waiters on uaddr2 would be woken.
        if (std::int64_t r = futex_key(memory_, uaddr, shared, false)) return value(r);
        if (std::int64_t r = futex_key(memory_, uaddr2, shared, true)) return value(r);
        const unsigned operation = (val3 >> 28) & 7;
        const unsigned comparison = (val3 >> 24) & 15;
        auto oparg = static_cast<std::int32_t>(((val3 >> 12) & 0xfff) << 20) >> 20;
        if (val3 & (8u << 28)) oparg = static_cast<std::int32_t>(1u << (oparg & 31));
        if (operation > 4) return value(-ENOSYS); // SET ADD OR ANDN XOR
        std::uint32_t old;
        if (!get(memory_, uaddr2, old)) return value(-EFAULT);
        const auto arg = static_cast<std::uint32_t>(oparg);
        const std::uint32_t updated = operation == 0   ? arg
                                      : operation == 1 ? old + arg
                                      : operation == 2 ? old | arg
                                      : operation == 3 ? old & ~arg
                                                       : old ^ arg;
        if (!put(memory_, uaddr2, updated)) return value(-EFAULT);
        if (comparison > 5) return value(-ENOSYS); // EQ NE LT GE LE GT
        return value(0);
    }
    default:
        // The priority-inheritance operations are -ENOSYS, as on a kernel
        // built without CONFIG_FUTEX_PI; any other is unknown.
        return value(-ENOSYS);
    }
}

std::int64_t ProcessCalls::threaded_futex(const FutexArgs& f, int tid) {
    // The same checks and errors as the single-threaded form above, then the
    // host's futex on the host address of each guest word: waiters are host
    // threads (the vCPUs), so a wake from any thread reaches them, and
    // WAKE_OP's atomic operation is the host kernel's on guest RAM. Shared
    // and private futexes of the program are both private to this process
    // on the host, which holds all of the program's memory.
    const auto [uaddr, op, val, utime, uaddr2, val3, cmd] = f;
    const bool realtime = op & kFutexClockRealtime;
    if (realtime && cmd != kFutexWaitBitset && cmd != kFutexWaitRequeuePi && cmd != kFutexLockPi2)
        return -ENOSYS;
    auto word = [&](std::uint64_t va, bool write, std::uint32_t*& out) -> std::int64_t {
        if (va % 4) return -EINVAL;
        if (va > kTaskSizeMax - 4) return -EFAULT;
        out = memory_.word(va, write);
        return out ? 0 : -EFAULT;
    };
    std::uint32_t* w = nullptr;
    std::uint32_t* w2 = nullptr;
    switch (cmd) {
    case kFutexWait:
    case kFutexWaitBitset: {
        const std::uint32_t bitset = cmd == kFutexWait ? kFutexBitsetMatchAny : val3;
        if (!bitset) return -EINVAL;
        const clockid_t clock = realtime ? CLOCK_REALTIME : CLOCK_MONOTONIC;
        std::optional<std::int64_t> deadline_ns;
        if (utime) {
            Timespec ts;
            if (!get(memory_, utime, ts)) return -EFAULT;
            if (!valid_timespec(ts)) return -EINVAL;
            // FUTEX_WAIT's timeout is relative, the bitset form's absolute.
            deadline_ns =
                cmd == kFutexWait ? add_saturated(host_now_ns(clock), to_ns(ts)) : to_ns(ts);
        }
        if (std::int64_t r = word(uaddr, false, w)) return r;
        // Registered, so that a signal for this thread wakes the wait
        // (wake_thread_locked); the check after it closes the race.
        std::shared_ptr<Wake> wake;
        {
            std::lock_guard lock(mutex_);
            wake = thread_state(tid).wake;
        }
        wake->futex.store(w);
        struct Unregister {
            Wake& wake;
            ~Unregister() { wake.futex.store(nullptr); }
        } unregister{*wake};
        for (;;) {
            if (options_.interrupted && options_.interrupted()) return -EINTR;
            if (signal_due(tid)) return -EINTR;
            const std::int64_t slice_end = add_saturated(host_now_ns(clock), kWaitSliceNs);
            const std::int64_t until = deadline_ns ? std::min(*deadline_ns, slice_end) : slice_end;
            const timespec abs{until / 1'000'000'000, until % 1'000'000'000};
            const long r = host_futex(w, kFutexWaitBitset | (realtime ? kFutexClockRealtime : 0),
                                      val, &abs, nullptr, bitset);
            // Woken: 0 even with a signal due (futex_wait), which the way
            // back to the program then takes.
            if (r == 0) return 0;
            if (errno == EAGAIN) return -EAGAIN;
            // EINTR is the VMM's kick (a stop, a pause, another vCPU's TLB
            // shootdown), never the program's: the top of the loop decides.
            if (errno == EINTR) continue;
            if (errno != ETIMEDOUT) return -errno;
            if (deadline_ns && until == *deadline_ns) return -ETIMEDOUT;
        }
    }
    case kFutexWake:
    case kFutexWakeBitset: {
        const std::uint32_t bitset = cmd == kFutexWake ? kFutexBitsetMatchAny : val3;
        if (!bitset) return -EINVAL;
        if (uaddr % 4) return -EINVAL;
        // A private futex is only a number to Linux: waking one whose page
        // is gone wakes nobody.
        w = uaddr <= kTaskSizeMax - 4 ? memory_.word(uaddr, false) : nullptr;
        if (!w) return (op & kFutexPrivateFlag) && uaddr <= kTaskSizeMax - 4 ? 0 : -EFAULT;
        const long r = host_futex(w, kFutexWakeBitset, val, nullptr, nullptr, bitset);
        return r < 0 ? -errno : r;
    }
    case kFutexRequeue:
    case kFutexCmpRequeue: {
        if (static_cast<std::int32_t>(val) < 0 || static_cast<std::int32_t>(utime) < 0)
            return -EINVAL;
        if (std::int64_t r = word(uaddr, false, w)) return r;
        if (std::int64_t r = word(uaddr2, false, w2)) return r;
        const long r = ::syscall(SYS_futex, w, cmd | kFutexPrivateFlag, val,
                                 static_cast<std::uint32_t>(utime), w2, val3);
        return r < 0 ? -errno : r;
    }
    case kFutexWakeOp: {
        if (std::int64_t r = word(uaddr, false, w)) return r;
        if (std::int64_t r = word(uaddr2, true, w2)) return r;
        const long r = ::syscall(SYS_futex, w, kFutexWakeOp | kFutexPrivateFlag, val,
                                 static_cast<std::uint32_t>(utime), w2, val3);
        return r < 0 ? -errno : r;
    }
    default:
        return -ENOSYS; // the PI operations, as without CONFIG_FUTEX_PI
    }
}

// ---- threads ----

std::int64_t ProcessCalls::clone(std::uint64_t flags, std::uint64_t exit_signal,
                                 std::uint64_t stack, std::uint64_t parent_tid,
                                 std::uint64_t child_tid, std::uint64_t tls,
                                 ThreadContext& thread) {
    // copy_process's consistency checks, in its order.
    if ((flags & (kCloneNewns | kCloneFs)) == (kCloneNewns | kCloneFs)) return -EINVAL;
    if ((flags & kCloneThread) && !(flags & kCloneSighand)) return -EINVAL;
    if ((flags & kCloneSighand) && !(flags & kCloneVm)) return -EINVAL;
    if ((flags & ~kThreadOptionalFlags) != kThreadFlags) {
        // fork, vfork, posix_spawn's CLONE_VM|CLONE_VFORK, namespaces: a new
        // process, which this VMM does not make. Refused whole, before
        // anything of a child exists; one warning per flag set in a row.
        bool warn = false;
        {
            std::lock_guard lock(mutex_);
            warn = std::exchange(warned_clone_flags_, flags | exit_signal) != (flags | exit_signal);
        }
        if (warn)
            logger().warn("guest program called clone with flags {:#x}: a new process (fork, "
                          "vfork, namespaces) is not supported; it gets ENOSYS",
                          flags | exit_signal);
        return -ENOSYS;
    }
    (void)exit_signal; // a thread sends none (CLONE_THREAD)
    NewThread t;
    t.stack = stack;
    t.tls = tls;
    t.set_tls = flags & kCloneSettls;
    {
        std::lock_guard lock(mutex_);
        if (live_threads_ >= options_.max_threads) return -EAGAIN;
        t.tid = next_tid_++;
        ThreadState child;
        child.blocked = thread_state(thread.tid()).blocked; // inherited
        if (flags & kCloneChildCleartid) child.clear_child_tid = child_tid;
        threads_[t.tid] = child; // sigaltstack is cleared for CLONE_VM children
        ++live_threads_;
    }
    // Both words are in the one address space: written before the child runs.
    const auto tid32 = static_cast<std::uint32_t>(t.tid);
    if (flags & kCloneParentSettid) put(memory_, parent_tid, tid32);
    if (flags & kCloneChildSettid) put(memory_, child_tid, tid32);
    const std::int64_t r = thread.start_thread(t);
    if (r < 0) {
        std::lock_guard lock(mutex_);
        threads_.erase(t.tid);
        --live_threads_;
        return r;
    }
    return t.tid;
}

std::int64_t ProcessCalls::clone3(std::uint64_t args_va, std::uint64_t size,
                                  ThreadContext& thread) {
    // struct clone_args (uapi/linux/sched.h), copy_clone_args_from_user's
    // checks: at least CLONE_ARGS_SIZE_VER0, at most a page, and any bytes
    // past what this kernel knows must be zero.
    struct CloneArgs {
        std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
            set_tid, set_tid_size, cgroup;
    } c{};
    if (size < 64) return -EINVAL;
    if (size > 4096) return -E2BIG;
    const std::size_t known = std::min<std::size_t>(size, sizeof c);
    if (!memory_.copy_in(args_va, std::as_writable_bytes(std::span(&c, 1)).first(known)))
        return -EFAULT;
    for (std::uint64_t at = sizeof c; at < size; at += 8) {
        std::uint64_t extra = 0;
        const std::size_t n = std::min<std::uint64_t>(8, size - at);
        if (!memory_.copy_in(args_va + at, std::as_writable_bytes(std::span(&extra, 1)).first(n)))
            return -EFAULT;
        if (extra) return -E2BIG;
    }
    // clone3_args_valid.
    if (c.flags & ~0x1ffffffffull) return -EINVAL; // CLONE_INTO_CGROUP and below
    if (c.flags & kCsignal) return -EINVAL;        // the signal is exit_signal here
    if (c.exit_signal & ~kCsignal) return -EINVAL;
    if ((c.flags & (kCloneThread | kCloneParent)) && c.exit_signal) return -EINVAL;
    if ((c.stack == 0) != (c.stack_size == 0)) return -EINVAL;
    if (c.set_tid || c.set_tid_size) return -EINVAL; // choosing tids: a pid namespace's
    const std::uint64_t sp = c.stack ? c.stack + c.stack_size : 0;
    return clone(c.flags, c.exit_signal, sp, c.parent_tid, c.child_tid, c.tls, thread);
}

SyscallResult ProcessCalls::exit_thread(int code, const ThreadContext& thread) {
    ThreadState state;
    {
        std::lock_guard lock(mutex_);
        state = thread_state(thread.tid());
    }
    // mm_release, while the thread still counts: the robust futexes it
    // still held, then its clear_child_tid word, zeroed and woken (what
    // pthread_join waits on). Counted gone first, a joiner could see one
    // thread left and the word not yet zero: a deadlock to the
    // single-threaded futex.
    if (state.robust_list) exit_robust_list(state.robust_list, thread.tid());
    if (state.clear_child_tid) {
        if (std::uint32_t* w = memory_.word(state.clear_child_tid, true)) {
            std::atomic_ref(*w).store(0);
            host_futex(w, kFutexWake, 1, nullptr, nullptr, 0);
        }
    }
    SyscallResult r{0, SyscallResult::Then::exit_thread, code, {}};
    std::lock_guard lock(mutex_);
    threads_.erase(thread.tid()); // with the signals sent to it alone
    update_pending_flag();
    r.last_thread = --live_threads_ <= 0;
    return r;
}

void ProcessCalls::exit_robust_list(std::uint64_t head_va, int tid) {
    // struct robust_list_head: the list's first entry, the offset from an
    // entry to its futex word, and the entry being locked or unlocked.
    struct Head {
        std::uint64_t next;
        std::int64_t futex_offset;
        std::uint64_t pending;
    } head{};
    if (!get(memory_, head_va, head)) return;
    auto death = [&](std::uint64_t entry) {
        // handle_futex_death: a word the dying thread owns gets OWNER_DIED,
        // keeps WAITERS, and one waiter is woken to take it over.
        std::uint32_t* w =
            memory_.word(entry + static_cast<std::uint64_t>(head.futex_offset), true);
        if (!w) return;
        std::atomic_ref word(*w);
        std::uint32_t old = word.load();
        for (;;) {
            if ((old & kFutexTidMask) != static_cast<std::uint32_t>(tid)) return;
            const std::uint32_t now = (old & kFutexWaiters) | kFutexOwnerDied;
            if (word.compare_exchange_weak(old, now)) break;
        }
        if (old & kFutexWaiters) host_futex(w, kFutexWake, 1, nullptr, nullptr, 0);
    };
    constexpr int kRobustListLimit = 2048;               // ROBUST_LIST_LIMIT
    std::uint64_t entry = head.next & ~std::uint64_t{1}; // bit 0: a PI futex
    const std::uint64_t pending = head.pending & ~std::uint64_t{1};
    for (int n = 0; entry != head_va && n < kRobustListLimit; ++n) {
        std::uint64_t next = 0;
        if (!get(memory_, entry, next)) return;
        if (entry != pending) death(entry);
        entry = next & ~std::uint64_t{1};
    }
    if (pending) death(pending);
}

} // namespace minivmm::linux_abi
