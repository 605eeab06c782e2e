// The sysbench-style report of a run (guest/workloads/sb_report.h) against
// what sysbench 1.0.20 itself prints (Debian 12, captured on the development
// machine with `sysbench TEST --threads=2 --time=1 ... run`): same sections,
// labels and columns. The per-second rates of sysbench's first section use
// its own interval timer, not the printed total time, so that section is
// compared with digits masked; everything from "General statistics:" on is
// rebuilt from the printed values and must match byte for byte.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "native_workloads.hpp"
#include "sb_report.h"

using minivmm::workloads::format_report;
using minivmm::workloads::Result;

namespace {

const char* const kSysbenchCpu = "Threads started!\n"
                                 "\n"
                                 "CPU speed:\n"
                                 "    events per second:  2523.99\n"
                                 "\n"
                                 "General statistics:\n"
                                 "    total time:                          1.0006s\n"
                                 "    total number of events:              2531\n"
                                 "\n"
                                 "Latency (ms):\n"
                                 "         min:                                    0.74\n"
                                 "         avg:                                    0.79\n"
                                 "         max:                                    2.30\n"
                                 "         95th percentile:                        0.84\n"
                                 "         sum:                                 1996.96\n"
                                 "\n"
                                 "Threads fairness:\n"
                                 "    events (avg/stddev):           1265.5000/2.50\n"
                                 "    execution time (avg/stddev):   0.9985/0.00\n"
                                 "\n";

const char* const kSysbenchMemory = "Threads started!\n"
                                    "\n"
                                    "Total operations: 262144 (1318407.72 per second)\n"
                                    "\n"
                                    "2048.00 MiB transferred (10300.06 MiB/sec)\n"
                                    "\n"
                                    "\n"
                                    "General statistics:\n"
                                    "    total time:                          0.1977s\n"
                                    "    total number of events:              262144\n"
                                    "\n"
                                    "Latency (ms):\n"
                                    "         min:                                    0.00\n"
                                    "         avg:                                    0.00\n"
                                    "         max:                                    0.49\n"
                                    "         95th percentile:                        0.00\n"
                                    "         sum:                                  360.73\n"
                                    "\n"
                                    "Threads fairness:\n"
                                    "    events (avg/stddev):           131072.0000/0.00\n"
                                    "    execution time (avg/stddev):   0.1804/0.00\n"
                                    "\n";

const char* const kSysbenchThreads = "Threads started!\n"
                                     "\n"
                                     "\n"
                                     "General statistics:\n"
                                     "    total time:                          1.0010s\n"
                                     "    total number of events:              80655\n"
                                     "\n"
                                     "Latency (ms):\n"
                                     "         min:                                    0.02\n"
                                     "         avg:                                    0.02\n"
                                     "         max:                                    4.26\n"
                                     "         95th percentile:                        0.03\n"
                                     "         sum:                                 1974.53\n"
                                     "\n"
                                     "Threads fairness:\n"
                                     "    events (avg/stddev):           40327.5000/27.50\n"
                                     "    execution time (avg/stddev):   0.9873/0.00\n"
                                     "\n";

const char* const kSysbenchFileio = "Threads started!\n"
                                    "\n"
                                    "\n"
                                    "File operations:\n"
                                    "    reads/s:                      40974.48\n"
                                    "    writes/s:                     27316.32\n"
                                    "    fsyncs/s:                     5472.24\n"
                                    "\n"
                                    "Throughput:\n"
                                    "    read, MiB/s:                  640.23\n"
                                    "    written, MiB/s:               426.82\n"
                                    "\n"
                                    "General statistics:\n"
                                    "    total time:                          1.0018s\n"
                                    "    total number of events:              73973\n"
                                    "\n"
                                    "Latency (ms):\n"
                                    "         min:                                    0.00\n"
                                    "         avg:                                    0.03\n"
                                    "         max:                                    7.51\n"
                                    "         95th percentile:                        0.21\n"
                                    "         sum:                                 1977.91\n"
                                    "\n"
                                    "Threads fairness:\n"
                                    "    events (avg/stddev):           36986.5000/1527.50\n"
                                    "    execution time (avg/stddev):   0.9890/0.00\n"
                                    "\n";

// What our report prints from "Threads started!" on (the header before it
// is ours: the options as given).
std::string body(const std::string& report) {
    auto at = report.find("Threads started!");
    REQUIRE(at != std::string::npos);
    return report.substr(at);
}

std::string from_general(const std::string& text) {
    auto at = text.find("General statistics:");
    REQUIRE(at != std::string::npos);
    return text.substr(at);
}

std::string mask_digits(std::string s) {
    for (char& c : s)
        if (c >= '0' && c <= '9') c = '9';
    return s;
}

// A result holding exactly the values sysbench printed (ms, s).
Result printed(const char* test, std::uint64_t events, double total_s, double min_ms, double avg_ms,
               double max_ms, double p95_ms, double sum_ms, double ev_avg, double ev_stddev,
               double exec_avg_s) {
    Result r;
    r.test = test;
    r.threads = 2;
    r.events = events;
    r.time_ns = static_cast<std::uint64_t>(total_s * 1e9 + 0.5);
    r.lat_min_ns = static_cast<std::uint64_t>(min_ms * 1e6 + 0.5);
    r.lat_avg_ns = static_cast<std::uint64_t>(avg_ms * 1e6 + 0.5);
    r.lat_max_ns = static_cast<std::uint64_t>(max_ms * 1e6 + 0.5);
    r.lat_p95_ns = static_cast<std::uint64_t>(p95_ms * 1e6 + 0.5);
    r.lat_sum_ns = static_cast<std::uint64_t>(sum_ms * 1e6 + 0.5);
    r.fairness_events_avg = ev_avg;
    r.fairness_events_stddev = ev_stddev;
    r.fairness_time_avg_ns = static_cast<std::uint64_t>(exec_avg_s * 1e9 + 0.5);
    return r;
}

void check_like_sysbench(const std::string& ours, const char* theirs) {
    INFO("ours:\n" << ours << "sysbench:\n" << theirs);
    CHECK(mask_digits(body(ours)) == mask_digits(theirs));
    CHECK(from_general(body(ours)) == from_general(theirs));
}

} // namespace

