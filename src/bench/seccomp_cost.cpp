// minivmm-seccomp-cost [--runs N]: what a thread pays to go under its seccomp
// allowlist: building the filter, PR_SET_NO_NEW_PRIVS, loading it into the
// kernel. For each role, N forked children (a filter cannot be removed) each
// time two install_seccomp(role) calls: the process's first, on a thread of
// its own (one-time costs: the SIGSYS handler, and whatever the filter
// builder sets up once per process), then the main thread's (what every
// later VMM thread pays). Prints median [min..max] of each, after the floor:
// the same two system calls with a one-instruction filter. No KVM needed.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "bench/stats.hpp"
#include "minivmm/error.hpp"
#include "minivmm/seccomp.hpp"

namespace {

// The floor: PR_SET_NO_NEW_PRIVS and a filter that allows everything.
void install_allow_all() {
    sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    sock_fprog prog{1, &allow};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        throw minivmm::KvmError("prctl PR_SET_NO_NEW_PRIVS", errno);
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        throw minivmm::KvmError("seccomp SECCOMP_SET_MODE_FILTER", errno);
}

struct Times {
    double first = -1, later = -1; // nanoseconds; -1: failed
};

template <typename Install>
double time_ns(Install& install) {
    try {
        auto t0 = std::chrono::steady_clock::now();
        install();
        auto t1 = std::chrono::steady_clock::now();
        return std::chrono::duration<double, std::nano>(t1 - t0).count();
    } catch (const minivmm::Error& e) {
        fmt::print(stderr, "minivmm-seccomp-cost: {}\n", e.what());
        return -1;
    }
}

// One child: install() on a new thread, then on the main thread.
template <typename Install>
Times time_install(Install install) {
    int fds[2];
    if (::pipe(fds) != 0) throw minivmm::KvmError("pipe", errno);
    pid_t pid = ::fork();
    if (pid < 0) throw minivmm::KvmError("fork", errno);
    if (pid == 0) {
        ::close(fds[0]);
        Times t;
        std::thread([&] { t.first = time_ns(install); }).join();
        t.later = time_ns(install);
        // write and _exit are on every allowlist.
        ssize_t n = ::write(fds[1], &t, sizeof t);
        ::_exit(n == sizeof t ? 0 : 1);
    }
    ::close(fds[1]);
    Times t;
    ssize_t n = ::read(fds[0], &t, sizeof t);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (n != sizeof t || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
    return t;
}

} // namespace

int main(int argc, char** argv) {
    unsigned runs = 200;
    CLI::App app{"Time building and installing each role's seccomp filter, in forked children.",
                 "minivmm-seccomp-cost"};
    app.add_option("--runs", runs, "children per role (default 200)")
        ->check(CLI::Range(1u, 100000u));
    CLI11_PARSE(app, argc, argv);
    auto row = [runs](const char* name, auto install) {
        std::vector<double> first, later;
        for (unsigned i = 0; i < runs; ++i) {
            Times t = time_install(install);
            if (t.first < 0 || t.later < 0) {
                fmt::print(stderr, "minivmm-seccomp-cost: a {} child failed\n", name);
                return false;
            }
            first.push_back(t.first);
            later.push_back(t.later);
        }
        using minivmm::bench::format_summary;
        using minivmm::bench::summarize;
        fmt::print("{:<6} {:>5}  {:<36}  {}\n", name, runs,
                   format_summary(summarize(first), 1e-3, "us", 1),
                   format_summary(summarize(later), 1e-3, "us", 1));
        return true;
    };
    try {
        fmt::print("{:<6} {:>5}  {:<36}  {}\n", "role", "runs",
                   "first in process: median [min..max]", "later thread: median [min..max]");
        if (!row("floor", install_allow_all)) return 1;
        for (auto role : {minivmm::ThreadRole::vcpu, minivmm::ThreadRole::io,
                          minivmm::ThreadRole::vmm, minivmm::ThreadRole::program})
            if (!row(minivmm::to_string(role), [role] { minivmm::install_seccomp(role); }))
                return 1;
    } catch (const std::exception& e) {
        fmt::print(stderr, "minivmm-seccomp-cost: {}\n", e.what());
        return 1;
    }
    return 0;
}
