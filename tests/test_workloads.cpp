// The sysbench-style workload cores (guest/workloads/sb_*.h) and their
// native runner (src/bench/workloads/): no /dev/kvm needed.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "native_workloads.hpp"
#include "sb_run.h"

using minivmm::workloads::format_result;
using minivmm::workloads::parse_result_line;
using minivmm::workloads::parse_test;
using minivmm::workloads::Result;
using minivmm::workloads::run_native;
using minivmm::workloads::Test;

namespace {

// Sum of the initial pattern of a block of `bytes` (sb_mem_init_block).
std::uint64_t pattern_sum(std::size_t bytes) {
    std::vector<std::size_t> block(bytes / sizeof(std::size_t));
    sb_mem_init_block(block.data(), bytes);
    return sb_mem_read_event(block.data(), bytes);
}

void check_line_round_trip(const Result& r) {
    auto line = format_result(r);
    INFO(line);
    auto back = parse_result_line(line);
    REQUIRE(back);
    CHECK(back->test == r.test);
    CHECK(back->events == r.events);
    CHECK(back->check == r.check);
    CHECK(back->time_ns == r.time_ns);
    CHECK(back->lat_p95_ns == r.lat_p95_ns);
    CHECK(back->lat_sum_ns == r.lat_sum_ns);
    CHECK(back->fairness_time_avg_ns == r.fairness_time_avg_ns);
    CHECK(format_result(*back) == line);
}

} // namespace

TEST_CASE("sb_cpu_event counts the primes from 3 below max_prime like sysbench", "[workloads]") {
    CHECK(sb_cpu_event(20000) == 2261);
    CHECK(sb_cpu_event(10000) == 1228);
    CHECK(sb_cpu_event(3) == 0);
    CHECK(sb_cpu_event(4) == 1);
    CHECK(sb_cpu_event(12) == 4); // 3 5 7 11
}

TEST_CASE("sysbench options parse with size suffixes and reject junk", "[workloads]") {
    sb_options o;
    sb_options_default(&o);
    const char* bad = nullptr;
    REQUIRE(sb_parse_options(" --cpu-max-prime=20000  --events=100 --time=0 "
                             "--memory-block-size=8K --memory-total-size=1G "
                             "--memory-oper=read --memory-scope=local --mutex-num=7",
                             &o, &bad));
    CHECK(o.cpu_max_prime == 20000);
    CHECK(o.events == 100);
    CHECK(o.time_s == 0);
    CHECK(o.memory_block_size == 8192);
    CHECK(o.memory_total_size == (1ull << 30));
    CHECK(o.memory_oper == SB_MEM_OP_READ);
    CHECK(o.memory_scope_global == 0);
    CHECK(o.mutex_num == 7);
    for (const char* junk :
         {"--bogus=1", "--events", "events=1", "--events=x", "--events=1K", "--memory-oper=copy",
          "--cpu-max-prime=0", "--events=99999999999999999999", "--memory-block-size=12"}) {
        sb_options_default(&o);
        INFO(junk);
        CHECK_FALSE(sb_parse_options(junk, &o, &bad));
    }
    CHECK(parse_test("mutex") == Test::mutex);
    CHECK_FALSE(parse_test("fileio"));
    CHECK_THROWS_AS(run_native(Test::cpu, "--nope=1"), std::invalid_argument);
    CHECK_THROWS_AS(run_native(Test::cpu, "--events=0 --time=0"), std::invalid_argument);
}

TEST_CASE("latency histogram buckets bound their values", "[workloads]") {
    for (std::uint64_t v : {0ull, 1ull, 7ull, 8ull, 15ull, 16ull, 17ull, 1000ull, 123456789ull,
                            (1ull << 40) + 12345, ~0ull}) {
        INFO(v);
        auto b = sb_hist_bucket(v);
        REQUIRE(b < SB_HIST_BUCKETS);
        CHECK(sb_hist_upper(b) >= v);
        if (b > 0) CHECK(sb_hist_upper(b - 1) < v);
    }
}

TEST_CASE("native cpu run: 2261 primes below 20000 on 1 and 2 threads", "[workloads]") {
    unsigned threads = GENERATE(1u, 2u);
    auto r = run_native(Test::cpu, "--cpu-max-prime=20000 --events=8 --time=0", threads);
    CHECK(r.test == "cpu");
    CHECK(r.threads == threads);
    CHECK(r.events == 8);
    CHECK(r.check == 2261);
    CHECK(r.lat_min_ns > 0);
    CHECK(r.lat_min_ns <= r.lat_avg_ns);
    CHECK(r.lat_avg_ns <= r.lat_max_ns);
    CHECK(r.lat_min_ns <= r.lat_p95_ns);
    CHECK(r.lat_p95_ns <= r.lat_max_ns);
    CHECK(r.time_ns >= r.lat_max_ns);
    CHECK(r.fairness_events_avg == Approx(8.0 / threads));
    check_line_round_trip(r);
}