TEST_CASE("reports read like sysbench 1.0.20's: cpu, memory, threads", "[workloads][report]") {
    check_like_sysbench(format_report(printed("cpu", 2531, 1.0006, 0.74, 0.79, 2.30, 0.84, 1996.96,
                                              1265.5, 2.5, 0.9985),
                                      "--cpu-max-prime=20000 --time=1"),
                        kSysbenchCpu);
    check_like_sysbench(
        format_report(printed("memory", 262144, 0.1977, 0, 0, 0.49, 0, 360.73, 131072, 0, 0.1804),
                      "--memory-block-size=8K --memory-total-size=2G"),
        kSysbenchMemory);
    check_like_sysbench(format_report(printed("threads", 80655, 1.0010, 0.02, 0.02, 4.26, 0.03,
                                              1974.53, 40327.5, 27.5, 0.9873),
                                      "--thread-yields=100 --thread-locks=4"),
                        kSysbenchThreads);
}

TEST_CASE("reports read like sysbench 1.0.20's: fileio, with its I/O counts",
          "[workloads][report]") {
    Result p =
        printed("fileio", 73973, 1.0018, 0, 0.03, 7.51, 0.21, 1977.91, 36986.5, 1527.5, 0.9890);
    sb_result r{};
    r.threads = p.threads;
    r.events = p.events;
    r.time_ns = p.time_ns;
    r.lat_min_ns = p.lat_min_ns;
    r.lat_avg_ns = p.lat_avg_ns;
    r.lat_max_ns = p.lat_max_ns;
    r.lat_p95_ns = p.lat_p95_ns;
    r.lat_sum_ns = p.lat_sum_ns;
    r.fairness_events_avg_milli = 36986500;
    r.fairness_events_stddev_milli = 1527500;
    r.fairness_time_avg_ns = p.fairness_time_avg_ns;
    // reads/s 40974.48 etc. at sysbench's own interval; these counts give
    // the same widths at 1.0018 s
    sb_report_info info{"fileio", "--file-test-mode=rndrw", 0, 16384, 41000, 27300, 5480};
    char buf[4096];
    std::size_t n = sb_report_format(buf, sizeof buf, &r, &info);
    REQUIRE(n < sizeof buf);
    check_like_sysbench(std::string(buf, n), kSysbenchFileio);
    // reads/s and MiB/s follow the counts and the block size
    CHECK(std::string(buf).find("    reads/s:                      40926.33\n") !=
          std::string::npos);
    CHECK(std::string(buf).find("    read, MiB/s:                  639.47\n") != std::string::npos);
}

