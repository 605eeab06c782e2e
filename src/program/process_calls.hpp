// The system calls of a guest Linux program that are about the process
// itself rather than its files or its memory (issue 16): identity, time,
// sleeping, limits, scheduling, signals, exit. Served on the host with
// Linux's semantics and errno values, every guest pointer through
// UserMemory, as gVisor's Sentry serves them.
//
// Served (x86-64 numbers): uname getpid gettid getppid getuid geteuid getgid
// getegid getpgid getpgrp getsid setsid setpgid arch_prctl set_tid_address
// set_robust_list get_robust_list rseq prlimit64 getrlimit setrlimit
// getrandom clock_gettime clock_getres gettimeofday time nanosleep
// clock_nanosleep sched_yield sched_getaffinity sched_setaffinity getcpu
// rt_sigaction rt_sigprocmask rt_sigpending sigaltstack rt_sigreturn umask
// sysinfo getrusage times prctl kill tgkill tkill exit exit_group futex.
//
// Threads (issue 17): clone and clone3 with pthreads' flags start one
// through ThreadContext::start_thread (a vCPU of its own); the per-thread
// state (signal mask, alternate stack, clear_child_tid, robust list) is kept
// per tid. With one thread, a futex wait that nothing could ever end is
// reported as a deadlock that ends the program; with more, futexes are host
// futexes on the guest words.
//
// Signals (issue 17): actions, masks, a pending set per thread and one for
// the process, alarm and setitimer(ITIMER_REAL), pause and rt_sigsuspend.
// A signal whose action is the default ends the program (or is ignored)
// where Linux's would; one with a handler is taken by the runner, which
// writes the frame (signal_frame.hpp) on the way back to the program: after
// a system call, or after interrupting the thread (Options::interrupt_thread).
// Real-time signals are not queued more than once. The program is treated as
// an ordinary process, not as a pid namespace's init (whose SIG_DFL signals
// Linux would ignore), even when its pid is 1.
#pragma once

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "program/file_table.hpp"
#include "program/signal_frame.hpp"
#include "program/user_memory.hpp"

