// minivmm-bench overhead's command line: its options on a CLI11 subcommand,
// and the checks of the parsed combination, where an option that does not
// apply to what runs is refused with one line, never ignored. Apart from
// bench_main.cpp so that the unit tests can drive them (library
// minivmm_bench_cli, no KVM).
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/overhead_bench.hpp"

namespace minivmm::bench {

struct OverheadCli {
    OverheadOptions options;
    std::vector<unsigned> threads; // --threads as given: one count, or a list with --program
    // The options whose presence the checks look at (owned by the App).
    CLI::Option *tests = nullptr, *lock = nullptr, *threads_opt = nullptr, *knob = nullptr,
                *region = nullptr, *file_size = nullptr, *file_dir = nullptr, *sysbench = nullptr,
                *program = nullptr, *program_option = nullptr;
};

// Declares the overhead options on `sub`, parsed into `cli`; it must
// outlive the parse.
void add_overhead_options(CLI::App& sub, OverheadCli& cli);

// After a successful parse: completes cli.options (the thread counts) and
// returns "", or the usage error as one line (e.g. "--lock: not with
// --program=sysbench: minivmm-run --linux has no --lock").
std::string finish_overhead_options(OverheadCli& cli);

} // namespace minivmm::bench