TEST_CASE("native memory write/read checksums and large-region touch", "[workloads]") {
    const std::string sizes = "--memory-block-size=8K --memory-total-size=4M --time=0";
    auto scope = GENERATE(as<std::string>{}, "global", "local");
    unsigned threads = 2;
    INFO("scope " << scope);
    auto w =
        run_native(Test::memory, sizes + " --memory-oper=write --memory-scope=" + scope, threads);
    CHECK(w.events == 512);
    CHECK(w.check == (8192 / 8) * SB_MEM_WRITE_VALUE);
    auto r =
        run_native(Test::memory, sizes + " --memory-oper=read --memory-scope=" + scope, threads);
    CHECK(r.events == 512);
    CHECK(r.check == 512 * pattern_sum(8192));
    // --events caps the run below total/block.
    auto capped = run_native(Test::memory, sizes + " --memory-oper=read --events=10", threads);
    CHECK(capped.events == 10);
    CHECK(capped.check == 10 * pattern_sum(8192));

    auto t = run_native(Test::memory,
                        "--memory-oper=touch --memory-block-size=64K --memory-total-size=8M "
                        "--time=0",
                        threads);
    CHECK(t.events == 128);
    CHECK(t.check == (8u << 20) / 4096);
    auto odd = run_native(Test::memory,
                          "--memory-oper=touch --memory-block-size=8K --memory-total-size=20000 "
                          "--time=0",
                          1);
    CHECK(odd.events == 3);
    CHECK(odd.check == 5); // ceil(20000 / 4096)
}

TEST_CASE("native mutex and threads lose no updates on 2 threads", "[workloads]") {
    auto m =
        run_native(Test::mutex, "--mutex-num=4 --mutex-locks=20000 --mutex-loops=50 --time=0", 2);
    CHECK(m.events == 2); // sysbench: one event per thread
    CHECK(m.check == 2 * 20000);
    auto m2 = run_native(
        Test::mutex, "--mutex-num=2 --mutex-locks=1000 --mutex-loops=10 --events=20 --time=0", 2);
    CHECK(m2.events == 20);
    CHECK(m2.check == 20 * 1000);
    auto t =
        run_native(Test::threads, "--thread-locks=2 --thread-yields=50 --events=200 --time=0", 2);
    CHECK(t.events == 200);
    CHECK(t.check == 200 * 50);
    check_line_round_trip(t);
    auto s = run_native(Test::threads,
                        "--thread-locks=2 --thread-yields=50 --thread-yield=sched --events=200 "
                        "--time=0",
                        2);
    CHECK(s.check == 200 * 50);
    CHECK_THROWS_AS(run_native(Test::threads, "--thread-yield=spin --events=1", 2),
                    std::invalid_argument);
}

TEST_CASE("a time-limited native run stops by itself", "[workloads]") {
    auto r = run_native(Test::threads, "--thread-yields=10 --time=1", 2);
    CHECK(r.events > 0);
    CHECK(r.check == r.events * 10);
    CHECK(r.time_ns >= 1000000000ull);
    CHECK(r.time_ns < 3000000000ull);
}

TEST_CASE("result lines parse from guest output and reject junk", "[workloads]") {
    auto r = parse_result_line(
        "noise\nsb-result test=cpu threads=2 events=100 time_ns=5 lat_min_ns=1 lat_avg_ns=2 "
        "lat_max_ns=3 lat_p95_ns=3 lat_sum_ns=200 check=2261 fairness_events_avg=50.000 "
        "fairness_events_stddev=1.500 fairness_time_avg_ns=100 fairness_time_stddev_ns=7\nmore\n");
    REQUIRE(r);
    CHECK(r->test == "cpu");
    CHECK(r->events == 100);
    CHECK(r->check == 2261);
    CHECK(r->fairness_events_stddev == 1.5);
    CHECK(r->lat_sum_ns == 200);
    CHECK(r->fairness_time_avg_ns == 100);
    CHECK(r->fairness_time_stddev_ns == 7);
    // a line without the sum and the time fairness (an older guest) is refused
    CHECK_FALSE(parse_result_line(
        "sb-result test=cpu threads=2 events=100 time_ns=5 lat_min_ns=1 lat_avg_ns=2 "
        "lat_max_ns=3 lat_p95_ns=3 check=2261 fairness_events_avg=50.000 "
        "fairness_events_stddev=1.500"));
    CHECK_FALSE(parse_result_line("hello"));
    CHECK_FALSE(parse_result_line("sb-result test=cpu events=1"));
    CHECK_FALSE(parse_result_line(
        "sb-result test=cpu threads=x events=100 time_ns=5 lat_min_ns=1 lat_avg_ns=2 "
        "lat_max_ns=3 lat_p95_ns=3 check=2261 fairness_events_avg=50.000 "
        "fairness_events_stddev=1.500"));
}

TEST_CASE("sysbench 1.0 reports parse into results", "[workloads]") {
    // The shape of `sysbench cpu --threads=2 --time=2 run` on Debian 12.
    const char* text = "sysbench 1.0.20 (using system LuaJIT 2.1.0-beta3)\n\n"
                       "CPU speed:\n    events per second:  2561.66\n\n"
                       "General statistics:\n"
                       "    total time:                          2.0008s\n"
                       "    total number of events:              5129\n\n"
                       "Latency (ms):\n"
                       "         min:                                    0.76\n"
                       "         avg:                                    0.78\n"
                       "         max:                                    1.52\n"
                       "         95th percentile:                        0.83\n"
                       "         sum:                                 3999.47\n";
    auto r = minivmm::workloads::parse_sysbench_report(text, "cpu", 2);
    REQUIRE(r);
    CHECK(r->test == "cpu");
    CHECK(r->threads == 2);
    CHECK(r->events == 5129);
    CHECK(r->time_ns == 2000800000ull);
    CHECK(r->lat_avg_ns == 780000ull);
    CHECK(r->lat_p95_ns == 830000ull);
    CHECK_FALSE(minivmm::workloads::parse_sysbench_report("FATAL: unknown option", "cpu", 2));
    CHECK_FALSE(minivmm::workloads::parse_sysbench_report(
        "total time: 0s\ntotal number of events: 5\navg: 1\n95th percentile: 1\n", "cpu", 2));
}