namespace minivmm::linux_abi {

// What a system call did: the value for rax, and whether the calling
// thread goes on.
struct SyscallResult {
    std::int64_t value = 0; // the result or -errno (for Then::resume)
    enum class Then {
        resume,           // back to the program with `value`
        exit_thread,      // exit: the calling thread ends with exit code `status`
        exit_process,     // exit_group: the program ends with exit code `status`
        killed_by_signal, // the program ends by signal `status`; `message` says why
        sigreturn,        // rt_sigreturn: the runner restores the frame at the thread's RSP
    } then = Then::resume;
    int status = 0; // exit code (0..255) or signal number
    std::string message;
    // exit_thread: it was the program's last thread, so the program ends
    // with exit code `status` (do_exit of a group's last thread).
    bool last_thread = false;
};

// A thread the program starts (clone with CLONE_THREAD): it begins at the
// instruction after the clone with the caller's registers but rax = 0.
struct NewThread {
    int tid = 0;
    std::uint64_t stack = 0; // its rsp; 0: the caller's
    std::uint64_t tls = 0;   // its FS base, when set_tls
    bool set_tls = false;
};

// The calling thread's registers that some calls read or write; the caller
// (the vCPU loop) implements it over the vCPU.
class ThreadContext {
  public:
    virtual ~ThreadContext() = default;
    virtual std::uint64_t fs_base() const = 0;
    virtual void set_fs_base(std::uint64_t base) = 0;
    virtual std::uint64_t gs_base() const = 0;
    virtual void set_gs_base(std::uint64_t base) = 0;
    virtual int tid() const = 0;
    // The thread's user rsp at the system call (sigaltstack asks whether the
    // thread runs on its alternate stack).
    virtual std::uint64_t stack_pointer() const = 0;
    // Starts `thread` (a vCPU of its own, for the runner): 0, or -errno
    // (-EAGAIN when no vCPU can be had). A context that cannot start threads
    // says -ENOSYS.
    virtual std::int64_t start_thread(const NewThread& thread) {
        (void)thread;
        return -ENOSYS;
    }
};

// Sleeps for up to `duration` on the calling thread. Returns false, possibly
// early, when the VM is stopping: the sleeping call then ends with EINTR.
using Sleeper = std::function<bool(std::chrono::nanoseconds duration)>;

// The memory figures of sysinfo and getrusage, in bytes.
struct MemoryFigures {
    std::uint64_t total = 0;         // the program's RAM
    std::uint64_t free = 0;          // of it, not in use
    std::uint64_t peak_resident = 0; // the most it has used at once (ru_maxrss)
};

class ProcessCalls {
  public:
    struct Options {
        int pid = 1;
        int ppid = 0;
        std::uint32_t uid = host_uid(); // real = effective = saved
        std::uint32_t gid = host_gid();
        std::string nodename = "minivmm";
        // The program's name (comm, PR_GET_NAME): the executable's file name,
        // as execve sets it; only its first 15 bytes are kept.
        std::string command_name;
        // The main thread's stack, a fixed mapping: RLIMIT_STACK's soft and
        // hard limit.
        std::uint64_t stack_size = 8ull << 20;
        int cpus = 1; // CPUs the program sees (sched_getaffinity)
        std::uint32_t umask = host_umask();
        Sleeper sleeper; // empty: a host sleep nothing interrupts
        // True while the VM is stopping or pausing: a futex wait of a
        // threaded program then ends with EINTR (empty: never).
        std::function<bool()> interrupted;
        // Asks the runner to bring thread `tid` out of guest code (or out of
        // the wait it is in) so that it takes a signal now due; called with
        // no lock held (empty: signals wait for the thread's next system call).
        std::function<void(int tid)> interrupt_thread;
        // The interval timer was armed, changed or disarmed: next_timer_ns
        // may say another time (empty: nobody asks).
        std::function<void()> timers_changed;
        // Threads the program may have at once, the main one included
        // (clone beyond it: EAGAIN, as RLIMIT_NPROC gives).
        int max_threads = 1;
        std::function<MemoryFigures()> memory; // empty: the host's figures
        // When the VM started: sysinfo's uptime and times' clock count from it.
        std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

        static std::uint32_t host_uid();
        static std::uint32_t host_gid();
        static std::uint32_t host_umask(); // the VMM's own (from /proc/self/status)
    };

    // RLIMIT_NOFILE is `files`' limit (setrlimit changes its soft limit).
    // `memory` and `files` must outlive this object.
    ProcessCalls(Options options, UserMemory& memory, FileTable& files);
    ProcessCalls(const ProcessCalls&) = delete;
    ProcessCalls& operator=(const ProcessCalls&) = delete;

    // The result of a system call this class serves; nullopt for any other
    // number. Thread-safe; a call that sleeps holds no lock while it sleeps.
    std::optional<SyscallResult> call(const SyscallArgs& args, ThreadContext& thread);

    int pid() const { return options_.pid; }
    // Threads that have not exited, the main one included.
    int live_threads() const;
    // The file mode creation mask (umask); the dispatcher applies it to the
    // modes of the file calls that create.
    std::uint32_t umask() const;
    // {soft, hard} of RLIMIT_* `resource` (0..15), for the calls that enforce
    // one (RLIM_INFINITY is ~0).
    std::array<std::uint64_t, 2> rlimit(unsigned resource) const;

