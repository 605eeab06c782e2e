// The sysbench-style workload guests (sb_cpu, sb_memory, sb_mutex,
// sb_threads) against the same cores run natively (minivmm_workloads).
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

#include "kvm_support.hpp"
#include "native_workloads.hpp"
#include "sb_run.h"

using minivmm::VmExit;
using minivmm::test::describe;
using minivmm::test::GuestOptions;
using minivmm::test::run_guest;
using minivmm::workloads::parse_result_line;
using minivmm::workloads::Result;
using minivmm::workloads::run_native;
using minivmm::workloads::Test;

namespace {

Result run_sb_guest(const std::string& image, const std::string& cmdline, unsigned vcpus) {
    auto run = run_guest(GuestOptions(image, cmdline).with_vcpus(vcpus).with_mem(64ull << 20));
    INFO(image << " " << cmdline << " on " << vcpus << " vCPUs");
    INFO("exit: " << describe(run.exit));
    INFO("console:\n" << run.console);
    REQUIRE(run.exit.kind == VmExit::Kind::guest_exit);
    REQUIRE(run.exit.code == 0);
    auto r = parse_result_line(run.console);
    REQUIRE(r);
    CHECK(r->threads == vcpus);
    // Before the line, the guest printed sysbench's report of the run: the
    // same text the native formatter makes of that line.
    CHECK(run.console.rfind(minivmm::workloads::format_report(*r, cmdline), 0) == 0);
    CHECK(r->lat_sum_ns >= r->events * r->lat_min_ns);
    CHECK(r->lat_sum_ns <= r->events * r->lat_max_ns);
    CHECK(r->fairness_time_avg_ns == r->lat_sum_ns / vcpus);
    return *r;
}

} // namespace

TEST_CASE("sb_cpu guest finds 2261 primes below 20000 on 1 and 2 vCPUs", "[kvm][workloads]") {
    unsigned vcpus = GENERATE(1u, 2u);
    auto r = run_sb_guest("sb_cpu.bin", "--cpu-max-prime=20000 --events=10 --time=0", vcpus);
    CHECK(r.test == "cpu");
    CHECK(r.events == 10);
    CHECK(r.check == 2261);
    CHECK(r.check ==
          run_native(Test::cpu, "--cpu-max-prime=20000 --events=2 --time=0", vcpus).check);
    CHECK(r.lat_min_ns <= r.lat_p95_ns);
    CHECK(r.lat_p95_ns <= r.lat_max_ns);
}

TEST_CASE("sb_memory guest checksums match the native run", "[kvm][workloads]") {
    const std::string sizes = "--memory-block-size=8K --memory-total-size=4M --time=0";
    for (const char* oper : {"write", "read"}) {
        for (const char* scope : {"global", "local"}) {
            std::string cmdline = sizes + " --memory-oper=" + oper + " --memory-scope=" + scope;
            INFO(cmdline);
            auto g = run_sb_guest("sb_memory.elf", cmdline, 2);
            auto n = run_native(Test::memory, cmdline, 2);
            CHECK(g.events == 512);
            CHECK(g.events == n.events);
            CHECK(g.check == n.check);
            CHECK(g.check != 0);
        }
    }
}

TEST_CASE("sb_memory guest touches every page of a large region once", "[kvm][workloads]") {
    auto r = run_sb_guest("sb_memory.bin",
                          "--memory-oper=touch --memory-block-size=1M --memory-total-size=16M "
                          "--time=0",
                          2);
    CHECK(r.events == 16);
    CHECK(r.check == (16u << 20) / 4096);
}

TEST_CASE("sb_mutex and sb_threads guests lose no updates on 2 vCPUs", "[kvm][workloads]") {
    auto m = run_sb_guest("sb_mutex.bin",
                          "--mutex-num=4 --mutex-locks=20000 --mutex-loops=50 --time=0", 2);
    CHECK(m.events == 2);
    CHECK(m.check == 2 * 20000);
    auto m2 =
        run_sb_guest("sb_mutex.bin",
                     "--mutex-num=2 --mutex-locks=1000 --mutex-loops=10 --events=20 --time=0", 2);
    CHECK(m2.events == 20);
    CHECK(m2.check == 20 * 1000);
    auto t = run_sb_guest("sb_threads.bin",
                          "--thread-locks=2 --thread-yields=50 --events=200 --time=0", 2);
    CHECK(t.events == 200);
    CHECK(t.check == 200 * 50);
    // --thread-yield=sched: every yield is the yield hypercall (an exit on
    // which the vCPU thread calls sched_yield()) while holding the lock.
    auto s = run_sb_guest(
        "sb_threads.bin",
        "--thread-locks=2 --thread-yields=5 --thread-yield=sched --events=40 --time=0", 2);
    CHECK(s.events == 40);
    CHECK(s.check == 40 * 5);
}

TEST_CASE("sb guests reject bad options and oversized runs", "[kvm][workloads]") {
    auto bad = run_guest(GuestOptions("sb_cpu.bin", "--cpu-max-prime=abc"));
    CHECK(bad.exit.kind == VmExit::Kind::guest_exit);
    CHECK(bad.exit.code == 2);
    CHECK(bad.console.find("bad option at '--cpu-max-prime=abc'") != std::string::npos);
    auto threads = run_guest(GuestOptions("sb_cpu.bin", "--threads=3 --events=1").with_vcpus(2));
    CHECK(threads.exit.code == 2);
    auto big = run_guest(
        GuestOptions("sb_memory.bin", "--memory-oper=touch --memory-total-size=1G --time=0"));
    CHECK(big.exit.kind == VmExit::Kind::guest_exit);
    CHECK(big.exit.code == 3);
}

TEST_CASE("gaps guest: every vCPU spins for the time asked and reports its gaps",
          "[kvm][workloads]") {
    auto run = run_guest(GuestOptions("gaps.bin", "200 2000").with_vcpus(2).with_mem(64ull << 20));
    INFO(describe(run.exit) << "\n" << run.console);
    REQUIRE(run.exit.kind == VmExit::Kind::guest_exit);
    REQUIRE(run.exit.code == 0);
    unsigned long vcpus = 0, spun = 0, gaps = 0, lost = 0, max = 0, over10 = 0, over100 = 0;
    auto at = run.console.find("gaps: ");
    REQUIRE(at != std::string::npos);
    REQUIRE(std::sscanf(run.console.c_str() + at,
                        "gaps: vcpus=%lu spun=%lu gaps=%lu lost=%lu max=%lu over10=%lu "
                        "over100=%lu",
                        &vcpus, &spun, &gaps, &lost, &max, &over10, &over100) == 7);
    CHECK(vcpus == 2);
    // 2 x 200 ms of TSC cycles (the native calibration of the same TSC)
    const double want = 2 * 0.2 * static_cast<double>(minivmm::workloads::tsc_khz()) * 1e3;
    CHECK(static_cast<double>(spun) == Approx(want).epsilon(0.02));
    CHECK(lost <= spun);
    CHECK(max <= lost);
    CHECK(over100 <= over10);
    CHECK(over10 <= gaps);
    // bad command lines are refused with a usage line
    for (const char* bad : {"x", "0 2000", "100 y"}) {
        auto b = run_guest(GuestOptions("gaps.bin", bad).with_mem(64ull << 20));
        CHECK(b.exit.code == 2);
        CHECK_THAT(b.console, Catch::Matchers::Contains("gaps: "));
    }
}
