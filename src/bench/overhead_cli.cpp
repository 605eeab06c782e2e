#include "bench/overhead_cli.hpp"

#include <algorithm>
#include <cstdint>

#include <fmt/core.h>

namespace minivmm::bench {

namespace {

// The real sysbench's own tests, as --program=sysbench runs them.
const std::vector<std::string> kProgramTests{"cpu", "memory", "fileio", "mutex", "threads"};

bool given(const CLI::Option* o) {
    return o != nullptr && o->count() != 0;
}

bool runs(const OverheadOptions& o, std::initializer_list<const char*> names) {
    for (const auto& t : o.tests)
        for (const char* n : names)
            if (t == n) return true;
    return false;
}

// A --program-option's checks: "" or why it is refused.
std::string check_program_option(const OverheadOptions& o, const std::string& value) {
    const auto colon = value.find(':');
    const std::string test = value.substr(0, colon),
                      opt = colon == std::string::npos ? std::string{} : value.substr(colon + 1);
    if (colon == std::string::npos || !opt.starts_with("--") || opt.size() == 2 ||
        opt.find(' ') != std::string::npos)
        return fmt::format("--program-option {}: not TEST:--option[=value]", value);
    if (std::find(kProgramTests.begin(), kProgramTests.end(), test) == kProgramTests.end())
        return fmt::format("--program-option {}: {} is not one of sysbench's tests cpu, memory, "
                           "fileio, mutex, threads",
                           value, test);
    if (!runs(o, {test.c_str()}))
        return fmt::format("--program-option {}: needs {} in --tests", value, test);
    // What the benchmark sets itself, from its own option of that name.
    const std::string name = opt.substr(0, opt.find('='));
    for (const char* own : {"--threads", "--time", "--file-total-size"})
        if (name == own)
            return fmt::format("--program-option {}: {} is set by minivmm-bench's own {}", value,
                               own, own);
    return {};
}

std::string finish_program(OverheadCli& cli) {
    auto& o = cli.options;
    const std::string why = "not with --program=sysbench";
    if (given(cli.lock))
        return fmt::format("--lock: {}: minivmm-run --linux has no --lock (its slot tables use "
                           "the default policy)",
                           why);
    if (given(cli.knob))
        return fmt::format("--knob: {}: the guest is minivmm-run --linux, which takes none of "
                           "the knobs' flags",
                           why);
    if (given(cli.region))
        return fmt::format("--memory-region: {}: sysbench's memory test has no large-region "
                           "mode",
                           why);
    for (const auto& t : o.tests)
        if (std::find(kProgramTests.begin(), kProgramTests.end(), t) == kProgramTests.end())
            return fmt::format("--tests {}: {}, which runs sysbench's own tests cpu, memory, "
                               "fileio, mutex, threads",
                               t, why);
    if (o.sysbench == "none")
        return "--sysbench none: with --program=sysbench it names the binary run on both sides";
    if (!cli.threads.empty()) o.thread_counts = cli.threads;
    for (std::size_t i = 0; i < o.thread_counts.size(); ++i)
        for (std::size_t k = 0; k < i; ++k)
            if (o.thread_counts[i] == o.thread_counts[k])
                return fmt::format("--threads lists {} twice", o.thread_counts[i]);
    for (const auto& p : o.program_options)
        if (auto err = check_program_option(o, p); !err.empty()) return err;
    return {};
}

} // namespace

void add_overhead_options(CLI::App& ov, OverheadCli& cli) {
    auto& oo = cli.options;
    cli.tests = ov.add_option("--tests", oo.tests,
                              "tests (default cpu,memory,fileio,mutex,threads; with "
                              "--program=sysbench only those five)")
                    ->delimiter(',')
                    ->check(CLI::IsMember({"cpu", "memory", "memory-write", "memory-read",
                                           "memory-touch", "fileio", "mutex", "threads"}));
    ov.add_option("--repeat", oo.repeat, "alternated native/guest rounds (default 5)")
        ->check(CLI::Range(1u, 1000u));
    ov.add_option("--time", oo.time_s, "seconds per run (default 2)")->check(CLI::Range(1u, 3600u));
    cli.lock = ov.add_option("--lock", oo.policies, "guest lock policies (default global)")
                   ->delimiter(',')
                   ->check(CLI::IsMember({"per-listener", "global", "rcu"}));
    cli.threads_opt = ov.add_option("--threads", cli.threads,
                                    "threads natively and vCPUs in the guest, every test (default "
                                    "2); with --program=sysbench a list, a row per count and "
                                    "test (default 1,2)")
                          ->delimiter(',')
                          ->check(CLI::Range(1u, 16u));
    cli.knob = ov.add_option("--knob", oo.knobs,
                             "extra guest column: minivmm-run flags, e.g. --knob=--blk-io=exit "
                             "(repeatable; --blk-* knobs apply to fileio only)");
    cli.region = ov.add_option("--memory-region", oo.memory_region,
                               "bytes of the large-region (touch) test, K/M/G suffixes (powers of "
                               "1024) as sysbench's sizes (default 1G)")
                     ->transform(CLI::AsSizeValue(false))
                     ->check(CLI::Range(std::uint64_t{1} << 20, std::uint64_t{1} << 36));
    cli.file_size = ov.add_option("--file-total-size", oo.file_total_size,
                                  "bytes of the fileio test's files, K/M/G suffixes (powers of "
                                  "1024) as sysbench's sizes (default 1G, also with "
                                  "--program=sysbench)")
                        ->transform(CLI::AsSizeValue(false))
                        ->check(CLI::Range(std::uint64_t{128} << 14, std::uint64_t{1} << 40));
    cli.file_dir = ov.add_option("--file-dir", oo.file_dir,
                                 "fileio: where to create the working folder; not tmpfs "
                                 "(default .)")
                       ->check(CLI::ExistingDirectory);
    cli.sysbench = ov.add_option("--sysbench", oo.sysbench,
                                 "reference binary run next to native for cpu, memory write/read "
                                 "and threads-sched, or 'none' (default sysbench, from PATH); "
                                 "with --program=sysbench, the binary run on both sides");
    cli.program = ov.add_option("--program", oo.program,
                                "run the real program instead of our workloads: 'sysbench' runs "
                                "its five tests with their default options natively and under "
                                "minivmm-run --linux, beside the seed experiment's QEMU-KVM "
                                "figures")
                      ->check(CLI::IsMember({"sysbench"}));
    cli.program_option =
        ov.add_option("--program-option", oo.program_options,
                      "with --program=sysbench: an extra option of one test, TEST:--option=value "
                      "(repeatable), e.g. mutex:--mutex-locks=1000");
    ov.add_option("--json", oo.json_path, "write all samples and summaries to FILE as JSON");
    ov.add_option("--html", oo.html_path, "write a self-contained HTML report to FILE");
    ov.add_flag("--full", oo.full, "sysbench's 10 s per run (instead of --time)")
        ->excludes("--time");
    ov.add_flag("--verbose", oo.verbose,
                "print every run's report as it ends, in sysbench's layout (native, sysbench and "
                "guest runs)");
}

std::string finish_overhead_options(OverheadCli& cli) {
    auto& o = cli.options;
    // An option for a test that is not run would be silently ignored.
    auto needs = [](const char* opt, const char* tests) {
        return fmt::format("{} needs {} in --tests", opt, tests);
    };
    if ((given(cli.file_size) || given(cli.file_dir)) && !runs(o, {"fileio"}))
        return needs(given(cli.file_size) ? "--file-total-size" : "--file-dir", "fileio");
    if (!o.program.empty()) return finish_program(cli);
    if (given(cli.program_option)) return "--program-option: only with --program=sysbench";
    if (given(cli.region) && !runs(o, {"memory", "memory-touch"}))
        return needs("--memory-region", "memory or memory-touch");
    if (given(cli.sysbench) &&
        !runs(o, {"cpu", "memory", "memory-write", "memory-read", "threads"}))
        return needs("--sysbench", "cpu, memory or threads");
    if (cli.threads.size() > 1) return "--threads: one count (a list only with --program=sysbench)";
    if (!cli.threads.empty()) o.threads = cli.threads.front();
    return {};
}

} // namespace minivmm::bench