    // ---- signals, for the runner ----
    // What a due signal does: end the program, or run a handler (the frame
    // request: the mask and alternate stack of the thread already changed
    // as Linux changes them on delivery).
    struct SignalOutcome {
        std::optional<SyscallResult> end;
        std::optional<SignalFrameRequest> handler;
    };
    // Without the lock: whether any signal is pending anywhere (cheap enough
    // for every system call's way back).
    bool signals_pending() const noexcept { return any_pending_.load(std::memory_order_acquire); }
    // Takes the next signal thread `tid` does not block (its own before the
    // process's, the synchronous ones first, then the lowest number), as
    // get_signal does; nullopt when none is due.
    std::optional<SignalOutcome> next_signal(int tid);
    // A fault of thread `tid` (force_sig_fault): its handler, unless the
    // signal is blocked or ignored, which resets it to the default action:
    // then the program ends with `message`.
    SignalOutcome fault_signal(int tid, const SignalInfo& info, std::string message);
    // After rt_sigreturn: the mask and the alternate stack from the frame
    // (restore_altstack's errors are ignored, as Linux ignores them), the
    // thread's RSP being `sp`.
    void restore_after_handler(int tid, std::uint64_t blocked, const AltStack& altstack,
                               std::uint64_t sp);
    // ITIMER_REAL: when it fires next (CLOCK_MONOTONIC, ns), if armed.
    std::optional<std::int64_t> next_timer_ns() const;
    // Fires the timer if it is due at `now_ns`: SIGALRM to the process.
    void fire_timers(std::int64_t now_ns);
    // Ends every wait of the program's threads early (the VM stops or pauses).
    void wake_all();

    // The layout of struct kernel_sigaction on x86-64 (what rt_sigaction
    // reads and writes; glibc's struct sigaction is a different one).
    struct SignalAction {
        std::uint64_t handler = 0; // SIG_DFL 0, SIG_IGN 1, or a function
        std::uint64_t flags = 0;
        std::uint64_t restorer = 0;
        std::uint64_t mask = 0;
    };
    static_assert(sizeof(SignalAction) == 32);
    static constexpr int kSignals = 64; // _NSIG

  private:
    // How a waiting thread is woken early: a futex word of its own, and the
    // guest futex word it waits on, if any.
    struct Wake {
        std::atomic<std::uint32_t> seq{0};
        std::atomic<std::uint32_t*> futex{nullptr};
    };
    // What Linux keeps per thread (task_struct) that these calls touch.
    struct ThreadState {
        std::uint64_t blocked = 0;         // the signal mask, bit sig-1
        std::uint64_t pending = 0;         // signals sent to this thread
        std::array<SignalInfo, 64> info{}; // of each pending one
        // rt_sigsuspend's mask to restore once a handler has run.
        std::optional<std::uint64_t> saved_mask;
        std::shared_ptr<Wake> wake = std::make_shared<Wake>();
        std::uint64_t clear_child_tid = 0; // set_tid_address
        std::uint64_t robust_list = 0;     // set_robust_list
        AltStack altstack;                 // sigaltstack
    };
    struct Deadline;

