// The Linux personality's process calls (src/program/process_calls.*) and
// the system call dispatcher (src/program/syscall_dispatcher.*), driven with
// guest buffers in a FlatUserMemory and a fake calling thread; results that
// the host can give too (clocks, uname, CPU time) are compared with the
// host's own.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/times.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/ringbuffer_sink.h>

#include "minivmm/log.hpp"
#include "program/file_sandbox.hpp"
#include "program/file_syscalls.hpp"
#include "program/file_table.hpp"
#include "program/process_calls.hpp"
#include "program/syscall_dispatcher.hpp"
#include "testing/flat_user_memory.hpp"

namespace {

namespace fs = std::filesystem;
using minivmm::linux_abi::FileSandbox;
using minivmm::linux_abi::FileSystemCalls;
using minivmm::linux_abi::FileTable;
using minivmm::linux_abi::FlatUserMemory;
using minivmm::linux_abi::MemoryFigures;
using minivmm::linux_abi::NewThread;
using minivmm::linux_abi::ProcessCalls;
using minivmm::linux_abi::syscall_name;
using minivmm::linux_abi::SyscallArgs;
using minivmm::linux_abi::SyscallDispatcher;
using minivmm::linux_abi::SyscallResult;
using minivmm::linux_abi::ThreadContext;
using Then = SyscallResult::Then;
using namespace std::chrono_literals;

constexpr std::uint64_t kBase = 0x10000000;
constexpr std::size_t kMemory = 1 << 20;
constexpr std::uint64_t kInfinity = ~std::uint64_t{0};
constexpr std::uint64_t kTaskSizeMax = (1ull << 47) - 4096;

struct Timespec {
    std::int64_t sec;
    std::int64_t nsec;
};
struct Rlimit {
    std::uint64_t soft;
    std::uint64_t hard;
};
struct StackT {
    std::uint64_t sp;
    std::int32_t flags;
    std::uint32_t pad;
    std::uint64_t size;
};

class FakeThread final : public ThreadContext {
  public:
    std::uint64_t fs_base() const override { return fs; }
    void set_fs_base(std::uint64_t base) override { fs = base; }
    std::uint64_t gs_base() const override { return gs; }
    void set_gs_base(std::uint64_t base) override { gs = base; }
    int tid() const override { return id; }
    std::uint64_t stack_pointer() const override { return rsp; }
    std::int64_t start_thread(const NewThread& t) override {
        started.push_back(t);
        return start_result;
    }

    std::uint64_t fs = 0, gs = 0, rsp = 0x7ffffff00000;
    int id = 1;
    std::vector<NewThread> started; // what start_thread was asked
    std::int64_t start_result = 0;
};

std::int64_t host_ns(clockid_t clock) {
    timespec ts{};
    ::clock_gettime(clock, &ts);
    return ts.tv_sec * 1'000'000'000ll + ts.tv_nsec;
}

std::int64_t ns_of(const Timespec& ts) {
    return ts.sec * 1'000'000'000ll + ts.nsec;
}

// One program's process calls, in a flat memory, as thread `thread`.
struct Guest {
    FlatUserMemory mem{kBase, kMemory};
    FileTable files;
    std::unique_ptr<ProcessCalls> calls;
    FakeThread thread;
    std::uint64_t next = kBase;

    static ProcessCalls::Options defaults() {
        ProcessCalls::Options o;
        o.pid = 1;
        o.uid = 1000; // not root, whoever runs the tests
        o.gid = 1000;
        return o;
    }
    explicit Guest(ProcessCalls::Options options = defaults(), int fd_limit = 64)
        : files(fd_limit), calls(std::make_unique<ProcessCalls>(std::move(options), mem, files)) {
        thread.id = calls->pid();
    }

    SyscallResult call(long nr, std::uint64_t a0 = 0, std::uint64_t a1 = 0, std::uint64_t a2 = 0,
                       std::uint64_t a3 = 0, std::uint64_t a4 = 0, std::uint64_t a5 = 0) {
        SyscallArgs args;
        args.nr = static_cast<std::uint64_t>(nr);
        const std::uint64_t regs[] = {a0, a1, a2, a3, a4, a5};
        std::copy(std::begin(regs), std::end(regs), args.a);
        auto r = calls->call(args, thread);
        REQUIRE(r.has_value());
        return *r;
    }
    // A call that returns to the program: its value.
    std::int64_t sys(long nr, std::uint64_t a0 = 0, std::uint64_t a1 = 0, std::uint64_t a2 = 0,
                     std::uint64_t a3 = 0, std::uint64_t a4 = 0, std::uint64_t a5 = 0) {
        SyscallResult r = call(nr, a0, a1, a2, a3, a4, a5);
        REQUIRE(r.then == Then::resume);
        return r.value;
    }
    std::uint64_t alloc(std::size_t n) {
        std::uint64_t va = next;
        next += (n + 15) / 16 * 16;
        REQUIRE(next <= kBase + kMemory);
        return va;
    }
    template <class T>
    std::uint64_t put(const T& value) {
        std::uint64_t va = alloc(sizeof(T));
        mem.put_value(va, value);
        return va;
    }
    // A page-aligned unmapped (or read-only) page, away from alloc()'s.
    std::uint64_t hole(FlatUserMemory::Access access = FlatUserMemory::Access::unmapped) {
        const std::uint64_t va = kBase + kMemory - 4096;
        mem.set_hole(va, 4096, access);
        return va;
    }
};

std::uint64_t sigbit(int sig) {
    return std::uint64_t{1} << (sig - 1);
}

// rt_sigaction with a handler (or SIG_DFL 0 / SIG_IGN 1).
std::int64_t set_action(Guest& g, int sig, std::uint64_t handler, std::uint64_t flags = 0,
                        std::uint64_t mask = 0) {
    const ProcessCalls::SignalAction act{handler, flags, 0x401000, mask};
    return g.sys(SYS_rt_sigaction, static_cast<std::uint64_t>(sig), g.put(act), 0, 8);
}

std::int64_t block(Guest& g, int how, std::uint64_t set) {
    return g.sys(SYS_rt_sigprocmask, static_cast<std::uint64_t>(how), g.put(set), 0, 8);
}

} // namespace

TEST_CASE("process calls: ids, process group and session", "[process-calls]") {
    ProcessCalls::Options o;
    o.pid = 42;
    o.ppid = 7;
    o.uid = 1234;
    o.gid = 567;
    Guest g(o);
    CHECK(g.sys(SYS_getpid) == 42);
    CHECK(g.sys(SYS_gettid) == 42);
    CHECK(g.sys(SYS_getppid) == 7);
    CHECK(g.sys(SYS_getuid) == 1234);
    CHECK(g.sys(SYS_geteuid) == 1234);
    CHECK(g.sys(SYS_getgid) == 567);
    CHECK(g.sys(SYS_getegid) == 567);
    g.thread.id = 43;
    CHECK(g.sys(SYS_gettid) == 43);
    g.thread.id = 42;

    // Real, effective and saved ids: one id each, written to three places;
    // any bad pointer is EFAULT (kernel/sys.c getresuid, getresgid).
    const std::uint64_t r = g.alloc(4), e = g.alloc(4), saved = g.alloc(4);
    CHECK(g.sys(SYS_getresuid, r, e, saved) == 0);
    CHECK(g.mem.value_at<std::uint32_t>(r) == 1234);
    CHECK(g.mem.value_at<std::uint32_t>(e) == 1234);
    CHECK(g.mem.value_at<std::uint32_t>(saved) == 1234);
    CHECK(g.sys(SYS_getresgid, r, e, saved) == 0);
    CHECK(g.mem.value_at<std::uint32_t>(r) == 567);
    CHECK(g.mem.value_at<std::uint32_t>(saved) == 567);
    CHECK(g.sys(SYS_getresuid, r, e, g.hole()) == -EFAULT);
    CHECK(g.sys(SYS_getresgid, 0, e, saved) == -EFAULT);
    // No supplementary groups: 0 for any size, EINVAL for a negative one.
    CHECK(g.sys(SYS_getgroups, 0, 0) == 0);
    CHECK(g.sys(SYS_getgroups, 16, g.alloc(64)) == 0);
    CHECK(g.sys(SYS_getgroups, static_cast<std::uint64_t>(-1), 0) == -EINVAL);

    CHECK(g.sys(SYS_getpgrp) == 42);
    CHECK(g.sys(SYS_getpgid, 0) == 42);
    CHECK(g.sys(SYS_getpgid, 42) == 42);
    CHECK(g.sys(SYS_getpgid, 7) == -ESRCH);
    CHECK(g.sys(SYS_getpgid, 0x100000000ull | 42) == 42); // pid_t is 32 bits
    CHECK(g.sys(SYS_getsid, 0) == 42);
    CHECK(g.sys(SYS_getsid, 42) == 42);
    CHECK(g.sys(SYS_getsid, 1) == -ESRCH);
    CHECK(g.sys(SYS_setsid) == -EPERM); // already a group leader
    CHECK(g.sys(SYS_setpgid, 0, 0) == -EPERM);
    CHECK(g.sys(SYS_setpgid, 0, static_cast<std::uint64_t>(-5)) == -EINVAL);
    CHECK(g.sys(SYS_setpgid, 99, 0) == -ESRCH);
    CHECK(g.sys(SYS_kill, static_cast<std::uint64_t>(-42), 0) == 0); // its process group
    CHECK(g.sys(SYS_kill, static_cast<std::uint64_t>(-43), 0) == -ESRCH);

    // The defaults: pid 1, parent 0, the host's real ids.
    FlatUserMemory mem(kBase, 4096);
    FileTable files;
    ProcessCalls plain(ProcessCalls::Options{}, mem, files);
    FakeThread t;
    CHECK(plain.call({SYS_getpid, {}}, t)->value == 1);
    CHECK(plain.call({SYS_getppid, {}}, t)->value == 0);
    CHECK(plain.call({SYS_getuid, {}}, t)->value == ::getuid());
    CHECK(plain.call({SYS_getgid, {}}, t)->value == ::getgid());
    CHECK(plain.pid() == 1);
}

TEST_CASE("process calls: uname", "[process-calls]") {
    ProcessCalls::Options o = Guest::defaults();
    o.nodename = "box";
    Guest g(o);
    std::uint64_t buf = g.alloc(390);
    g.mem.put(buf, std::vector<std::byte>(390, std::byte{0x55}));
    REQUIRE(g.sys(SYS_uname, buf) == 0);
    struct utsname host {};
    REQUIRE(::uname(&host) == 0);
    const auto field = [&](int i) {
        return std::string(g.mem.string_at(buf + 65 * i, 65).c_str());
    };
    CHECK(field(0) == "Linux");
    CHECK(field(1) == "box");
    CHECK(field(2) == host.release);
    CHECK(field(3) == host.version);
    CHECK(field(4) == "x86_64");
    CHECK(field(5) == "(none)");
    CHECK(g.mem.value_at<char>(buf + 65 * 6 - 1) == '\0'); // padded with NULs

    CHECK(g.sys(SYS_uname, 0) == -EFAULT);
    CHECK(g.sys(SYS_uname, kBase + kMemory - 389) == -EFAULT); // one byte short
    const std::uint64_t ro = g.hole(FlatUserMemory::Access::read_only);
    CHECK(g.sys(SYS_uname, ro) == -EFAULT);
}

TEST_CASE("process calls: arch_prctl", "[process-calls]") {
    Guest g;
    constexpr std::uint64_t kSetGs = 0x1001, kSetFs = 0x1002, kGetFs = 0x1003, kGetGs = 0x1004;
    CHECK(g.sys(SYS_arch_prctl, kSetFs, 0x7f0000001000) == 0);
    CHECK(g.thread.fs == 0x7f0000001000);
    CHECK(g.sys(SYS_arch_prctl, kSetGs, 0x1234) == 0);
    CHECK(g.thread.gs == 0x1234);
    const std::uint64_t out = g.alloc(8);
    CHECK(g.sys(SYS_arch_prctl, kGetFs, out) == 0);
    CHECK(g.mem.value_at<std::uint64_t>(out) == 0x7f0000001000);
    CHECK(g.sys(SYS_arch_prctl, kGetGs, out) == 0);
    CHECK(g.mem.value_at<std::uint64_t>(out) == 0x1234);
    // The option is an int: the upper half of the register does not count.
    CHECK(g.sys(SYS_arch_prctl, 0xffffffff00000000 | kSetFs, 0x5000) == 0);
    CHECK(g.thread.fs == 0x5000);

    // At or above TASK_SIZE_MAX: EPERM, and the base stays.
    CHECK(g.sys(SYS_arch_prctl, kSetFs, kTaskSizeMax) == -EPERM);
    CHECK(g.sys(SYS_arch_prctl, kSetGs, 0xffff800000000000) == -EPERM);
    CHECK(g.sys(SYS_arch_prctl, kSetFs, kTaskSizeMax - 1) == 0);
    CHECK(g.thread.fs == kTaskSizeMax - 1);
    CHECK(g.thread.gs == 0x1234);

    CHECK(g.sys(SYS_arch_prctl, kGetFs, 0) == -EFAULT);
    CHECK(g.sys(SYS_arch_prctl, kGetGs, g.hole(FlatUserMemory::Access::read_only)) == -EFAULT);
    CHECK(g.sys(SYS_arch_prctl, 0x1011 /* ARCH_GET_CPUID */, 0) == -EINVAL);
    CHECK(g.sys(SYS_arch_prctl, 0, 0) == -EINVAL);
}

