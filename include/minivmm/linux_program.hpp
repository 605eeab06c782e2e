/// \file
/// An unmodified static x86-64 Linux executable run in a ring-3 guest, the
/// VMM serving its system calls (docs/linux-programs.md): minivmm as the
/// program's kernel, as gVisor's Sentry is.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "minivmm/exit_counts.hpp"
#include "minivmm/kvm.hpp"

namespace minivmm {

/// What to run and what it may touch (a value type).
struct LinuxProgramConfig {
    std::string path;                       ///< the executable, a host path
    std::vector<std::string> argv;          ///< its argv; empty = { path }
    std::vector<std::string> env;           ///< KEY=VALUE each; nothing is inherited
    std::string workdir;                    ///< start and writable directory; "" = current
    std::vector<std::string> writable_dirs; ///< more directories it may write beneath
    std::uint64_t mem_size = 1ull << 30;    ///< guest RAM for its pages (a multiple of 2 MiB)
    std::uint64_t stack_size = 8ull << 20;  ///< its main stack (RLIMIT_STACK)
    unsigned max_threads = 16; ///< threads at once (each a vCPU), the main one included
    std::optional<std::chrono::nanoseconds> timeout; ///< stop it after this long
    bool handle_signals = true;                      ///< SIGINT/SIGTERM stop it while run() runs
    bool seccomp = true;        ///< the vCPU thread confined to ThreadRole::program's allowlist
    std::vector<int> vcpu_cpus; ///< host CPUs for the vCPU thread; empty = any
};

/// How a program ended.
struct LinuxProgramExit {
    /// Why it ended.
    enum class Kind {
        exited,    ///< exit or exit_group: `code`
        killed,    ///< a fault or a signal it sent itself: `signal`
        timeout,   ///< LinuxProgramConfig::timeout expired
        stopped,   ///< SIGINT/SIGTERM to the VMM: `signal`
        vmm_error, ///< the VMM failed (an ioctl error, a fault in its ring-0 code)
    };
    Kind kind = Kind::exited; ///< why it ended
    int code = 0;             ///< exit status (exited)
    int signal = 0;           ///< killed, stopped
    std::string message;      ///< one line for every kind but exited
    /// What a shell's $? would show: the code, or 128 + the signal; 124 for
    /// a timeout (as timeout(1)); 125 for a VMM error.
    int shell_status() const noexcept;
};

/// One program in one VM with one vCPU (threads come with issue 17).
class LinuxProgram {
  public:
    /// Loads the executable and builds its process: page tables, initial
    /// stack, vDSO, file table. \throws ImageError for an executable that
    /// cannot run (its path in the message), ConfigError for a bad
    /// configuration, KvmError/SystemError when the host refuses.
    LinuxProgram(const KvmSystem& kvm, LinuxProgramConfig config);
    ~LinuxProgram();
    LinuxProgram(const LinuxProgram&) = delete;
    LinuxProgram& operator=(const LinuxProgram&) = delete;

    /// Runs the program to its end on a vCPU thread; the calling thread
    /// keeps the vDSO's clock page fresh and watches the time limit and
    /// signals. Call once.
    LinuxProgramExit run();

    /// Counters of the run so far.
    struct Stats {
        std::uint64_t syscalls = 0;            ///< system calls served
        std::uint64_t translation_flushes = 0; ///< TLB shootdowns (page-table slot re-created)
        ExitCounts exits;                      ///< KVM exits by reason
    };
    /// The counters so far (safe while run() runs).
    Stats stats() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace minivmm
