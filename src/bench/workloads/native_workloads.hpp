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
    std::uint64_t check = 0;
    double fairness_events_avg = 0;
    double fairness_events_stddev = 0;
};

// "cpu" -> Test::cpu, ...; nullopt for anything else.
std::optional<Test> parse_test(std::string_view name);

// Runs `test` with options in sysbench syntax ("--cpu-max-prime=20000
// --events=100 --time=0") on `threads` threads (0: --threads from the
// options, else 1). Time comes from steady_clock; "yield" in the threads
// test is sched_yield(). Memory comes from a fresh anonymous mapping, so the
// touch mode includes first-touch page faults. Throws std::invalid_argument
// on bad options, std::runtime_error if memory cannot be mapped.
Result run_native(Test test, std::string_view options, unsigned threads = 0);

// The result line, exactly as a guest prints it (with the trailing '\n').
std::string format_result(const Result& r);

// Parses a line produced by format_result or by a guest ("sb-result" and
// key=value fields; unknown keys are ignored; a line that is part of a
// larger text is found by its "sb-result " prefix). nullopt if no such line
// or a required field is missing or malformed.
std::optional<Result> parse_result_line(std::string_view text);

} // namespace minivmm::workloads