TEST_CASE("process calls: set_tid_address, robust lists, rseq", "[process-calls]") {
    Guest g;
    g.thread.id = 1;
    CHECK(g.sys(SYS_set_tid_address, 0x5000) == 1);
    CHECK(g.sys(SYS_set_robust_list, 0x6000, 24) == 0);
    CHECK(g.sys(SYS_set_robust_list, 0x6000, 16) == -EINVAL);
    CHECK(g.sys(SYS_set_robust_list, 0x6000, 0x10000000018) == -EINVAL); // size_t, all of it
    const std::uint64_t head = g.alloc(8), len = g.alloc(8);
    CHECK(g.sys(SYS_get_robust_list, 0, head, len) == 0);
    CHECK(g.mem.value_at<std::uint64_t>(head) == 0x6000);
    CHECK(g.mem.value_at<std::uint64_t>(len) == 24);
    CHECK(g.sys(SYS_get_robust_list, 1, head, len) == 0);
    CHECK(g.sys(SYS_get_robust_list, 2, head, len) == -ESRCH);
    CHECK(g.sys(SYS_get_robust_list, 0, head, 0) == -EFAULT);
    CHECK(g.sys(SYS_get_robust_list, 0, 0, len) == -EFAULT);
    // Each thread has its own.
    g.thread.id = 2;
    CHECK(g.sys(SYS_set_tid_address, 0) == 2);
    CHECK(g.sys(SYS_get_robust_list, 0, head, len) == 0);
    CHECK(g.mem.value_at<std::uint64_t>(head) == 0);

    CHECK(g.sys(SYS_rseq, 0x7000, 32, 0, 0x53053053) == -ENOSYS);
    CHECK(g.call(SYS_rt_sigreturn).then == Then::sigreturn); // the runner reads the frame
}

TEST_CASE("process calls: resource limits", "[process-calls]") {
    ProcessCalls::Options o = Guest::defaults();
    o.stack_size = 4 << 20;
    Guest g(o, 100);
    const std::uint64_t out = g.alloc(16);
    const auto limit = [&](int resource) {
        REQUIRE(g.sys(SYS_getrlimit, static_cast<std::uint64_t>(resource), out) == 0);
        return g.mem.value_at<Rlimit>(out);
    };
    CHECK(limit(RLIMIT_STACK).soft == 4 << 20);
    CHECK(limit(RLIMIT_STACK).hard == 4 << 20);
    CHECK(limit(RLIMIT_NOFILE).soft == 100);
    CHECK(limit(RLIMIT_NOFILE).hard == 100);
    CHECK(limit(RLIMIT_AS).soft == kInfinity);
    CHECK(limit(RLIMIT_DATA).hard == kInfinity);
    CHECK(limit(RLIMIT_CPU).soft == kInfinity);
    CHECK(limit(RLIMIT_CORE).soft == 0);
    CHECK(limit(RLIMIT_CORE).hard == kInfinity);
    CHECK(limit(RLIMIT_NICE).hard == 0);
    struct rlimit host {};
    ::getrlimit(RLIMIT_NPROC, &host);
    CHECK(limit(RLIMIT_NPROC).soft == host.rlim_cur);
    CHECK(g.sys(SYS_getrlimit, 16, out) == -EINVAL);
    CHECK(g.sys(SYS_getrlimit, RLIMIT_AS, 0) == -EFAULT);
    CHECK(g.sys(SYS_getrlimit, 0x100000000ull | RLIMIT_STACK, out) == 0); // unsigned int

    // Lowering the soft fd limit reaches the file table: no new number at
    // or above it.
    CHECK(g.sys(SYS_setrlimit, RLIMIT_NOFILE, g.put(Rlimit{10, 100})) == 0);
    CHECK(g.files.limit() == 10);
    CHECK(g.files.reserve(10) == -EMFILE);
    CHECK(limit(RLIMIT_NOFILE).soft == 10);
    CHECK(g.sys(SYS_setrlimit, RLIMIT_NOFILE, g.put(Rlimit{100, 100})) == 0);
    CHECK(g.files.limit() == 100);
    CHECK(g.sys(SYS_setrlimit, RLIMIT_NOFILE, g.put(Rlimit{101, 100})) == -EINVAL); // soft > hard
    CHECK(g.sys(SYS_setrlimit, RLIMIT_NOFILE, g.put(Rlimit{100, 101})) == -EPERM);  // nr_open
    CHECK(g.sys(SYS_setrlimit, RLIMIT_STACK, g.put(Rlimit{4 << 20, 8 << 20})) == -EPERM);
    CHECK(g.sys(SYS_setrlimit, RLIMIT_STACK, g.put(Rlimit{1 << 20, 4 << 20})) == 0);
    CHECK(limit(RLIMIT_STACK).soft == 1 << 20);

    // A lowered hard limit cannot be raised again without CAP_SYS_RESOURCE.
    CHECK(g.sys(SYS_setrlimit, RLIMIT_CPU, g.put(Rlimit{10, 20})) == 0);
    CHECK(g.sys(SYS_setrlimit, RLIMIT_CPU, g.put(Rlimit{10, 30})) == -EPERM);
    CHECK(g.sys(SYS_setrlimit, RLIMIT_CPU, g.put(Rlimit{20, 20})) == 0);
    CHECK(g.calls->rlimit(RLIMIT_CPU) == std::array<std::uint64_t, 2>{20, 20});
    CHECK(g.sys(SYS_setrlimit, 16, g.put(Rlimit{0, 0})) == -EINVAL);
    CHECK(g.sys(SYS_setrlimit, RLIMIT_CPU, 0) == -EFAULT);

    // prlimit64: pid 0 or the program's own; the old limits are those before.
    const std::uint64_t old = g.alloc(16);
    CHECK(g.sys(SYS_prlimit64, 0, RLIMIT_CPU, g.put(Rlimit{5, 10}), old) == 0);
    CHECK(g.mem.value_at<Rlimit>(old).soft == 20);
    CHECK(g.sys(SYS_prlimit64, 1, RLIMIT_CPU, 0, old) == 0);
    CHECK(g.mem.value_at<Rlimit>(old).soft == 5);
    CHECK(g.mem.value_at<Rlimit>(old).hard == 10);
    CHECK(g.sys(SYS_prlimit64, 2, RLIMIT_CPU, 0, old) == -ESRCH);
    CHECK(g.sys(SYS_prlimit64, 0, 99, 0, old) == -EINVAL);
    CHECK(g.sys(SYS_prlimit64, 0, RLIMIT_CPU, 0, 0) == 0);
    CHECK(g.sys(SYS_prlimit64, 2, RLIMIT_CPU, 8, 0) == -EFAULT); // the new limit is read first
    // A failed write of the old limits leaves the new ones set.
    CHECK(g.sys(SYS_prlimit64, 0, RLIMIT_CPU, g.put(Rlimit{6, 10}), g.hole()) == -EFAULT);
    CHECK(g.calls->rlimit(RLIMIT_CPU) == std::array<std::uint64_t, 2>{6, 10});

    // Root may raise hard limits, but not past the VMM's ceilings.
    ProcessCalls::Options root = Guest::defaults();
    root.uid = 0;
    Guest r(root, 100);
    CHECK(r.sys(SYS_setrlimit, RLIMIT_CPU, r.put(Rlimit{10, 20})) == 0);
    CHECK(r.sys(SYS_setrlimit, RLIMIT_CPU, r.put(Rlimit{10, 30})) == 0);
    CHECK(r.sys(SYS_setrlimit, RLIMIT_NOFILE, r.put(Rlimit{100, 200})) == -EPERM);
    CHECK(r.sys(SYS_setrlimit, RLIMIT_NOFILE, r.put(Rlimit{0, 50})) == 0);
    CHECK(r.files.limit() == 0);
    CHECK(r.files.reserve() == -EMFILE);
}

TEST_CASE("process calls: getrandom", "[process-calls]") {
    Guest g;
    const std::uint64_t a = g.alloc(64), b = g.alloc(64);
    CHECK(g.sys(SYS_getrandom, a, 64, 0) == 64);
    CHECK(g.sys(SYS_getrandom, b, 64, 1 /* GRND_NONBLOCK */) == 64);
    CHECK(g.mem.string_at(a, 64) != g.mem.string_at(b, 64));
    CHECK(g.mem.string_at(a, 64) != std::string(64, '\0'));
    CHECK(g.sys(SYS_getrandom, a, 16, 2 /* GRND_RANDOM */) == 16);
    CHECK(g.sys(SYS_getrandom, a, 16, 4 /* GRND_INSECURE */) == 16);
    CHECK(g.sys(SYS_getrandom, a, 16, 1 | 4) == 16);
    CHECK(g.sys(SYS_getrandom, a, 16, 2 | 4) == -EINVAL);
    CHECK(g.sys(SYS_getrandom, a, 16, 8) == -EINVAL);
    CHECK(g.sys(SYS_getrandom, a, 0, 0) == 0);
    CHECK(g.sys(SYS_getrandom, 0, 0, 0) == 0);
    // Into an unmapped page: EFAULT, or what fit before it.
    const std::uint64_t hole = g.hole();
    CHECK(g.sys(SYS_getrandom, hole, 16, 0) == -EFAULT);
    CHECK(g.sys(SYS_getrandom, hole - 100, 200, 0) == 100);
    CHECK(g.sys(SYS_getrandom, kTaskSizeMax - 8, 16, 0) == -EFAULT);
    // Clamped to MAX_RW_COUNT, then bounded by the memory that is there.
    CHECK(g.sys(SYS_getrandom, hole - 8192, kInfinity, 0) == 8192);
}

