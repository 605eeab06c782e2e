// minivmm-bench linux: an unmodified static Linux program natively and under
// minivmm-run --linux (issue 16), the same binary on both sides, alternated
// round by round, medians with their spread:
//
//   system call round trip  linux_bench getppid N: cycles per call, guest
//                           against native and against a bare hypercall exit
//                           (hcloop.bin under minivmm-run, same run)
//   clock read              linux_bench clock N: clock_gettime(MONOTONIC)
//                           through each side's vDSO, cycles per read
//   cpu                     sb_static cpu: the sysbench prime search, the
//                           program's own time for its events
//   start-up                linux_bench hello as a whole process (wall, peak
//                           RSS) against native and minivmm-run hello.bin
#pragma once

#include <cstdint>
#include <string>

namespace minivmm::bench {

struct LinuxBenchOptions {
    std::string run_path;    // minivmm-run
    std::string guest_dir;   // hello.bin, hcloop.bin
    std::string program_dir; // linux_bench.glibc, sb_static.glibc
    unsigned repeat = 7;     // alternated rounds
    std::uint64_t calls = 200'000;
    std::uint64_t reads = 10'000'000;
    std::uint64_t cpu_events = 2'000; // of --cpu-max-prime=20000
    bool emulated = false;            // mark every figure
};

// Prints the report on stdout; 0, or throws on a failed run.
int run_linux_bench(const LinuxBenchOptions& options);

} // namespace minivmm::bench