    std::int64_t uname(std::uint64_t buf);
    // getresuid/getresgid: `id` to each of the three pointers.
    std::int64_t three_ids(std::uint64_t r, std::uint64_t e, std::uint64_t s, std::uint32_t id);
    std::int64_t getpgid(int pid, const ThreadContext& thread) const;
    std::int64_t setpgid(int pid, int pgid, const ThreadContext& thread) const;
    std::int64_t arch_prctl(int code, std::uint64_t addr, ThreadContext& thread);
    std::int64_t get_robust_list(int pid, std::uint64_t head_ptr, std::uint64_t len_ptr,
                                 const ThreadContext& thread);
    std::int64_t prlimit(int pid, std::uint64_t resource, std::uint64_t new_limit,
                         std::uint64_t old_limit, const ThreadContext& thread);
    std::int64_t getrlimit(std::uint64_t resource, std::uint64_t limit);
    std::int64_t setrlimit(std::uint64_t resource, std::uint64_t limit);
    // do_prlimit: -errno, or 0 with the limits before in `old`.
    std::int64_t change_rlimit(std::uint64_t resource,
                               const std::optional<std::array<std::uint64_t, 2>>& wanted,
                               std::array<std::uint64_t, 2>& old);
    std::int64_t getrandom(std::uint64_t buf, std::uint64_t count, std::uint64_t flags);
    std::int64_t clock_gettime(int clock, std::uint64_t tp, const ThreadContext& thread);
    std::int64_t clock_getres(int clock, std::uint64_t tp, const ThreadContext& thread);
    std::int64_t gettimeofday(std::uint64_t tv, std::uint64_t tz);
    std::int64_t time(std::uint64_t tloc);
    SyscallResult clock_nanosleep(int clock, std::uint64_t flags, std::uint64_t req,
                                  std::uint64_t rem, const ThreadContext& thread);
    std::int64_t sched_getaffinity(int pid, std::uint64_t len, std::uint64_t mask,
                                   const ThreadContext& thread);
    std::int64_t sched_setaffinity(int pid, std::uint64_t len, std::uint64_t mask,
                                   const ThreadContext& thread);
    std::int64_t getcpu(std::uint64_t cpu, std::uint64_t node);
    std::int64_t rt_sigaction(int sig, std::uint64_t act, std::uint64_t oldact,
                              std::uint64_t sigsetsize);
    SyscallResult rt_sigprocmask(int how, std::uint64_t set, std::uint64_t oldset,
                                 std::uint64_t sigsetsize, const ThreadContext& thread);
    std::int64_t rt_sigpending(std::uint64_t set, std::uint64_t sigsetsize,
                               const ThreadContext& thread);
    std::int64_t sigaltstack(std::uint64_t ss, std::uint64_t old_ss, const ThreadContext& thread);
    std::int64_t sysinfo(std::uint64_t info);
    std::int64_t getrusage(int who, std::uint64_t usage);
    std::int64_t times(std::uint64_t buf);
    std::int64_t prctl(int option, std::uint64_t arg2, std::uint64_t arg3, std::uint64_t arg4,
                       std::uint64_t arg5);
    SyscallResult kill(int pid, int sig, const ThreadContext& thread);
    // tgkill with tgid > 0; tkill with tgid 0 (any thread group).
    SyscallResult tgkill(int tgid, int tid, int sig, const ThreadContext& thread);
    // futex's arguments as SYSCALL_DEFINE6(futex) names them.
    struct FutexArgs {
        explicit FutexArgs(const SyscallArgs& a);
        std::uint64_t uaddr;
        int op;
        std::uint32_t val;
        std::uint64_t utime; // a timeout's address, or val2 (a count)
        std::uint64_t uaddr2;
        std::uint32_t val3;
        int cmd; // op without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME
    };
    SyscallResult futex(const SyscallArgs& args, const ThreadContext& thread);
    // futex with more than one thread: on the host address of the guest
    // word (UserMemory::word), so a host futex holds the waiters.
    std::int64_t threaded_futex(const FutexArgs& args, int tid);
    // clone/clone3 with the flags of a thread (CLONE_VM | CLONE_THREAD ...):
    // the new tid or -errno; other flag sets (a new process) are -ENOSYS.
    std::int64_t clone(std::uint64_t flags, std::uint64_t exit_signal, std::uint64_t stack,
                       std::uint64_t parent_tid, std::uint64_t child_tid, std::uint64_t tls,
                       ThreadContext& thread);
    std::int64_t clone3(std::uint64_t args, std::uint64_t size, ThreadContext& thread);
    // exit: the robust list and clear_child_tid of the calling thread
    // (mm_release), then the thread ends.
    SyscallResult exit_thread(int code, const ThreadContext& thread);
    // exit_robust_list and handle_futex_death (kernel/futex/core.c).
    void exit_robust_list(std::uint64_t head, int tid);