TEST_CASE("process calls: clock_gettime against the host's clocks", "[process-calls]") {
    Guest g;
    const std::uint64_t tp = g.alloc(16);
    constexpr std::int64_t kSlack = 50'000'000; // 50 ms
    for (clockid_t clock :
         {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE,
          CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME, CLOCK_TAI}) {
        INFO("clock " << clock);
        const std::int64_t before = host_ns(clock);
        REQUIRE(g.sys(SYS_clock_gettime, static_cast<std::uint64_t>(clock), tp) == 0);
        const std::int64_t after = host_ns(clock);
        const Timespec ts = g.mem.value_at<Timespec>(tp);
        CHECK(ts.nsec >= 0);
        CHECK(ts.nsec < 1'000'000'000);
        CHECK(ns_of(ts) >= before - kSlack); // coarse clocks lag a tick
        CHECK(ns_of(ts) <= after + kSlack);
    }
    // The alarm clocks work where the host has an RTC, else EINVAL, as there.
    for (clockid_t clock : {CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM}) {
        timespec host{};
        const int expected = ::clock_gettime(clock, &host) == 0 ? 0 : -errno;
        CHECK(g.sys(SYS_clock_gettime, static_cast<std::uint64_t>(clock), tp) == expected);
    }

    // CPU time: the calling host thread's.
    volatile std::uint64_t spin = 0;
    for (int i = 0; i < 2'000'000; ++i)
        spin = spin + static_cast<std::uint64_t>(i);
    const clockid_t own_process = (~0 << 3) | 2;         // MAKE_PROCESS_CPUCLOCK(0, SCHED)
    const clockid_t own_thread = (~1 << 3) | 4 | 2;      // MAKE_THREAD_CPUCLOCK(1, SCHED)
    const clockid_t own_thread_prof = (~0 << 3) | 4 | 0; // MAKE_THREAD_CPUCLOCK(0, PROF)
    for (clockid_t clock : {CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, own_process,
                            own_thread, own_thread_prof}) {
        INFO("clock " << clock);
        const std::int64_t before = host_ns(CLOCK_THREAD_CPUTIME_ID);
        REQUIRE(g.sys(SYS_clock_gettime, static_cast<std::uint64_t>(clock), tp) == 0);
        const std::int64_t after = host_ns(CLOCK_THREAD_CPUTIME_ID);
        CHECK(ns_of(g.mem.value_at<Timespec>(tp)) > 0);
        CHECK(ns_of(g.mem.value_at<Timespec>(tp)) <= after + 10'000'000); // PROF ticks
        if (clock != own_thread_prof) CHECK(ns_of(g.mem.value_at<Timespec>(tp)) >= before);
    }

    const clockid_t other_process = (~7 << 3) | 2;
    const clockid_t other_thread = (~7 << 3) | 4 | 2;
    const clockid_t bad_which = (~0 << 3) | 3 | 4;
    const clockid_t dynamic_fd3 = (~3 << 3) | 3; // FD_TO_CLOCKID(3)
    for (clockid_t clock : {10, 12, 1000, -1, other_process, other_thread, bad_which, dynamic_fd3})
        CHECK(g.sys(SYS_clock_gettime,
                    static_cast<std::uint64_t>(static_cast<std::uint32_t>(clock)), tp) == -EINVAL);
    CHECK(g.sys(SYS_clock_gettime, CLOCK_REALTIME, 0) == -EFAULT);
    CHECK(g.sys(SYS_clock_gettime, CLOCK_MONOTONIC, g.hole(FlatUserMemory::Access::read_only)) ==
          -EFAULT);
}

TEST_CASE("process calls: clock_getres, gettimeofday, time", "[process-calls]") {
    Guest g;
    const std::uint64_t tp = g.alloc(16);
    for (clockid_t clock : {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_REALTIME_COARSE,
                            CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID}) {
        INFO("clock " << clock);
        timespec host{};
        REQUIRE(::clock_getres(clock, &host) == 0);
        REQUIRE(g.sys(SYS_clock_getres, static_cast<std::uint64_t>(clock), tp) == 0);
        CHECK(g.mem.value_at<Timespec>(tp).sec == host.tv_sec);
        CHECK(g.mem.value_at<Timespec>(tp).nsec == host.tv_nsec);
    }
    CHECK(g.sys(SYS_clock_getres, CLOCK_MONOTONIC, 0) == 0); // tp may be null
    CHECK(g.sys(SYS_clock_getres, 10, tp) == -EINVAL);
    CHECK(g.sys(SYS_clock_getres, 10, 0) == -EINVAL);
    CHECK(g.sys(SYS_clock_getres, CLOCK_MONOTONIC, g.hole()) == -EFAULT);
    g.mem.set_hole(0, 0, FlatUserMemory::Access::unmapped);

    // gettimeofday: microseconds of CLOCK_REALTIME; the timezone is zeros.
    const std::uint64_t tv = g.alloc(16), tz = g.alloc(8);
    g.mem.put_value(tz, std::uint64_t{~0ull});
    const std::int64_t before = host_ns(CLOCK_REALTIME) / 1000;
    REQUIRE(g.sys(SYS_gettimeofday, tv, tz) == 0);
    const std::int64_t after = host_ns(CLOCK_REALTIME) / 1000;
    const auto [sec, usec] = g.mem.value_at<std::array<std::int64_t, 2>>(tv);
    CHECK(usec >= 0);
    CHECK(usec < 1'000'000);
    CHECK(sec * 1'000'000 + usec >= before);
    CHECK(sec * 1'000'000 + usec <= after);
    CHECK(g.mem.value_at<std::uint64_t>(tz) == 0);
    CHECK(g.sys(SYS_gettimeofday, 0, 0) == 0);
    CHECK(g.sys(SYS_gettimeofday, 0, tz) == 0);
    CHECK(g.sys(SYS_gettimeofday, g.hole(), 0) == -EFAULT);
    CHECK(g.sys(SYS_gettimeofday, tv, g.hole()) == -EFAULT);

    // time: seconds, also through tloc.
    const std::uint64_t tloc = g.alloc(8);
    const std::int64_t t0 = ::time(nullptr);
    const std::int64_t t = g.sys(SYS_time, tloc);
    CHECK(t >= t0);
    CHECK(t <= ::time(nullptr));
    CHECK(g.mem.value_at<std::int64_t>(tloc) == t);
    CHECK(g.sys(SYS_time, 0) >= t0);
    CHECK(g.sys(SYS_time, g.hole()) == -EFAULT);
}

TEST_CASE("process calls: nanosleep and clock_nanosleep", "[process-calls]") {
    // A sleeper that sleeps for real and records what it was asked, or that
    // says "the VM is stopping" at once.
    std::vector<std::chrono::nanoseconds> asked;
    bool stopping = false;
    ProcessCalls::Options o = Guest::defaults();
    o.sleeper = [&](std::chrono::nanoseconds d) {
        asked.push_back(d);
        if (stopping) return false;
        std::this_thread::sleep_for(d);
        return true;
    };
    Guest g(o);
    const std::uint64_t rem = g.alloc(16);

    auto start = std::chrono::steady_clock::now();
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{0, 20'000'000}), rem) == 0);
    CHECK(std::chrono::steady_clock::now() - start >= 20ms);
    REQUIRE(!asked.empty());
    CHECK(asked.front() <= 20ms);
    CHECK(asked.front() > 10ms);

    asked.clear();
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{0, 0}), 0) == 0);
    CHECK(asked.empty());
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{0, 1'000'000'000}), 0) == -EINVAL);
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{-1, 0}), 0) == -EINVAL);
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{0, -1}), 0) == -EINVAL);
    CHECK(g.sys(SYS_nanosleep, 0, 0) == -EFAULT);

    // Interrupted: EINTR, and the time left where asked.
    stopping = true;
    g.mem.put_value(rem, Timespec{-1, -1});
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{5, 0}), rem) == -EINTR);
    const Timespec left = g.mem.value_at<Timespec>(rem);
    CHECK(ns_of(left) > 4'900'000'000);
    CHECK(ns_of(left) <= 5'000'000'000);
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{5, 0}), 0) == -EINTR);
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{5, 0}), g.hole()) == -EFAULT);
    // A sleep as long as the clock allows is not an overflow.
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{INT64_MAX, 999'999'999}), 0) == -EINTR);
    CHECK(asked.back() > std::chrono::hours(24 * 365 * 100));
    g.mem.set_hole(0, 0, FlatUserMemory::Access::unmapped);

    // Absolute: nothing is written back; a deadline past returns at once.
    stopping = false;
    constexpr std::uint64_t kAbs = 1; // TIMER_ABSTIME
    g.mem.put_value(rem, Timespec{7, 7});
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_REALTIME, kAbs, g.put(Timespec{1, 0}), rem) == 0);
    const std::int64_t soon = host_ns(CLOCK_MONOTONIC) + 30'000'000;
    start = std::chrono::steady_clock::now();
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, kAbs,
                g.put(Timespec{soon / 1'000'000'000, soon % 1'000'000'000}), rem) == 0);
    CHECK(host_ns(CLOCK_MONOTONIC) >= soon);
    stopping = true;
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_REALTIME, kAbs, g.put(Timespec{INT32_MAX, 0}), rem) ==
          -EINTR);
    CHECK(g.mem.value_at<Timespec>(rem).sec == 7);
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_BOOTTIME, 0, g.put(Timespec{1, 0}), rem) == -EINTR);
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_TAI, 0, g.put(Timespec{1, 0}), 0) == -EINTR);
    stopping = false;
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, g.put(Timespec{0, 1000}), rem) == 0);

    // Clocks without nsleep, and no clock at all.
    for (clockid_t clock : {CLOCK_THREAD_CPUTIME_ID, CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE,
                            CLOCK_MONOTONIC_COARSE, (~3 << 3) | 3 /* an fd's */})
        CHECK(g.sys(SYS_clock_nanosleep, static_cast<std::uint32_t>(clock), 0,
                    g.put(Timespec{0, 1}), 0) == -EOPNOTSUPP);
    CHECK(g.sys(SYS_clock_nanosleep, 10, 0, g.put(Timespec{0, 1}), 0) == -EINVAL);
    CHECK(g.sys(SYS_clock_nanosleep, 12, 0, 0, 0) == -EINVAL);
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, 0, 0) == -EFAULT);
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, g.put(Timespec{0, -5}), 0) == -EINVAL);
    // The alarm clocks: no RTC, EOPNOTSUPP; otherwise CAP_WAKE_ALARM.
    timespec res{};
    const bool rtc = ::clock_getres(CLOCK_REALTIME_ALARM, &res) == 0;
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_REALTIME_ALARM, 0, g.put(Timespec{0, 1}), 0) ==
          (rtc ? -EPERM : -EOPNOTSUPP));
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_BOOTTIME_ALARM, 2, g.put(Timespec{0, 1}), 0) ==
          (rtc ? -EINVAL : -EOPNOTSUPP));

    // CPU-time clocks: the thread's own is refused; the process's needs CPU
    // time that the only thread, asleep, cannot use.
    CHECK(g.sys(SYS_clock_nanosleep, static_cast<std::uint32_t>((~0 << 3) | 4 | 2), 0,
                g.put(Timespec{0, 1}), 0) == -EINVAL);
    CHECK(g.sys(SYS_clock_nanosleep, static_cast<std::uint32_t>((~9 << 3) | 2), 0,
                g.put(Timespec{0, 1}), 0) == -EINVAL);
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, 0, g.put(Timespec{0, 0}), 0) == 0);
    CHECK(g.sys(SYS_clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, kAbs, g.put(Timespec{0, 1}), 0) ==
          0);
    const SyscallResult stuck =
        g.call(SYS_clock_nanosleep, CLOCK_PROCESS_CPUTIME_ID, 0, g.put(Timespec{1, 0}), 0);
    CHECK(stuck.then == Then::killed_by_signal);
    CHECK(stuck.message.find("deadlock") != std::string::npos);
}

TEST_CASE("process calls: affinity, getcpu, sched_yield", "[process-calls]") {
    ProcessCalls::Options o = Guest::defaults();
    o.cpus = 4;
    Guest g(o);
    CHECK(g.sys(SYS_sched_yield) == 0);
    const std::uint64_t mask = g.alloc(32);
    g.mem.put_value(mask, std::array<std::uint64_t, 4>{~0ull, ~0ull, ~0ull, ~0ull});
    CHECK(g.sys(SYS_sched_getaffinity, 0, 32, mask) == 8); // the bytes written
    CHECK(g.mem.value_at<std::uint64_t>(mask) == 0xf);
    CHECK(g.mem.value_at<std::uint64_t>(mask + 8) == ~0ull);
    CHECK(g.sys(SYS_sched_getaffinity, 1, 8, mask) == 8);
    CHECK(g.sys(SYS_sched_getaffinity, 0, 4, mask) == -EINVAL); // not whole longs
    CHECK(g.sys(SYS_sched_getaffinity, 0, 12, mask) == -EINVAL);
    CHECK(g.sys(SYS_sched_getaffinity, 0, 0, mask) == -EINVAL); // fewer bits than CPUs
    CHECK(g.sys(SYS_sched_getaffinity, 5, 8, mask) == -ESRCH);
    CHECK(g.sys(SYS_sched_getaffinity, 0, 8, g.hole()) == -EFAULT);
    g.mem.set_hole(0, 0, FlatUserMemory::Access::unmapped);

    CHECK(g.sys(SYS_sched_setaffinity, 0, 8, g.put(std::uint64_t{0b0110})) == 0);
    CHECK(g.sys(SYS_sched_getaffinity, 0, 8, mask) == 8);
    CHECK(g.mem.value_at<std::uint64_t>(mask) == 0b0110);
    // CPUs that do not exist are dropped; none left is EINVAL.
    CHECK(g.sys(SYS_sched_setaffinity, 0, 8, g.put(std::uint64_t{0xf1})) == 0);
    CHECK(g.sys(SYS_sched_getaffinity, 0, 8, mask) == 8);
    CHECK(g.mem.value_at<std::uint64_t>(mask) == 0x1);
    CHECK(g.sys(SYS_sched_setaffinity, 0, 8, g.put(std::uint64_t{0xf0})) == -EINVAL);
    CHECK(g.sys(SYS_sched_setaffinity, 0, 0, 0) == -EINVAL);
    // A short mask is zero-extended, a long one cut.
    CHECK(g.sys(SYS_sched_setaffinity, 0, 1, g.put(std::uint8_t{0b1000})) == 0);
    CHECK(g.sys(SYS_sched_getaffinity, 0, 8, mask) == 8);
    CHECK(g.mem.value_at<std::uint64_t>(mask) == 0b1000);
    CHECK(g.sys(SYS_sched_setaffinity, 0, 4096, g.put(std::uint64_t{0b11})) == 0);
    CHECK(g.sys(SYS_sched_setaffinity, 9, 8, g.put(std::uint64_t{1})) == -ESRCH);
    CHECK(g.sys(SYS_sched_setaffinity, 0, 8, g.hole()) == -EFAULT);

    // More CPUs than one long holds: the mask is two longs.
    ProcessCalls::Options many = Guest::defaults();
    many.cpus = 100;
    Guest m(many);
    const std::uint64_t wide = m.alloc(32);
    CHECK(m.sys(SYS_sched_getaffinity, 0, 8, wide) == -EINVAL);
    CHECK(m.sys(SYS_sched_getaffinity, 0, 32, wide) == 16);
    CHECK(m.mem.value_at<std::uint64_t>(wide) == ~0ull);
    CHECK(m.mem.value_at<std::uint64_t>(wide + 8) == (1ull << 36) - 1);

    const std::uint64_t cpu = g.alloc(4), node = g.alloc(4);
    g.mem.set_hole(0, 0, FlatUserMemory::Access::unmapped);
    g.mem.put_value(cpu, ~0u);
    g.mem.put_value(node, ~0u);
    CHECK(g.sys(SYS_getcpu, cpu, node, 0) == 0);
    CHECK(g.mem.value_at<std::uint32_t>(cpu) == 0);
    CHECK(g.mem.value_at<std::uint32_t>(node) == 0);
    CHECK(g.sys(SYS_getcpu, 0, 0, 0) == 0);
    CHECK(g.sys(SYS_getcpu, g.hole(), 0, 0) == -EFAULT);
    g.mem.put_value(node, ~0u);
    CHECK(g.sys(SYS_getcpu, g.hole(), node, 0) == -EFAULT);
    CHECK(g.mem.value_at<std::uint32_t>(node) == 0); // written all the same
}

