// minivmm-bench overhead: the sysbench-style workloads (guest/workloads/sb_*.h)
// natively (minivmm_workloads, in this process, 2 threads) and in the sb_*
// guests under minivmm-run (2 vCPUs, --lock=P for each policy asked for),
// alternated round by round; prints the table, writes JSON and HTML
// (bench/overhead_report.hpp).
//
// With --program=sysbench, the real sysbench instead (Debian 12's 1.0.20,
// unmodified): the same binary natively and under minivmm-run --linux, its
// five tests with their default options for each thread count, beside the
// seed experiment's QEMU-KVM figures.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "minivmm/kvm_flavor.hpp"

namespace minivmm::bench {

struct OverheadOptions {
    std::vector<std::string> tests{"cpu", "memory", "fileio", "mutex", "threads"};
    std::vector<std::string> policies{"global"};
    // Extra guest columns: each knob is minivmm-run flags ("--blk-io=exit",
    // "--thp --prefault") run with the first policy; --blk-* knobs only for
    // fileio.
    std::vector<std::string> knobs;
    unsigned repeat = 5;
    unsigned threads = 2;                                   // threads natively, vCPUs in the guest
    unsigned time_s = 2;                                    // --time of each run
    bool full = false;                                      // sysbench's 10 s
    std::uint64_t memory_region = std::uint64_t{1} << 30;   // bytes of the large-region test
    std::uint64_t file_total_size = std::uint64_t{1} << 30; // fileio: sysbench's 1G
    std::string file_dir = ".";                             // fileio: parent of the working folder
    // Reference binary (PATH lookup), "none": skip; with program "sysbench",
    // the binary run on both sides.
    std::string sysbench = "sysbench";
    // "sysbench": run the real program natively and under minivmm-run
    // --linux (tests cpu, memory, fileio, mutex, threads; no policies, no
    // knobs, no reference). Empty: our workloads in the sb_* guests.
    std::string program;
    std::vector<unsigned> thread_counts{1, 2}; // program: one row per count per test
    // program: extra sysbench options, "TEST:--option=value" (e.g.
    // "mutex:--mutex-locks=1000"), after the defaults.
    std::vector<std::string> program_options;
    bool verbose = false; // print every run's report (sysbench's layout) as it ends
    std::string json_path, html_path;
    std::string run_path, guest_dir;
    KvmFlavor kvm_flavor = KvmFlavor::hardware; // detect_kvm_flavor(): emulated marks every figure
};

// "Linux 6.1.0 x86_64, 2 x <CPU model>" for a report's host line.
std::string host_info();

// Writes `text` to `path` (throws when it cannot) and says so on stderr.
void write_file(const std::string& path, const std::string& text);

// Returns the process exit code; throws when a run fails or a check does
// not match.
int run_overhead(const OverheadOptions& options);

} // namespace minivmm::bench
