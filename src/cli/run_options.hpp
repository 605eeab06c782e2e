// Command-line parsing for minivmm-run (kept apart from main so tests can
// drive it): turns argv into RunOptions, or into an exit with a message.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <spdlog/common.h>

#include "minivmm/block_io_mode.hpp"
#include "minivmm/kvm_slots.hpp"
#include "minivmm/ram_block.hpp"

namespace minivmm::cli {

// Exit statuses of minivmm-run other than the guest's own exit code.
inline constexpr int kExitUsage = 2;        // invalid command line
inline constexpr int kExitTimeout = 124;    // --timeout expired (as timeout(1))
inline constexpr int kExitVmmError = 125;   // VMM could not start or failed
inline constexpr int kExitGuestFault = 126; // guest exception, bad hypercall, KVM error
// SIGINT / SIGTERM: 128 + the signal number (130 / 143).

// --linux PROGRAM [ARGS...]: an unmodified Linux executable instead of a
// guest image (docs/linux-programs.md).
struct LinuxRunOptions {
    std::string program;                   // the executable
    std::vector<std::string> args;         // its argv[1..]
    std::vector<std::string> env;          // --env KEY=VALUE, in order
    std::string workdir;                   // --workdir DIR ("" = the current one)
    std::vector<std::string> rw_dirs;      // --rw DIR
    std::uint64_t stack_size = 8ull << 20; // --stack SIZE
    unsigned max_threads = 16;             // --vcpus N: threads at once, the main one included
};

struct RunOptions {
    std::string image;
    std::optional<LinuxRunOptions> linux_program; // --linux
    std::string cmdline;
    unsigned vcpus = 1;
    std::uint64_t mem_size = 256ull << 20;
    std::optional<std::chrono::nanoseconds> timeout;
    spdlog::level::level_enum log_level = spdlog::level::warn;
    LockPolicy lock_policy = LockPolicy::global;
    std::string disk; // --disk FILE: the block device's backing file (must exist)
    bool disk_readonly = false;
    BlockIoOptions disk_io;                     // --blk-io, --blk-poll-us
    RamBlockOptions ram = guest_ram_defaults(); // --ram-backing, --[no-]thp, --prefault, --mlock
    std::vector<int> vcpu_cpus;                 // --pin CPULIST
    bool stats = false;                         // --stats: one minivmm-stats line on stderr
    std::string stats_json;                     // --stats-json FILE
    std::string api_socket;                     // --api-sock PATH
    bool no_seccomp = false;                    // --no-seccomp
    std::uint32_t dirty_ring_entries = 0;       // --dirty-ring N (0: bitmap)
};

// A request to exit at once: --help/--version/--print-seccomp (status 0, text
// to stdout) or a usage error (status 2, one line for stderr).
struct EarlyExit {
    int status;
    std::string text;
};

std::variant<RunOptions, EarlyExit> parse_run_options(int argc, const char* const* argv);

// "256M", "1G", "4096", "512k": bytes, with binary K/M/G/T suffixes and an
// optional trailing "B" or "iB". Returns nullopt for anything else or overflow.
std::optional<std::uint64_t> parse_size(std::string_view text);

// "0,1", "0-3", "2,0-1": host CPU numbers in the order given (duplicates
// kept). Returns nullopt for an empty or malformed list, a reversed range,
// or a CPU number at or above CPU_SETSIZE.
std::optional<std::vector<int>> parse_cpu_list(std::string_view text);

} // namespace minivmm::cli