TEST_CASE("process calls: rt_sigaction", "[process-calls]") {
    Guest g;
    const std::uint64_t old = g.alloc(32);
    // Unknown flag bits read back clear (SA_UNSUPPORTED 0x400 among them);
    // SIGKILL and SIGSTOP leave the mask.
    const std::uint64_t flags = 0x04000000 | 0x4 | 0x400 | (1ull << 40);
    CHECK(set_action(g, SIGUSR1, 0x401234, flags, sigbit(SIGKILL) | sigbit(SIGINT)) == 0);
    CHECK(g.sys(SYS_rt_sigaction, SIGUSR1, 0, old, 8) == 0);
    const auto act = g.mem.value_at<ProcessCalls::SignalAction>(old);
    CHECK(act.handler == 0x401234);
    CHECK(act.flags == (0x04000000 | 0x4));
    CHECK(act.restorer == 0x401000);
    CHECK(act.mask == sigbit(SIGINT));
    // The old action comes back when a new one is set.
    CHECK(g.sys(SYS_rt_sigaction, SIGUSR1, g.put(ProcessCalls::SignalAction{1, 0, 0, 0}), old, 8) ==
          0);
    CHECK(g.mem.value_at<ProcessCalls::SignalAction>(old).handler == 0x401234);
    CHECK(g.sys(SYS_rt_sigaction, SIGUSR1, 0, old, 8) == 0);
    CHECK(g.mem.value_at<ProcessCalls::SignalAction>(old).handler == 1);
    CHECK(g.sys(SYS_rt_sigaction, 64, 0, old, 8) == 0);
    CHECK(g.mem.value_at<ProcessCalls::SignalAction>(old).handler == 0);

    CHECK(g.sys(SYS_rt_sigaction, SIGUSR1, 0, old, 4) == -EINVAL);
    CHECK(g.sys(SYS_rt_sigaction, SIGUSR1, 0, old, 0x100000008) == -EINVAL);
    CHECK(g.sys(SYS_rt_sigaction, 0, 0, old, 8) == -EINVAL);
    CHECK(g.sys(SYS_rt_sigaction, 65, 0, old, 8) == -EINVAL);
    CHECK(g.sys(SYS_rt_sigaction, static_cast<std::uint64_t>(-1), 0, old, 8) == -EINVAL);
    CHECK(set_action(g, SIGKILL, 1) == -EINVAL);
    CHECK(set_action(g, SIGSTOP, 0x401000) == -EINVAL);
    CHECK(g.sys(SYS_rt_sigaction, SIGKILL, 0, old, 8) == 0); // reading is fine
    CHECK(g.sys(SYS_rt_sigaction, SIGUSR2, g.hole(), 0, 8) == -EFAULT);
    // The old action cannot be written: EFAULT, with the new one set.
    CHECK(g.sys(SYS_rt_sigaction, SIGUSR2, g.put(ProcessCalls::SignalAction{0x402000, 0, 0, 0}),
                g.hole(FlatUserMemory::Access::read_only), 8) == -EFAULT);
    CHECK(g.sys(SYS_rt_sigaction, SIGUSR2, 0, old, 8) == 0);
    CHECK(g.mem.value_at<ProcessCalls::SignalAction>(old).handler == 0x402000);
}

TEST_CASE("process calls: rt_sigprocmask and rt_sigpending", "[process-calls]") {
    Guest g;
    const std::uint64_t old = g.alloc(8);
    const auto mask = [&] {
        REQUIRE(g.sys(SYS_rt_sigprocmask, SIG_BLOCK, 0, old, 8) == 0);
        return g.mem.value_at<std::uint64_t>(old);
    };
    CHECK(mask() == 0);
    CHECK(block(g, SIG_BLOCK, sigbit(SIGUSR1) | sigbit(SIGKILL) | sigbit(SIGSTOP)) == 0);
    CHECK(mask() == sigbit(SIGUSR1)); // SIGKILL and SIGSTOP are never blocked
    CHECK(block(g, SIG_BLOCK, sigbit(SIGTERM)) == 0);
    CHECK(mask() == (sigbit(SIGUSR1) | sigbit(SIGTERM)));
    CHECK(block(g, SIG_UNBLOCK, sigbit(SIGUSR1)) == 0);
    CHECK(mask() == sigbit(SIGTERM));
    CHECK(g.sys(SYS_rt_sigprocmask, SIG_SETMASK, g.put(sigbit(40)), old, 8) == 0);
    CHECK(g.mem.value_at<std::uint64_t>(old) == sigbit(SIGTERM));
    CHECK(mask() == sigbit(40));
    CHECK(g.sys(SYS_rt_sigprocmask, 3, g.put(std::uint64_t{0}), 0, 8) == -EINVAL);
    CHECK(g.sys(SYS_rt_sigprocmask, 3, 0, 0, 8) == 0); // how is not looked at without a set
    CHECK(g.sys(SYS_rt_sigprocmask, SIG_BLOCK, 0, 0, 16) == -EINVAL);
    CHECK(g.sys(SYS_rt_sigprocmask, SIG_BLOCK, g.hole(), 0, 8) == -EFAULT);
    CHECK(g.sys(SYS_rt_sigprocmask, SIG_BLOCK, 0, g.hole(), 8) == -EFAULT);
    CHECK(mask() == sigbit(40));
    // The mask is per thread.
    g.thread.id = 2;
    CHECK(mask() == 0);
    g.thread.id = 1;

    // A blocked signal sent to itself is pending until unblocked, then
    // takes its default action.
    const std::uint64_t pending = g.alloc(8);
    CHECK(block(g, SIG_SETMASK, sigbit(SIGUSR2)) == 0);
    CHECK(g.sys(SYS_kill, 1, SIGUSR2) == 0);
    CHECK(g.sys(SYS_rt_sigpending, pending, 8) == 0);
    CHECK(g.mem.value_at<std::uint64_t>(pending) == sigbit(SIGUSR2));
    CHECK(g.sys(SYS_rt_sigpending, pending, 9) == -EINVAL);
    CHECK(g.sys(SYS_rt_sigpending, pending, 0) == 0);
    CHECK(g.sys(SYS_rt_sigpending, 0, 0) == 0); // nothing to write, nowhere
    CHECK(g.sys(SYS_rt_sigpending, g.hole(), 8) == -EFAULT);
    const SyscallResult end = g.call(SYS_rt_sigprocmask, SIG_UNBLOCK, g.put(sigbit(SIGUSR2)), 0, 8);
    CHECK(end.then == Then::killed_by_signal);
    CHECK(end.status == SIGUSR2);
    CHECK(end.message.find("SIGUSR2") != std::string::npos);

    // A pending signal whose action becomes SIG_IGN is discarded.
    Guest h;
    CHECK(block(h, SIG_SETMASK, sigbit(SIGTERM)) == 0);
    CHECK(h.sys(SYS_kill, 1, SIGTERM) == 0);
    CHECK(set_action(h, SIGTERM, 1) == 0);
    CHECK(h.sys(SYS_rt_sigpending, pending, 8) == 0);
    CHECK(h.mem.value_at<std::uint64_t>(pending) == 0);
    CHECK(block(h, SIG_SETMASK, 0) == 0);
}

TEST_CASE("process calls: sigaltstack", "[process-calls]") {
    Guest g;
    const std::uint64_t old = g.alloc(24);
    constexpr std::int32_t kOnStack = 1, kDisable = 2;
    constexpr std::uint32_t kAutodisarm = 1u << 31;
    CHECK(g.sys(SYS_sigaltstack, 0, old) == 0);
    CHECK(g.mem.value_at<StackT>(old).flags == kDisable);
    CHECK(g.mem.value_at<StackT>(old).size == 0);

    CHECK(g.sys(SYS_sigaltstack, g.put(StackT{0x50000, 0, 0, 8192}), old) == 0);
    CHECK(g.mem.value_at<StackT>(old).flags == kDisable);
    CHECK(g.sys(SYS_sigaltstack, 0, old) == 0);
    CHECK(g.mem.value_at<StackT>(old).sp == 0x50000);
    CHECK(g.mem.value_at<StackT>(old).size == 8192);
    CHECK(g.mem.value_at<StackT>(old).flags == 0);
    CHECK(g.sys(SYS_sigaltstack, g.put(StackT{0x60000, 0, 0, 2047}), 0) == -ENOMEM);
    CHECK(g.sys(SYS_sigaltstack, g.put(StackT{0x60000, 4, 0, 8192}), 0) == -EINVAL);
    CHECK(g.sys(SYS_sigaltstack, g.put(StackT{0x60000, kOnStack, 0, 2048}), 0) ==
          0); // old name of 0

    // Running on it: reported, and it cannot be changed.
    g.thread.rsp = 0x60000 + 100;
    CHECK(g.sys(SYS_sigaltstack, 0, old) == 0);
    CHECK(g.mem.value_at<StackT>(old).flags == kOnStack);
    CHECK(g.sys(SYS_sigaltstack, g.put(StackT{0, kDisable, 0, 0}), 0) == -EPERM);
    g.thread.rsp = 0x7ffffff00000;
    CHECK(g.sys(SYS_sigaltstack, g.put(StackT{0x1234, kDisable, 0, 99}), 0) == 0);
    CHECK(g.sys(SYS_sigaltstack, 0, old) == 0);
    CHECK(g.mem.value_at<StackT>(old).flags == kDisable);
    CHECK(g.mem.value_at<StackT>(old).sp == 0);

    // SS_AUTODISARM: kept in the flags, and the stack no longer counts as
    // in use.
    CHECK(g.sys(SYS_sigaltstack,
                g.put(StackT{0x60000, static_cast<std::int32_t>(kAutodisarm), 0, 8192}), 0) == 0);
    g.thread.rsp = 0x60000 + 100;
    CHECK(g.sys(SYS_sigaltstack, 0, old) == 0);
    CHECK(static_cast<std::uint32_t>(g.mem.value_at<StackT>(old).flags) == kAutodisarm);
    CHECK(g.sys(SYS_sigaltstack, g.put(StackT{0, kDisable, 0, 0}), 0) == 0);

    CHECK(g.sys(SYS_sigaltstack, g.hole(), 0) == -EFAULT);
    CHECK(g.sys(SYS_sigaltstack, 0, g.hole()) == -EFAULT);
}

