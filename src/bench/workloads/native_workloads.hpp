// Native runner for the sysbench-style workload cores in guest/workloads/
// (sb_cpu.h, sb_memory.h, sb_mutex.h, sb_threads.h, driven by sb_run.h):
// the same code the sb_* guests run, on std::thread threads, so native and
// in-guest results compare line for line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace minivmm::workloads {

enum class Test { cpu = 0, memory = 1, mutex = 2, threads = 3 };

// The fields of one "sb-result ..." line (see guest/workloads/sb_run.h).
struct Result {
    std::string test;
    std::uint64_t threads = 0;
    std::uint64_t events = 0;
    std::uint64_t time_ns = 0;
    std::uint64_t lat_min_ns = 0, lat_avg_ns = 0, lat_max_ns = 0, lat_p95_ns = 0;
    std::uint64_t lat_sum_ns = 0;
    std::uint64_t check = 0;
    double fairness_events_avg = 0;
    double fairness_events_stddev = 0;
    std::uint64_t fairness_time_avg_ns = 0, fairness_time_stddev_ns = 0;
};

// The workloads' clock on the native side: the TSC in nanoseconds, as the
// guests read it (rdtsc scaled by the TSC rate, here calibrated once against
// steady_clock), so both sides pay the same for every timestamp. The
// argument is unused (the cores' sb_now_fn signature).
std::uint64_t tsc_now_ns(void* unused = nullptr);

// The TSC rate behind tsc_now_ns, in kHz (calibrated once, ~50 ms).
std::uint64_t tsc_khz();

// "cpu" -> Test::cpu, ...; nullopt for anything else.
std::optional<Test> parse_test(std::string_view name);

// Runs `test` with options in sysbench syntax ("--cpu-max-prime=20000
// --events=100 --time=0") on `threads` threads (0: --threads from the
// options, else 1). Time comes from tsc_now_ns; "yield" in the threads test
// is --thread-yield's: the guest's pause burst, or sched_yield(). Memory
// comes from a fresh anonymous mapping, so the touch mode includes
// first-touch page faults. Throws std::invalid_argument on bad options,
// minivmm::Error if memory cannot be mapped.
Result run_native(Test test, std::string_view options, unsigned threads = 0);

// The result line, exactly as a guest prints it (with the trailing '\n').
std::string format_result(const Result& r);

// sysbench 1.0's report of the run (guest/workloads/sb_report.h), exactly as
// a guest prints it before its result line: `options` are the run's options
// (printed in the header; the memory test's block size is read from them).
// Throws std::invalid_argument when they do not parse.
std::string format_report(const Result& r, std::string_view options);

// Parses a line produced by format_result or by a guest ("sb-result" and
// key=value fields; unknown keys are ignored; a line that is part of a
// larger text is found by its "sb-result " prefix). nullopt if no such line
// or a required field is missing or malformed.
std::optional<Result> parse_result_line(std::string_view text);

// sysbench 1.0's own report of a run as a Result with the given test name
// and thread count: "total number of events:", "total time:" and the "avg:"
// and "95th percentile:" latency lines (ms) are required; min, max, sum and
// the threads-fairness lines are read when present (else 0); check stays 0.
// nullopt when the text is not such a report.
std::optional<Result> parse_sysbench_report(std::string_view text, std::string_view test,
                                            std::uint64_t threads);

} // namespace minivmm::workloads