    // The signal next_signal_locked would take for `thread` (0: none), and
    // taking it, under mutex_.
    int peek_signal_locked(const ThreadState& thread) const;
    std::optional<SignalOutcome> next_signal_locked(ThreadState& thread);
    // Queues `sig` for thread `tid`, or for the process when `tid` is 0
    // (send_signal_locked and complete_signal), under mutex_. Returns the
    // thread to interrupt so that it takes it (0: none needs to be).
    int queue_signal(int tid, const SignalInfo& info);
    // Takes the pending signals `thread` does not block whose default action
    // ends the program or that are ignored, until one has a handler (the
    // runner takes that one), under mutex_.
    std::optional<SyscallResult> take_unblocked_signals(ThreadState& thread);
    // Whether thread `tid` has a signal due (pending and not blocked), under mutex_.
    bool signal_due_locked(const ThreadState& thread) const {
        return peek_signal_locked(thread) != 0;
    }
    bool signal_due(int tid) const;
    // Recomputes any_pending_, under mutex_.
    void update_pending_flag();
    // Wakes thread `tid`'s wait, if it waits, under mutex_.
    void wake_thread_locked(const ThreadState& thread);
    // Sleeps until `deadline` through the sleeper: true when it passed;
    // false when it ended early (the VM stops or pauses, or a signal is due
    // for thread `tid`), with the time left.
    bool sleep_until(const Deadline& deadline, std::int64_t& left_ns, int tid);
    // sleep_until with no deadline: until the VM stops or pauses, or a
    // signal is due for thread `tid`.
    void sleep_until_signal(int tid);
    // Waits on thread `tid`'s wake word for at most `ns`.
    void wait_a_while(int tid, std::int64_t ns);
    // do_sigaltstack's change of thread `t`'s alternate stack to `wanted`,
    // the thread being at `sp`: 0 or -errno (nothing changed), under mutex_.
    std::int64_t change_altstack_locked(ThreadState& t, AltStack wanted, std::uint64_t sp);
    SyscallResult pause(const ThreadContext& thread);
    SyscallResult rt_sigsuspend(std::uint64_t mask, std::uint64_t sigsetsize,
                                const ThreadContext& thread);
    std::int64_t setitimer(int which, std::uint64_t value, std::uint64_t old);
    std::int64_t getitimer(int which, std::uint64_t value);
    std::int64_t alarm(std::uint64_t seconds);
    // The timer as struct itimerval (interval, value), under mutex_.
    struct Itimerval {
        std::int64_t interval_sec, interval_usec, value_sec, value_usec;
    };
    Itimerval itimer_locked() const;
    void arm_itimer_locked(std::int64_t value_ns, std::int64_t interval_ns);
    MemoryFigures memory_figures() const;
    ThreadState& thread_state(int tid); // under mutex_
    // Whether `id` names the program (a pid or tid argument; 0 is handled by
    // each caller, as in Linux).
    bool names_self(int id, const ThreadContext& thread) const;

    const Options options_;
    const int cpus_; // options_.cpus, at least 1: nr_cpu_ids
    UserMemory& memory_;
    FileTable& files_;
    Sleeper sleeper_;

    mutable std::mutex mutex_; // everything below
    std::uint32_t umask_;
    std::array<std::array<std::uint64_t, 2>, 16> rlimits_{};
    std::array<SignalAction, kSignals> actions_{};
    std::uint64_t pending_signals_ = 0; // bit sig-1: sent to the process
    std::array<SignalInfo, 64> pending_info_{};
    std::atomic<bool> any_pending_{false};     // pending_signals_ or a thread's pending
    std::optional<std::int64_t> itimer_at_ns_; // ITIMER_REAL, CLOCK_MONOTONIC
    std::int64_t itimer_interval_ns_ = 0;
    std::map<int, ThreadState> threads_;
    int live_threads_ = 1;
    int next_tid_;
    std::uint64_t warned_clone_flags_ = ~std::uint64_t{0}; // the last flag set warned of
    std::vector<std::uint64_t> affinity_;                  // one bit per CPU
    std::array<char, 16> command_name_{};
    int dumpable_ = 1;
    bool no_new_privs_ = false;
};

} // namespace minivmm::linux_abi