TEST_CASE("process calls: umask, sysinfo, getrusage, times", "[process-calls]") {
    ProcessCalls::Options o = Guest::defaults();
    o.umask = 022;
    o.started = std::chrono::steady_clock::now() - 100s;
    o.memory = [] { return MemoryFigures{256 << 20, 200 << 20, 30 << 20}; };
    Guest g(o);
    CHECK(g.sys(SYS_umask, 077) == 022);
    CHECK(g.sys(SYS_umask, 0xffff) == 077);
    CHECK(g.sys(SYS_umask, 0) == 0777);
    CHECK(g.calls->umask() == 0);

    const std::uint64_t info = g.alloc(sizeof(struct sysinfo));
    REQUIRE(g.sys(SYS_sysinfo, info) == 0);
    const auto si = g.mem.value_at<struct sysinfo>(info);
    CHECK(si.uptime >= 100);
    CHECK(si.uptime <= 102);
    CHECK(si.totalram == 256u << 20);
    CHECK(si.freeram == 200u << 20);
    CHECK(si.mem_unit == 1);
    CHECK(si.procs >= 1);
    CHECK(si.totalswap == 0);
    CHECK(g.sys(SYS_sysinfo, g.hole()) == -EFAULT);

    // CPU time: the calling host thread's.
    volatile std::uint64_t spin = 0;
    for (int i = 0; i < 5'000'000; ++i)
        spin = spin + static_cast<std::uint64_t>(i);
    const std::uint64_t usage = g.alloc(sizeof(struct rusage));
    struct rusage before {};
    ::getrusage(RUSAGE_THREAD, &before);
    REQUIRE(g.sys(SYS_getrusage, RUSAGE_SELF, usage) == 0);
    struct rusage after {};
    ::getrusage(RUSAGE_THREAD, &after);
    const auto ru = g.mem.value_at<struct rusage>(usage);
    const auto us = [](const timeval& tv) { return tv.tv_sec * 1'000'000 + tv.tv_usec; };
    CHECK(us(ru.ru_utime) >= us(before.ru_utime));
    CHECK(us(ru.ru_utime) <= us(after.ru_utime));
    CHECK(us(ru.ru_stime) <= us(after.ru_stime));
    CHECK(ru.ru_maxrss == 30 << 10); // KiB
    REQUIRE(g.sys(SYS_getrusage, RUSAGE_THREAD, usage) == 0);
    CHECK(us(g.mem.value_at<struct rusage>(usage).ru_utime) >= us(before.ru_utime));
    g.mem.put_value(usage, std::array<std::uint8_t, sizeof(struct rusage)>{1, 2, 3});
    REQUIRE(g.sys(SYS_getrusage, static_cast<std::uint64_t>(RUSAGE_CHILDREN), usage) == 0);
    CHECK(g.mem.value_at<std::array<std::uint8_t, sizeof(struct rusage)>>(usage) ==
          std::array<std::uint8_t, sizeof(struct rusage)>{});
    CHECK(g.sys(SYS_getrusage, 2, usage) == -EINVAL);
    CHECK(g.sys(SYS_getrusage, RUSAGE_SELF, g.hole()) == -EFAULT);
    g.mem.set_hole(0, 0, FlatUserMemory::Access::unmapped);

    const std::uint64_t buf = g.alloc(sizeof(struct tms));
    const std::int64_t ticks = g.sys(SYS_times, buf);
    CHECK(ticks >= 100 * 100);
    CHECK(ticks <= 102 * 100);
    const auto t = g.mem.value_at<struct tms>(buf);
    CHECK(t.tms_utime >= before.ru_utime.tv_sec * 100 + before.ru_utime.tv_usec / 10'000);
    CHECK(t.tms_cutime == 0);
    CHECK(g.sys(SYS_times, 0) >= ticks);
    CHECK(g.sys(SYS_times, g.hole()) == -EFAULT);
}

TEST_CASE("process calls: prctl", "[process-calls]") {
    ProcessCalls::Options o = Guest::defaults();
    o.command_name = "a-rather-long-program-name";
    Guest g(o);
    constexpr std::uint64_t kSetName = 15, kGetName = 16, kGetDumpable = 3, kSetDumpable = 4,
                            kSetNoNewPrivs = 38, kGetNoNewPrivs = 39;
    const std::uint64_t name = g.alloc(16);
    CHECK(g.sys(SYS_prctl, kGetName, name) == 0);
    CHECK(g.mem.string_at(name, 16) == std::string("a-rather-long-p") + '\0');
    CHECK(g.sys(SYS_prctl, kSetName, g.mem.put_string(g.alloc(32), "worker")) == 0);
    CHECK(g.sys(SYS_prctl, kGetName, name) == 0);
    CHECK(std::string(g.mem.string_at(name, 16).c_str()) == "worker");
    CHECK(g.sys(SYS_prctl, kSetName, g.mem.put_string(g.alloc(32), "0123456789abcdefghij")) == 0);
    CHECK(g.sys(SYS_prctl, kGetName, name) == 0);
    CHECK(g.mem.string_at(name, 16) == std::string("0123456789abcde") + '\0');
    // A name that ends just before an unmapped page is fine; one that runs
    // into it is not.
    const std::uint64_t hole = g.hole();
    CHECK(g.sys(SYS_prctl, kSetName, g.mem.put_string(hole - 4, "abc")) == 0);
    g.mem.put(hole - 4, std::as_bytes(std::span("abcd", 4)));
    CHECK(g.sys(SYS_prctl, kSetName, hole - 4) == -EFAULT);
    CHECK(g.sys(SYS_prctl, kGetName, hole - 4) == -EFAULT);
    CHECK(g.sys(SYS_prctl, kGetName, name) == 0);
    CHECK(std::string(g.mem.string_at(name, 16).c_str()) == "abc");

    CHECK(g.sys(SYS_prctl, kGetDumpable) == 1);
    CHECK(g.sys(SYS_prctl, kSetDumpable, 0) == 0);
    CHECK(g.sys(SYS_prctl, kGetDumpable) == 0);
    CHECK(g.sys(SYS_prctl, kSetDumpable, 2) == -EINVAL);
    CHECK(g.sys(SYS_prctl, kGetNoNewPrivs, 0, 0, 0, 0) == 0);
    CHECK(g.sys(SYS_prctl, kSetNoNewPrivs, 1, 0, 0, 1) == -EINVAL);
    CHECK(g.sys(SYS_prctl, kSetNoNewPrivs, 2, 0, 0, 0) == -EINVAL);
    CHECK(g.sys(SYS_prctl, kSetNoNewPrivs, 1, 0, 0, 0) == 0);
    CHECK(g.sys(SYS_prctl, kGetNoNewPrivs, 0, 0, 0, 0) == 1);
    CHECK(g.sys(SYS_prctl, kGetNoNewPrivs, 1, 0, 0, 0) == -EINVAL);
    CHECK(g.sys(SYS_prctl, 1 /* PR_SET_PDEATHSIG */, SIGTERM) == -EINVAL);
    CHECK(g.sys(SYS_prctl, 0x53564d41 /* PR_SET_VMA */, 0) == -EINVAL);
}

TEST_CASE("process calls: signals sent to itself", "[process-calls]") {
    Guest g;
    CHECK(g.sys(SYS_kill, 1, 0) == 0);
    CHECK(g.sys(SYS_kill, 0, 0) == 0);
    CHECK(g.sys(SYS_kill, static_cast<std::uint64_t>(-1), 0) == -ESRCH); // nobody else
    CHECK(g.sys(SYS_kill, 2, 0) == -ESRCH);
    CHECK(g.sys(SYS_kill, static_cast<std::uint64_t>(-2), 0) == -ESRCH);
    CHECK(g.sys(SYS_kill, 0x80000000, 0) == -ESRCH); // INT_MIN
    CHECK(g.sys(SYS_kill, 1, 65) == -EINVAL);
    CHECK(g.sys(SYS_kill, 2, 65) == -ESRCH); // the target is looked up first
    CHECK(g.sys(SYS_kill, 1, static_cast<std::uint64_t>(-1)) == -EINVAL);
    // Ignored by default, or stopping an orphaned process group: nothing.
    for (int sig : {SIGCHLD, SIGURG, SIGWINCH, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU})
        CHECK(g.sys(SYS_kill, 1, static_cast<std::uint64_t>(sig)) == 0);
    CHECK(set_action(g, SIGTERM, 1) == 0);
    CHECK(g.sys(SYS_kill, 1, SIGTERM) == 0);

    const auto ends = [](const SyscallResult& r, int sig) {
        CHECK(r.then == Then::killed_by_signal);
        CHECK(r.status == sig);
        CHECK(!r.message.empty());
        CHECK(r.message.find('\n') == std::string::npos);
    };
    {
        Guest h;
        ends(h.call(SYS_kill, 1, SIGTERM), SIGTERM);
    }
    {
        Guest h;
        ends(h.call(SYS_kill, 0, 40), 40); // a real-time signal, to the process group
    }
    {
        Guest h;
        ends(h.call(SYS_kill, 1, SIGKILL), SIGKILL);
    }
    {
        Guest h;
        const SyscallResult r = h.call(SYS_kill, 1, SIGSTOP);
        ends(r, SIGSTOP);
        CHECK(r.message.find("stopped") != std::string::npos);
    }
    {
        // A handler is left for the runner, which writes its frame.
        Guest h;
        CHECK(set_action(h, SIGUSR1, 0x401234) == 0);
        CHECK(h.sys(SYS_kill, 1, SIGUSR1) == 0);
        CHECK(h.calls->signals_pending());
        auto next = h.calls->next_signal(1);
        REQUIRE(next);
        REQUIRE(next->handler);
        CHECK(next->handler->sig == SIGUSR1);
        CHECK(next->handler->handler == 0x401234);
        CHECK(next->handler->info.code == 0); // SI_USER, from pid 1
        CHECK(next->handler->info.pid == 1);
        CHECK(!h.calls->signals_pending());
    }
    {
        // tgkill and tkill aim at a thread.
        Guest h;
        CHECK(h.sys(SYS_tgkill, 1, 1, 0) == 0);
        CHECK(h.sys(SYS_tgkill, 0, 1, 0) == -EINVAL);
        CHECK(h.sys(SYS_tgkill, 1, 0, 0) == -EINVAL);
        CHECK(h.sys(SYS_tgkill, 1, static_cast<std::uint64_t>(-3), 0) == -EINVAL);
        CHECK(h.sys(SYS_tgkill, 1, 2, 0) == -ESRCH);
        CHECK(h.sys(SYS_tgkill, 2, 1, 0) == -ESRCH);
        CHECK(h.sys(SYS_tgkill, 1, 1, 65) == -EINVAL);
        CHECK(h.sys(SYS_tkill, 1, 0) == 0);
        CHECK(h.sys(SYS_tkill, 0, 0) == -EINVAL);
        CHECK(h.sys(SYS_tkill, 2, 0) == -ESRCH);
        CHECK(h.sys(SYS_tkill, 1, 70) == -EINVAL);
        ends(h.call(SYS_tgkill, 1, 1, SIGABRT), SIGABRT);
    }
    {
        Guest h;
        ends(h.call(SYS_tkill, 1, SIGSEGV), SIGSEGV);
    }
}

TEST_CASE("process calls: what delivering a signal to a handler changes", "[process-calls]") {
    constexpr std::uint64_t kNodefer = 0x40000000, kResethand = 0x80000000;
    Guest g;
    auto mask = [&] {
        const std::uint64_t old = g.alloc(8);
        REQUIRE(g.sys(SYS_rt_sigprocmask, SIG_BLOCK, 0, old, 8) == 0);
        return g.mem.value_at<std::uint64_t>(old);
    };
    // The action's mask and the signal itself are blocked while it runs; the
    // frame keeps the mask to restore.
    CHECK(set_action(g, SIGUSR1, 0x401000, 0, sigbit(SIGUSR2)) == 0);
    CHECK(g.sys(SYS_tgkill, 1, 1, SIGUSR1) == 0);
    auto next = g.calls->next_signal(1);
    REQUIRE((next && next->handler));
    CHECK(next->handler->saved_mask == 0);
    CHECK(next->handler->info.code == -6); // SI_TKILL
    CHECK(mask() == (sigbit(SIGUSR1) | sigbit(SIGUSR2)));
    // Sent again while it runs: pending until rt_sigreturn restores the mask.
    CHECK(g.sys(SYS_kill, 1, SIGUSR1) == 0);
    CHECK(!g.calls->next_signal(1));
    const std::uint64_t pending = g.alloc(8);
    CHECK(g.sys(SYS_rt_sigpending, pending, 8) == 0);
    CHECK(g.mem.value_at<std::uint64_t>(pending) == sigbit(SIGUSR1));
    g.calls->restore_after_handler(1, next->handler->saved_mask, {}, 0x7000);
    CHECK(mask() == 0);
    next = g.calls->next_signal(1);
    REQUIRE((next && next->handler));
    CHECK(next->handler->sig == SIGUSR1);
    g.calls->restore_after_handler(1, 0, {}, 0x7000);

    // SA_NODEFER leaves the signal unblocked; SA_RESETHAND makes the next
    // one take the default action (the end).
    CHECK(set_action(g, SIGUSR2, 0x402000, kNodefer | kResethand) == 0);
    CHECK(g.sys(SYS_kill, 1, SIGUSR2) == 0);
    next = g.calls->next_signal(1);
    REQUIRE((next && next->handler));
    CHECK(mask() == 0);
    const SyscallResult r = g.call(SYS_kill, 1, SIGUSR2);
    CHECK(r.then == Then::killed_by_signal);
    CHECK(r.status == SIGUSR2);

    // Blocked, then unblocked: due on the way back from rt_sigprocmask.
    Guest h;
    CHECK(set_action(h, SIGTERM, 0x403000) == 0);
    CHECK(block(h, SIG_BLOCK, sigbit(SIGTERM)) == 0);
    CHECK(h.sys(SYS_kill, 1, SIGTERM) == 0);
    CHECK(!h.calls->next_signal(1));
    CHECK(block(h, SIG_UNBLOCK, sigbit(SIGTERM)) == 0);
    next = h.calls->next_signal(1);
    REQUIRE((next && next->handler));
    CHECK(next->handler->sig == SIGTERM);

    // Ignored while pending: discarded.
    CHECK(block(h, SIG_BLOCK, sigbit(SIGINT)) == 0);
    CHECK(h.sys(SYS_kill, 1, SIGINT) == 0);
    CHECK(set_action(h, SIGINT, 1) == 0);
    CHECK(block(h, SIG_UNBLOCK, sigbit(SIGINT)) == 0);
    CHECK(!h.calls->signals_pending());
}

TEST_CASE("process calls: a fault goes to its handler unless blocked or ignored",
          "[process-calls]") {
    minivmm::linux_abi::SignalInfo info;
    info.signo = SIGSEGV;
    info.code = 1; // SEGV_MAPERR
    info.fault = true;
    info.addr = 0x1234;
    {
        Guest g;
        CHECK(set_action(g, SIGSEGV, 0x401000) == 0);
        auto out = g.calls->fault_signal(1, info, "segv");
        REQUIRE(out.handler);
        CHECK(out.handler->info.addr == 0x1234);
        CHECK(!out.end);
        // Its handler faulting again (SIGSEGV now blocked): the end.
        out = g.calls->fault_signal(1, info, "segv again");
        REQUIRE(out.end);
        CHECK(out.end->status == SIGSEGV);
        CHECK(out.end->message == "segv again");
    }
    {
        Guest g;
        CHECK(set_action(g, SIGSEGV, 1) == 0); // SIG_IGN does not hold a fault
        auto out = g.calls->fault_signal(1, info, "segv");
        REQUIRE(out.end);
        CHECK(out.end->status == SIGSEGV);
    }
    {
        Guest g;
        auto out = g.calls->fault_signal(1, info, "no handler");
        REQUIRE(out.end);
        CHECK(out.end->message == "no handler");
    }
}

TEST_CASE("process calls: alarm, setitimer and getitimer", "[process-calls]") {
    struct Itimerval {
        std::int64_t interval_sec, interval_usec, value_sec, value_usec;
    };
    int changes = 0;
    std::vector<int> interrupted;
    ProcessCalls::Options o = Guest::defaults();
    o.timers_changed = [&] { ++changes; };
    o.interrupt_thread = [&](int tid) { interrupted.push_back(tid); };
    Guest g(o);
    CHECK(g.sys(SYS_alarm, 5) == 0);
    CHECK(changes == 1);
    REQUIRE(g.calls->next_timer_ns());
    CHECK(*g.calls->next_timer_ns() > host_ns(CLOCK_MONOTONIC) + 4'000'000'000ll);
    CHECK(g.sys(SYS_alarm, 0) == 5); // what was left, rounded
    CHECK(!g.calls->next_timer_ns());
    // setitimer: a value and an interval; the old one read back.
    const std::uint64_t old = g.alloc(sizeof(Itimerval));
    CHECK(g.sys(SYS_setitimer, ITIMER_REAL, g.put(Itimerval{0, 250000, 2, 0}), old) == 0);
    CHECK(g.mem.value_at<Itimerval>(old).value_sec == 0);
    CHECK(g.sys(SYS_getitimer, ITIMER_REAL, old) == 0);
    const Itimerval now = g.mem.value_at<Itimerval>(old);
    CHECK(now.interval_usec == 250000);
    CHECK(now.value_sec * 1'000'000 + now.value_usec > 1'500'000);
    CHECK(now.value_sec * 1'000'000 + now.value_usec <= 2'000'000);
    CHECK(g.sys(SYS_setitimer, ITIMER_REAL, g.put(Itimerval{0, 0, 0, 1'000'000}), 0) == -EINVAL);
    CHECK(g.sys(SYS_setitimer, ITIMER_REAL, g.put(Itimerval{0, -1, 1, 0}), 0) == -EINVAL);
    CHECK(g.sys(SYS_setitimer, ITIMER_PROF, g.put(Itimerval{0, 0, 1, 0}), 0) == -EINVAL);
    CHECK(g.sys(SYS_setitimer, 7, g.put(Itimerval{0, 0, 1, 0}), 0) == -EINVAL);
    CHECK(g.sys(SYS_setitimer, ITIMER_REAL, g.hole(), 0) == -EFAULT);
    CHECK(g.sys(SYS_getitimer, ITIMER_REAL, g.hole()) == -EFAULT);
    // Not due yet: nothing. Due: SIGALRM to the process (the main thread is
    // interrupted), re-armed by the interval.
    const std::int64_t at = *g.calls->next_timer_ns();
    g.calls->fire_timers(at - 1);
    CHECK(!g.calls->signals_pending());
    g.calls->fire_timers(at + 600'000'000); // two periods late: one signal
    CHECK(g.calls->signals_pending());
    CHECK(interrupted == std::vector<int>{1});
    REQUIRE(g.calls->next_timer_ns());
    CHECK(*g.calls->next_timer_ns() == at + 750'000'000);
    auto next = g.calls->next_signal(1);
    REQUIRE((next && next->end)); // SIGALRM's default: the end
    CHECK(next->end->status == SIGALRM);
    CHECK(next->end->message.find("timer") != std::string::npos);
}

TEST_CASE("process calls: pause, rt_sigsuspend and nanosleep end when a signal is due",
          "[process-calls]") {
    ProcessCalls::Options o = Guest::defaults(); // no sleeper: the calls' own waits
    Guest g(o);
    CHECK(set_action(g, SIGALRM, 0x401000) == 0);
    auto fire_soon = [&] {
        return std::thread([&] {
            std::this_thread::sleep_for(50ms);
            g.calls->fire_timers(std::numeric_limits<std::int64_t>::max());
        });
    };
    CHECK(g.sys(SYS_alarm, 1000) == 0);
    auto t0 = std::chrono::steady_clock::now();
    std::thread t = fire_soon();
    CHECK(g.sys(SYS_pause) == -EINTR);
    t.join();
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    auto next = g.calls->next_signal(1);
    REQUIRE((next && next->handler));
    CHECK(next->handler->info.code == 0x80); // SI_KERNEL
    g.calls->restore_after_handler(1, next->handler->saved_mask, {}, 0x7000);

    // rt_sigsuspend: the mask while it waits, the old one saved for the frame.
    CHECK(block(g, SIG_BLOCK, sigbit(SIGALRM) | sigbit(SIGUSR1)) == 0);
    CHECK(g.sys(SYS_alarm, 1000) == 0);
    t = fire_soon();
    CHECK(g.sys(SYS_rt_sigsuspend, g.put(sigbit(SIGUSR1)), 8) == -EINTR);
    t.join();
    next = g.calls->next_signal(1);
    REQUIRE((next && next->handler));
    CHECK(next->handler->saved_mask == (sigbit(SIGALRM) | sigbit(SIGUSR1)));
    CHECK(g.sys(SYS_rt_sigsuspend, g.put(std::uint64_t{0}), 4) == -EINVAL);
    CHECK(g.sys(SYS_rt_sigsuspend, g.hole(), 8) == -EFAULT);
    g.calls->restore_after_handler(1, 0, {}, 0x7000);

    // nanosleep: EINTR with the time left.
    CHECK(g.sys(SYS_alarm, 1000) == 0);
    t = fire_soon();
    const std::uint64_t rem = g.alloc(sizeof(Timespec));
    CHECK(g.sys(SYS_nanosleep, g.put(Timespec{30, 0}), rem) == -EINTR);
    t.join();
    CHECK(g.mem.value_at<Timespec>(rem).sec >= 25);
}

TEST_CASE("process calls: exit and exit_group", "[process-calls]") {
    Guest g;
    SyscallResult r = g.call(SYS_exit, 3);
    CHECK(r.then == Then::exit_thread);
    CHECK(r.status == 3);
    r = g.call(SYS_exit_group, 256 + 7);
    CHECK(r.then == Then::exit_process);
    CHECK(r.status == 7);
    r = g.call(SYS_exit_group, static_cast<std::uint64_t>(-1));
    CHECK(r.status == 255);
}

TEST_CASE("process calls: futex, single-threaded", "[process-calls]") {
    bool stopping = false;
    ProcessCalls::Options o = Guest::defaults();
    o.sleeper = [&](std::chrono::nanoseconds d) {
        if (stopping) return false;
        std::this_thread::sleep_for(d);
        return true;
    };
    Guest g(o);
    constexpr std::uint64_t kWait = 0, kWake = 1, kRequeue = 3, kCmpRequeue = 4, kWakeOp = 5,
                            kLockPi = 6, kWaitBitset = 9, kWakeBitset = 10, kPrivate = 128,
                            kRealtime = 256;
    const std::uint64_t word = g.put(std::uint32_t{5});
    const std::uint64_t word2 = g.put(std::uint32_t{10});

    CHECK(g.sys(SYS_futex, word, kWake | kPrivate, 1) == 0);
    CHECK(g.sys(SYS_futex, word, kWake, INT32_MAX) == 0);
    CHECK(g.sys(SYS_futex, word + 2, kWake | kPrivate, 1) == -EINVAL);
    // A private futex is only a number; a shared one needs its page.
    const std::uint64_t hole = g.hole();
    CHECK(g.sys(SYS_futex, hole, kWake | kPrivate, 1) == 0);
    CHECK(g.sys(SYS_futex, hole, kWake, 1) == -EFAULT);
    CHECK(g.sys(SYS_futex, kTaskSizeMax, kWake | kPrivate, 1) == -EFAULT);
    CHECK(g.sys(SYS_futex, word, kWakeBitset | kPrivate, 1, 0, 0, 0) == -EINVAL);
    CHECK(g.sys(SYS_futex, word, kWakeBitset | kPrivate, 1, 0, 0, 1) == 0);

    CHECK(g.sys(SYS_futex, word, kWait | kPrivate, 4) == -EAGAIN);
    CHECK(g.sys(SYS_futex, hole, kWait | kPrivate, 4) == -EFAULT);
    const SyscallResult stuck = g.call(SYS_futex, word, kWait | kPrivate, 5);
    CHECK(stuck.then == Then::killed_by_signal);
    CHECK(stuck.message.find("deadlock") != std::string::npos);
    CHECK(stuck.message.find("futex") != std::string::npos);

    // With a timeout: relative for FUTEX_WAIT, absolute for WAIT_BITSET.
    auto start = std::chrono::steady_clock::now();
    CHECK(g.sys(SYS_futex, word, kWait | kPrivate, 5, g.put(Timespec{0, 20'000'000})) ==
          -ETIMEDOUT);
    CHECK(std::chrono::steady_clock::now() - start >= 20ms);
    CHECK(g.sys(SYS_futex, word, kWaitBitset | kPrivate, 5, g.put(Timespec{0, 0}), 0, ~0u) ==
          -ETIMEDOUT);
    const std::int64_t soon = host_ns(CLOCK_REALTIME) + 20'000'000;
    start = std::chrono::steady_clock::now();
    CHECK(g.sys(SYS_futex, word, kWaitBitset | kPrivate | kRealtime, 5,
                g.put(Timespec{soon / 1'000'000'000, soon % 1'000'000'000}), 0, 1) == -ETIMEDOUT);
    CHECK(std::chrono::steady_clock::now() - start >= 10ms);
    CHECK(g.sys(SYS_futex, word, kWaitBitset | kPrivate, 5, 0, 0, 0) == -EINVAL);
    CHECK(g.sys(SYS_futex, word, kWait | kPrivate | kRealtime, 5, g.put(Timespec{0, 1})) ==
          -ENOSYS);
    CHECK(g.sys(SYS_futex, word, kWait | kPrivate, 5, g.put(Timespec{0, 1'000'000'000})) ==
          -EINVAL);
    CHECK(g.sys(SYS_futex, word, kWait | kPrivate, 5, hole) == -EFAULT);
    stopping = true;
    CHECK(g.sys(SYS_futex, word, kWait | kPrivate, 5, g.put(Timespec{10, 0})) == -EINTR);
    stopping = false;

    // Requeue: nobody to move; the compare still compares.
    CHECK(g.sys(SYS_futex, word, kRequeue | kPrivate, 1, 1, word2) == 0);
    CHECK(g.sys(SYS_futex, word, kCmpRequeue | kPrivate, 1, 1, word2, 5) == 0);
    CHECK(g.sys(SYS_futex, word, kCmpRequeue | kPrivate, 1, 1, word2, 6) == -EAGAIN);
    CHECK(g.sys(SYS_futex, word, kCmpRequeue | kPrivate, static_cast<std::uint32_t>(-1), 1, word2,
                5) == -EINVAL);
    CHECK(g.sys(SYS_futex, word, kRequeue | kPrivate, 1, 1, word2 + 1) == -EINVAL);

    // Wake-op: the operation on the second word happens.
    const auto encode = [](unsigned op, unsigned cmp, unsigned oparg, unsigned cmparg) {
        return static_cast<std::uint64_t>((op << 28) | (cmp << 24) | ((oparg & 0xfff) << 12) |
                                          (cmparg & 0xfff));
    };
    CHECK(g.sys(SYS_futex, word, kWakeOp | kPrivate, 1, 1, word2, encode(1, 0, 3, 10)) == 0);
    CHECK(g.mem.value_at<std::uint32_t>(word2) == 13); // ADD 3
    CHECK(g.sys(SYS_futex, word, kWakeOp | kPrivate, 1, 1, word2, encode(0, 0, 0xfff, 0)) == 0);
    CHECK(g.mem.value_at<std::uint32_t>(word2) == 0xffffffff); // SET -1 (12 bits, signed)
    CHECK(g.sys(SYS_futex, word, kWakeOp | kPrivate, 1, 1, word2, encode(8 | 0, 0, 4, 0)) == 0);
    CHECK(g.mem.value_at<std::uint32_t>(word2) == 16); // SET 1 << 4
    CHECK(g.sys(SYS_futex, word, kWakeOp | kPrivate, 1, 1, word2, encode(3, 0, 16, 0)) == 0);
    CHECK(g.mem.value_at<std::uint32_t>(word2) == 0); // ANDN
    CHECK(g.sys(SYS_futex, word, kWakeOp | kPrivate, 1, 1, word2, encode(5, 0, 1, 0)) == -ENOSYS);
    CHECK(g.mem.value_at<std::uint32_t>(word2) == 0); // untouched
    CHECK(g.sys(SYS_futex, word, kWakeOp | kPrivate, 1, 1, word2, encode(4, 9, 1, 0)) == -ENOSYS);
    CHECK(g.mem.value_at<std::uint32_t>(word2) == 1); // XOR done, then the comparison refused
    const std::uint64_t ro = g.hole(FlatUserMemory::Access::read_only);
    CHECK(g.sys(SYS_futex, word, kWakeOp | kPrivate, 1, 1, ro, encode(0, 0, 1, 0)) == -EFAULT);

    CHECK(g.sys(SYS_futex, word, kLockPi | kPrivate, 0) == -ENOSYS);
    CHECK(g.sys(SYS_futex, word, 14, 0) == -ENOSYS);
}

TEST_CASE("process calls: numbers they do not serve", "[process-calls]") {
    Guest g;
    FakeThread t;
    for (long nr : {long{SYS_read}, long{SYS_mmap}, long{SYS_brk}, long{SYS_getcwd}, long{SYS_fork},
                    long{SYS_vfork}, 444L, 100000L})
        CHECK_FALSE(g.calls->call({static_cast<std::uint64_t>(nr), {}}, t).has_value());
}

namespace {

// The dispatcher over real file calls (in a temporary directory), process
// calls and a recording memory hook.
struct Dispatch {
    fs::path dir;
    FlatUserMemory mem{kBase, kMemory};
    FileTable files;
    std::unique_ptr<FileSandbox> sandbox;
    std::unique_ptr<FileSystemCalls> file_calls;
    std::unique_ptr<ProcessCalls> process;
    std::vector<std::uint64_t> memory_calls;
    std::vector<std::string> warnings;
    std::unique_ptr<SyscallDispatcher> dispatcher;
    FakeThread thread;
    std::uint64_t next = kBase;

    explicit Dispatch(bool default_sink = false) {
        std::string templ = (fs::temp_directory_path() / "minivmm-calls-XXXXXX").string();
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        dir = templ;
        sandbox = std::make_unique<FileSandbox>(dir.string());
        file_calls = std::make_unique<FileSystemCalls>(files, *sandbox, mem);
        process = std::make_unique<ProcessCalls>(Guest::defaults(), mem, files);
        auto memory = [this](const SyscallArgs& args) -> std::optional<std::int64_t> {
            if (args.nr != SYS_brk) return std::nullopt;
            memory_calls.push_back(args.a[0]);
            return 0x600000;
        };
        SyscallDispatcher::WarningSink sink;
        if (!default_sink) sink = [this](const std::string& line) { warnings.push_back(line); };
        dispatcher = std::make_unique<SyscallDispatcher>(*file_calls, *process, memory, sink);
    }
    ~Dispatch() {
        std::error_code ignored;
        fs::remove_all(dir, ignored);
    }
    SyscallResult call(std::uint64_t nr, std::uint64_t a0 = 0, std::uint64_t a1 = 0,
                       std::uint64_t a2 = 0, std::uint64_t a3 = 0) {
        SyscallArgs args;
        args.nr = nr;
        args.a[0] = a0;
        args.a[1] = a1;
        args.a[2] = a2;
        args.a[3] = a3;
        return dispatcher->dispatch(args, thread);
    }
    std::uint64_t str(const std::string& s) {
        const std::uint64_t va = next;
        next += (s.size() + 16) / 16 * 16;
        return mem.put_string(va, s);
    }
};

std::uint64_t count_of(const SyscallDispatcher& d, std::uint64_t nr) {
    for (const auto& c : d.counts())
        if (c.nr == nr) return c.count;
    return 0;
}

} // namespace

TEST_CASE("dispatcher: routes each number to whoever serves it", "[process-calls]") {
    Dispatch d;
    CHECK(d.call(SYS_getpid).value == 1);
    const std::uint64_t buf = d.str(std::string(300, 'x'));
    const SyscallResult cwd = d.call(SYS_getcwd, buf, 300);
    CHECK(cwd.value == static_cast<std::int64_t>(fs::canonical(d.dir).string().size() + 1));
    CHECK(d.call(SYS_brk, 0x1234).value == 0x600000);
    REQUIRE(d.memory_calls.size() == 1);
    CHECK(d.memory_calls[0] == 0x1234);
    const SyscallResult end = d.call(SYS_exit_group, 9);
    CHECK(end.then == Then::exit_process);
    CHECK(end.status == 9);
    // Only eax is the number.
    CHECK(d.call(0xdead000000000000 | SYS_getpid).value == 1);
    CHECK(d.call(0xffffffff00000000 | SYS_gettid).value == 1);
    CHECK(d.warnings.empty());
    CHECK(count_of(*d.dispatcher, SYS_getpid) == 2);
    CHECK(count_of(*d.dispatcher, SYS_brk) == 1);
    CHECK(count_of(*d.dispatcher, SYS_read) == 0);
}

TEST_CASE("dispatcher: an unsupported number is ENOSYS, with one warning per number",
          "[process-calls]") {
    Dispatch d;
    for (int i = 0; i < 3; ++i)
        CHECK(d.call(444).value == -ENOSYS);
    REQUIRE(d.warnings.size() == 1);
    CHECK(d.warnings[0] == "guest program called unsupported system call 444 "
                           "(landlock_create_ruleset); it gets ENOSYS");
    CHECK(d.call(SYS_mmap, 0, 4096).value == -ENOSYS); // the hook does not serve it
    CHECK(d.call(400).value == -ENOSYS);               // a number without a name
    CHECK(d.call(100000).value == -ENOSYS);
    CHECK(d.call(100000).value == -ENOSYS);
    CHECK(d.call(0xffffffff).value == -ENOSYS);
    REQUIRE(d.warnings.size() == 5);
    CHECK(d.warnings[1].find("system call 9 (mmap)") != std::string::npos);
    CHECK(d.warnings[2] == "guest program called unsupported system call 400; it gets ENOSYS");
    CHECK(d.warnings[3].find("system call 100000;") != std::string::npos);
    CHECK(d.warnings[4].find("system call 4294967295;") != std::string::npos);
    CHECK(count_of(*d.dispatcher, 444) == 3);
    CHECK(count_of(*d.dispatcher, SyscallDispatcher::kOtherNumbers) == 3);

    // Numbers beyond the table: a bounded number of lines, then one more.
    for (std::uint64_t nr = 200000; nr < 200600; ++nr)
        CHECK(d.call(nr).value == -ENOSYS);
    CHECK(d.warnings.size() < 300);
    CHECK(d.warnings.back().find("further ones get ENOSYS without a warning") != std::string::npos);
}

TEST_CASE("dispatcher: warnings go to the library's logger by default", "[process-calls]") {
    auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
    // The ring alone for a moment, so that the test's output stays clean.
    auto& sinks = minivmm::logger().sinks();
    const auto saved = sinks;
    sinks = {ring};
    {
        Dispatch d(true);
        CHECK(d.call(445).value == -ENOSYS);
        CHECK(d.call(445).value == -ENOSYS);
    }
    sinks = saved;
    const auto lines = ring->last_formatted();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("unsupported system call 445 (landlock_add_rule)") != std::string::npos);
    CHECK(lines[0].find("[warning]") != std::string::npos);
}

TEST_CASE("dispatcher: the program's umask applies to the files it creates", "[process-calls]") {
    Dispatch d;
    CHECK(d.call(SYS_umask, 077).value == ProcessCalls::Options::host_umask());
    CHECK(d.process->umask() == 077);
    const std::int64_t fd = d.call(SYS_open, d.str("made"), O_CREAT | O_WRONLY, 0666).value;
    REQUIRE(fd >= 0);
    CHECK((fs::status(d.dir / "made").permissions() & fs::perms::all) ==
          (fs::perms::owner_read | fs::perms::owner_write));
    CHECK(d.call(SYS_mkdir, d.str("sub"), 0777).value == 0);
    CHECK((fs::status(d.dir / "sub").permissions() & fs::perms::all) == fs::perms::owner_all);
    CHECK(d.call(SYS_umask, 0).value == 077);
    CHECK(d.call(SYS_openat, static_cast<std::uint32_t>(AT_FDCWD), d.str("sub/f"),
                 O_CREAT | O_WRONLY, 0640)
              .value >= 0);
    struct stat st {};
    REQUIRE(::stat((d.dir / "sub/f").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == (0640 & ~ProcessCalls::Options::host_umask()));
}

TEST_CASE("dispatcher: a lowered RLIMIT_NOFILE reaches the file calls", "[process-calls]") {
    Dispatch d;
    const std::int64_t fd = d.call(SYS_open, d.str("f"), O_CREAT | O_RDWR, 0600).value;
    REQUIRE(fd == 0); // no stdio in this table
    CHECK(d.call(SYS_dup2, fd, 20).value == 20);
    d.mem.put_value(d.next, Rlimit{10, 1024});
    CHECK(d.call(SYS_setrlimit, RLIMIT_NOFILE, d.next).value == 0);
    // Numbers at or above the soft limit: dup2 EBADF, F_DUPFD EINVAL; the
    // open one above it stays open.
    CHECK(d.call(SYS_dup2, fd, 10).value == -EBADF);
    CHECK(d.call(SYS_fcntl, fd, F_DUPFD, 10).value == -EINVAL);
    CHECK(d.call(SYS_fcntl, fd, F_DUPFD, 5).value == 5);
    CHECK(d.call(SYS_close, 20).value == 0);
    for (int i = 0; i < 8; ++i)
        CHECK(d.call(SYS_dup, fd).value >= 0);
    CHECK(d.call(SYS_dup, fd).value == -EMFILE);
    CHECK(d.call(SYS_open, d.str("f"), O_RDONLY).value == -EMFILE);
    d.mem.put_value(d.next, Rlimit{1024, 1024});
    CHECK(d.call(SYS_setrlimit, RLIMIT_NOFILE, d.next).value == 0);
    CHECK(d.call(SYS_open, d.str("f"), O_RDONLY).value == 10);
}

TEST_CASE("dispatcher: the names of the x86-64 system calls", "[process-calls]") {
    CHECK(syscall_name(0) == "read");
    CHECK(syscall_name(39) == "getpid");
    CHECK(syscall_name(231) == "exit_group");
    CHECK(syscall_name(334) == "rseq");
    CHECK(syscall_name(335) == "uretprobe");
    CHECK(syscall_name(336).empty());
    CHECK(syscall_name(423).empty());
    CHECK(syscall_name(424) == "pidfd_send_signal");
    CHECK(syscall_name(435) == "clone3");
    CHECK(syscall_name(462) == "mseal");
    CHECK(syscall_name(469) == "file_setattr");
    CHECK(syscall_name(470).empty());
    CHECK(syscall_name(~0ull).empty());
    // Every name libseccomp knows for x86-64 is the table's.
    int compared = 0;
    for (int nr = 0; nr <= static_cast<int>(minivmm::linux_abi::kLastSyscallNumber); ++nr) {
        char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
        if (!name) continue;
        INFO("system call " << nr);
        CHECK(syscall_name(static_cast<std::uint64_t>(nr)) == name);
        ::free(name);
        ++compared;
    }
    CHECK(compared > 300);
}

// ---- threads ----

namespace {

// pthreads' clone flags (glibc's create_thread, musl's pthread_create).
constexpr std::uint64_t kPthreadFlags = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000 |
                                        0x80000 | 0x100000 | 0x200000; // ... | SETTLS | *TID

ProcessCalls::Options threaded(int max_threads) {
    ProcessCalls::Options o = Guest::defaults();
    o.max_threads = max_threads;
    return o;
}

} // namespace

TEST_CASE("threads: clone with pthreads' flags starts a thread", "[process-calls][threads]") {
    Guest g(threaded(3));
    const std::uint64_t parent_tid = g.alloc(4), child_tid = g.alloc(4);
    const std::int64_t tid =
        g.sys(SYS_clone, kPthreadFlags, 0x7000'0000'0000, parent_tid, child_tid, 0x1234000);
    CHECK(tid == 2); // the next after pid 1
    REQUIRE(g.thread.started.size() == 1);
    const NewThread& t = g.thread.started[0];
    CHECK(t.tid == 2);
    CHECK(t.stack == 0x7000'0000'0000);
    CHECK(t.set_tls);
    CHECK(t.tls == 0x1234000);
    CHECK(g.mem.value_at<std::uint32_t>(parent_tid) == 2); // CLONE_PARENT_SETTID
    CHECK(g.calls->live_threads() == 2);
    // The new thread has its own state: its gettid, its robust list.
    FakeThread child;
    child.id = 2;
    CHECK(g.calls->call({SYS_gettid, {}}, child)->value == 2);
    CHECK(g.calls->call({SYS_getpid, {}}, child)->value == 1);
    // clone3 with a stack and its size: rsp is their sum.
    struct CloneArgs {
        std::uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    } args{kPthreadFlags & ~std::uint64_t{0x100000},
           0,
           child_tid,
           0,
           0,
           0x6000'0000'0000,
           0x10000,
           0x5000};
    CHECK(g.sys(SYS_clone3, g.put(args), sizeof args) == 3);
    REQUIRE(g.thread.started.size() == 2);
    CHECK(g.thread.started[1].stack == 0x6000'0000'0000 + 0x10000);
    CHECK(g.calls->live_threads() == 3);
    // A fourth thread is beyond max_threads: EAGAIN, nothing started.
    CHECK(g.sys(SYS_clone, kPthreadFlags, 0x7000'0000'0000, parent_tid, child_tid, 0) == -EAGAIN);
    CHECK(g.thread.started.size() == 2);
    CHECK(g.calls->live_threads() == 3);
}

TEST_CASE("threads: a new process, bad flag sets and a failed start", "[process-calls][threads]") {
    Guest g(threaded(8));
    // fork (SIGCHLD only), vfork's flags, posix_spawn's CLONE_VM|CLONE_VFORK:
    // refused whole, no thread started.
    for (std::uint64_t flags :
         {std::uint64_t{17}, std::uint64_t{0x4000 | 0x100 | 17}, std::uint64_t{0x100 | 0x4000}})
        CHECK(g.sys(SYS_clone, flags, 0, 0, 0, 0) == -ENOSYS);
    CHECK(g.thread.started.empty());
    // copy_process's consistency checks come first.
    CHECK(g.sys(SYS_clone, 0x10000 | 0x100, 0, 0, 0, 0) == -EINVAL); // THREAD without SIGHAND
    CHECK(g.sys(SYS_clone, 0x800, 0, 0, 0, 0) == -EINVAL);           // SIGHAND without VM
    // clone3's argument checks.
    std::uint64_t args[12] = {kPthreadFlags};
    CHECK(g.sys(SYS_clone3, g.put(args), 56) == -EINVAL);  // below CLONE_ARGS_SIZE_VER0
    CHECK(g.sys(SYS_clone3, g.put(args), 8192) == -E2BIG); // beyond a page
    args[11] = 1;                                          // a field this kernel does not know
    CHECK(g.sys(SYS_clone3, g.put(args), sizeof args) == -E2BIG);
    args[11] = 0;
    args[8] = 0x1000; // set_tid
    CHECK(g.sys(SYS_clone3, g.put(args), 88) == -EINVAL);
    args[8] = 0;
    args[5] = 0x7000'0000'0000; // a stack without its size
    CHECK(g.sys(SYS_clone3, g.put(args), 88) == -EINVAL);
    CHECK(g.sys(SYS_clone3, 8, 88) == -EFAULT);
    CHECK(g.thread.started.empty());
    // The runner could not start it: its error, and no thread is left behind.
    g.thread.start_result = -EAGAIN;
    CHECK(g.sys(SYS_clone, kPthreadFlags, 0x7000'0000'0000, 0, 0, 0) == -EAGAIN);
    CHECK(g.calls->live_threads() == 1);
}

TEST_CASE(
    "threads: exit clears the thread's tid word, walks its robust list, and the last one ends "
    "the program",
    "[process-calls][threads]") {
    Guest g(threaded(4));
    const std::uint64_t clear = g.alloc(4);
    g.mem.put_value(clear, std::uint32_t{0xdead});
    REQUIRE(g.sys(SYS_clone, kPthreadFlags, 0x7000'0000'0000, 0, clear, 0) == 2);
    CHECK(g.mem.value_at<std::uint32_t>(clear) == 0xdead); // CHILD_SETTID is not asked
    FakeThread child;
    child.id = 2;
    // A robust list with two held locks (word = owner tid, one with waiters)
    // and one of another owner; the futex word is 8 bytes past each entry.
    struct Lock {
        std::uint64_t next;
        std::uint32_t pad, word;
    };
    const std::uint64_t head = g.alloc(24), a = g.alloc(16), b = g.alloc(16), c = g.alloc(16);
    g.mem.put_value(a, Lock{b, 0, 2});
    g.mem.put_value(b, Lock{c, 0, 2 | 0x80000000u});
    g.mem.put_value(c, Lock{head, 0, 7});
    struct Head {
        std::uint64_t next;
        std::int64_t offset;
        std::uint64_t pending;
    };
    g.mem.put_value(head, Head{a, 12, 0});
    REQUIRE(g.calls->call({SYS_set_robust_list, {head, 24}}, child)->value == 0);
    auto r = g.calls->call({SYS_exit, {5}}, child);
    REQUIRE(r);
    CHECK(r->then == Then::exit_thread);
    CHECK(r->status == 5);
    CHECK_FALSE(r->last_thread);
    CHECK(g.mem.value_at<std::uint32_t>(clear) == 0);            // pthread_join's word
    CHECK(g.mem.value_at<std::uint32_t>(a + 12) == 0x40000000u); // OWNER_DIED
    CHECK(g.mem.value_at<std::uint32_t>(b + 12) == 0xc0000000u); // WAITERS kept
    CHECK(g.mem.value_at<std::uint32_t>(c + 12) == 7u);          // not its lock
    CHECK(g.calls->live_threads() == 1);
    r = g.calls->call({SYS_exit, {6}}, g.thread);
    REQUIRE(r);
    CHECK(r->then == Then::exit_thread);
    CHECK(r->last_thread);
    CHECK(r->status == 6);
}

TEST_CASE("threads: futexes between threads are host futexes on the guest words",
          "[process-calls][threads]") {
    Guest g(threaded(4));
    REQUIRE(g.sys(SYS_clone, kPthreadFlags, 0x7000'0000'0000, 0, 0, 0) == 2);
    const std::uint64_t word = g.alloc(4);
    g.mem.put_value(word, std::uint32_t{1});
    constexpr std::uint64_t kWait = 0, kWake = 1, kPrivate = 128;
    // A word outside the program's memory, or not aligned.
    CHECK(g.sys(SYS_futex, g.hole(), kWait, 0, 0) == -EFAULT);
    CHECK(g.sys(SYS_futex, word + 1, kWait, 1, 0) == -EINVAL);
    CHECK(g.sys(SYS_futex, 0x10, kWait | kPrivate, 1, 0) == -EFAULT);
    // Waking an unmapped private word wakes nobody, a shared one faults.
    CHECK(g.sys(SYS_futex, g.hole(), kWake | kPrivate, 1) == 0);
    CHECK(g.sys(SYS_futex, g.hole(), kWake, 1) == -EFAULT);
    // Another value: at once EAGAIN; a timeout: ETIMEDOUT after it.
    CHECK(g.sys(SYS_futex, word, kWait, 0, 0) == -EAGAIN);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(g.sys(SYS_futex, word, kWait | kPrivate, 1, g.put(Timespec{0, 20'000'000})) ==
          -ETIMEDOUT);
    CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(20));
    // A waiter on one host thread, woken from another.
    FakeThread child;
    child.id = 2;
    std::int64_t waited = 1;
    std::thread waiter([&] {
        SyscallArgs a;
        a.nr = SYS_futex;
        a.a[0] = word;
        a.a[1] = kWait | kPrivate;
        a.a[2] = 1;
        waited = g.calls->call(a, child)->value;
    });
    std::int64_t woken = 0;
    for (int i = 0; i < 500 && woken == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        woken = g.sys(SYS_futex, word, kWake | kPrivate, 1);
    }
    waiter.join();
    CHECK(woken == 1);
    CHECK(waited == 0);
}

TEST_CASE("threads: a futex wait ends with EINTR when the VM stops", "[process-calls][threads]") {
    std::atomic<bool> stopping{false};
    ProcessCalls::Options o = threaded(4);
    o.interrupted = [&] { return stopping.load(); };
    Guest g(o);
    REQUIRE(g.sys(SYS_clone, kPthreadFlags, 0x7000'0000'0000, 0, 0, 0) == 2);
    const std::uint64_t word = g.alloc(4);
    g.mem.put_value(word, std::uint32_t{0});
    std::thread stopper([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        stopping = true;
    });
    CHECK(g.sys(SYS_futex, word, 128, 0, 0) == -EINTR); // no timeout: only the stop ends it
    stopper.join();
}

TEST_CASE("threads: a join racing the thread's exit never looks like a deadlock",
          "[process-calls][threads]") {
    // pthread_join waits on the thread's clear_child_tid word. The exiting
    // thread must zero and wake it while it still counts as alive: counted
    // gone first, the joiner could find one thread left and the word not yet
    // zero, and the single-threaded futex would end the program as a
    // deadlock. Many rounds, each a fresh race.
    for (int round = 0; round < 200; ++round) {
        Guest g(threaded(2));
        const std::uint64_t word = g.alloc(4);
        g.mem.put_value(word, std::uint32_t{2});
        REQUIRE(g.sys(SYS_clone, kPthreadFlags, 0x7000'0000'0000, 0, word, 0) == 2);
        FakeThread child;
        child.id = 2;
        std::thread exiting([&] { g.calls->call({SYS_exit, {0}}, child); });
        SyscallArgs wait;
        wait.nr = SYS_futex;
        wait.a[0] = word;
        wait.a[1] = 128; // FUTEX_WAIT_PRIVATE
        wait.a[2] = 2;
        auto r = g.calls->call(wait, g.thread);
        exiting.join();
        REQUIRE(r);
        INFO("round " << round << ": " << r->message);
        REQUIRE(r->then == Then::resume);
        CHECK((r->value == 0 || r->value == -EAGAIN));
        CHECK(g.mem.value_at<std::uint32_t>(word) == 0);
    }
}