TEST_CASE("report formatting: rounding, widths, a cut buffer", "[workloads][report]") {
    Result r =
        printed("mutex", 2, 0.14504999, 143.5149, 144.225, 144.94, 144.97, 288.45, 1, 0, 0.1442);
    auto text = format_report(r, "--mutex-num=4096");
    CHECK(text.find("Running the test with following options:\n--mutex-num=4096\n"
                    "Number of threads: 2\n") == 0);
    CHECK(text.find("    total time:                          0.1450s\n") != std::string::npos);
    CHECK(text.find("         min:                                  143.51\n") !=
          std::string::npos);
    // 144.225 ms is not exactly representable: it is what printf makes of it
    char want[64];
    std::snprintf(want, sizeof want, "%.2f", 144.225);
    CHECK(text.find(std::string("         avg: ") + std::string(39 - std::strlen(want), ' ') +
                    want) != std::string::npos);
    // exact ties round to even, as glibc's printf
    char tie[32];
    sb_text t{tie, sizeof tie, 0};
    sb_text_fixed(&t, 0.125, 2, 0);
    sb_text_char(&t, ' ');
    sb_text_fixed(&t, 0.375, 2, 0);
    sb_text_char(&t, ' ');
    sb_text_fixed(&t, 2.5, 0, 3);
    tie[t.len] = '\0';
    CHECK(std::string(tie) == "0.12 0.38   2");
    // a buffer too small: cut, NUL-terminated, the full length returned
    sb_result s{};
    s.threads = 2;
    s.events = 5;
    s.time_ns = 1000000000;
    sb_report_info info{"cpu", nullptr, 0, 0, 0, 0, 0};
    char small[16];
    std::size_t need = sb_report_format(small, sizeof small, &s, &info);
    CHECK(need > sizeof small);
    CHECK(std::string(small) == std::string("Running the tes"));
    CHECK(sb_report_format(nullptr, 0, &s, &info) == need);
    CHECK_THROWS_AS(
        format_report(r = printed("memory", 1, 1, 0, 0, 0, 0, 0, 1, 0, 1), "--memory-block-size=x"),
        std::invalid_argument);
}

TEST_CASE("sysbench's own report reads back whole", "[workloads][report]") {
    auto r = minivmm::workloads::parse_sysbench_report(kSysbenchThreads, "threads", 2);
    REQUIRE(r);
    CHECK(r->events == 80655);
    CHECK(r->time_ns == 1001000000ull);
    CHECK(r->lat_min_ns == 20000);
    CHECK(r->lat_max_ns == 4260000);
    CHECK(r->lat_sum_ns == 1974530000ull);
    CHECK(r->fairness_events_avg == 40327.5);
    CHECK(r->fairness_events_stddev == 27.5);
    CHECK(r->fairness_time_avg_ns == 987300000ull);
    // and what it read formats back into the same text
    CHECK(from_general(body(format_report(*r, ""))) == from_general(kSysbenchThreads));
}
