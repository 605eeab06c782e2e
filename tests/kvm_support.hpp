// Helpers for the KVM integration tests: running a guest in-process through
// the library, and running the minivmm-run binary as a child process with
// its stdout and stderr captured separately.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "minivmm/kvm.hpp"
#include "minivmm/vm.hpp"
#include "minivmm/vm_exit.hpp"
#include "skip.hpp"
#include "test_util.hpp"

namespace minivmm::test {

using namespace std::chrono_literals;

// The KVM device the tests use: $MINIVMM_KVM_DEVICE, or /dev/kvm.
std::string kvm_device();

// Checks that kvm_device() opens read-write. If not, prints
//   SKIPPED: /dev/kvm is not usable (<why>): KVM integration tests did not run
// to stderr and returns kSkipStatus, or with MINIVMM_REQUIRE_KVM=1 prints a
// FAILED: line and returns 1. Returns nullopt when the tests can run.
std::optional<int> kvm_gate();
// One KvmSystem on kvm_device() for the whole run.
const KvmSystem& kvm();

// Aborts the whole test process with a message if it is still alive after
// `limit`: a hung VM must fail loudly instead of waiting for ctest's timeout.
class Watchdog {
  public:
    Watchdog(std::chrono::seconds limit, std::string what);
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

struct GuestOptions {
    explicit GuestOptions(std::string image_file, std::string guest_cmdline = {})
        : image(std::move(image_file)), cmdline(std::move(guest_cmdline)) {}
    GuestOptions& with_vcpus(unsigned n) {
        vcpus = n;
        return *this;
    }
    GuestOptions& with_mem(std::uint64_t bytes) {
        mem_size = bytes;
        return *this;
    }
    GuestOptions& with_timeout(std::chrono::nanoseconds limit) {
        timeout = limit;
        return *this;
    }

    GuestOptions& with_ram(const RamBlockOptions& options) {
        ram = options;
        return *this;
    }
    GuestOptions& with_pin(std::vector<int> cpus) {
        vcpu_cpus = std::move(cpus);
        return *this;
    }

    std::string image;   // file name in MINIVMM_GUEST_DIR
    std::string cmdline; // the guest's command line
    unsigned vcpus = 1;
    std::uint64_t mem_size = 64ull << 20;
    // Every run has a time limit, so no test can hang on a guest that spins.
    std::chrono::nanoseconds timeout = 20s;
    RamBlockOptions ram;
    std::vector<int> vcpu_cpus;
};

struct GuestRun {
    VmExit exit;
    std::string console;
    ExitCounts counts;
    std::uint64_t mem_size = 0;
    // What backed guest RAM in the end (a hugetlbfs request may fall back).
    RamBlockOptions::Backing backing = RamBlockOptions::Backing::anonymous;
    std::uintptr_t ram_host = 0; // host address of guest RAM
};

// Loads the image and runs it to completion in this process.
GuestRun run_guest(const GuestOptions& options);

// "guest fault (code 0, vcpu 0): message" for INFO/CAPTURE.
std::string describe(const VmExit& exit);

// Number of threads of this process (entries in /proc/self/task).
std::size_t thread_count();
// thread_count() once it equals `expected`, or after 10 s: a joined thread
// can still be listed while the kernel finishes its exit (for milliseconds
// on emulated KVM), so a count taken right after join may be one too high.
std::size_t thread_count_after_exits(std::size_t expected);

// ---- child processes ------------------------------------------------------

struct ProcessResult {
    int status = -1;   // exit status, -1 if killed by a signal
    int signal = 0;    // the terminating signal, 0 if it exited
    bool hung = false; // had to be killed with SIGKILL at the deadline
    std::string out;   // everything on stdout
    std::string err;   // everything on stderr
};

// minivmm-run (or any program) with stdin from /dev/null and stdout/stderr
// on pipes. The destructor kills and reaps a child that is still running.
class Child {
  public:
    explicit Child(const std::vector<std::string>& argv);
    ~Child();
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    pid_t pid() const noexcept { return pid_; }
    // Reads until stdout contains `needle`; false at the deadline or EOF.
    bool wait_for_stdout(const std::string& needle, std::chrono::milliseconds limit);
    void send(int sig) const;
    // Reads both streams to EOF and reaps the child; SIGKILL after `limit`.
    ProcessResult finish(std::chrono::milliseconds limit);

  private:
    // Polls the open pipes once for up to `timeout_ms`; false when both are at EOF.
    bool pump(int timeout_ms);

    pid_t pid_ = -1;
    int out_fd_ = -1;
    int err_fd_ = -1;
    bool reaped_ = false;
    std::string out_;
    std::string err_;
};

// Runs minivmm-run with `args` to completion (SIGKILL after `limit`).
ProcessResult run_minivmm(const std::vector<std::string>& args,
                          std::chrono::milliseconds limit = 30s);

// "status 0" / "killed by signal 9" / "HUNG", with the captured streams.
std::string describe(const ProcessResult& r);

// Number of '\n'-terminated lines; a final line without '\n' counts too.
std::size_t line_count(const std::string& text);

} // namespace minivmm::test
