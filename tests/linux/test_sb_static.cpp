// sb_static (src/bench/workloads/sb_static.c), the workload cores as an
// ordinary static Linux program, run natively: its output is what the
// native runner (src/bench/workloads/) prints for the same result, read with
// the same parser, and its checks (prime counts, checksums, lock counters,
// verified reads) are the native runner's for the same options.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "fileio_native.hpp"
#include "native_workloads.hpp"

using minivmm::workloads::format_report;
using minivmm::workloads::format_result;
using minivmm::workloads::parse_result_line;
using minivmm::workloads::run_native;
using minivmm::workloads::Test;

namespace {

struct Run {
    int status = -1; // exit status, or -1 when it did not exit
    std::string out;
};

std::vector<std::string> binaries() {
    std::vector<std::string> b{MINIVMM_SB_STATIC_GLIBC};
#ifdef MINIVMM_SB_STATIC_MUSL
    b.emplace_back(MINIVMM_SB_STATIC_MUSL);
#endif
    return b;
}

// Runs `binary args` in `dir`, stdout captured (stderr passes through).
Run run(const std::string& binary, const std::string& args, const std::string& dir = ".") {
    std::string command = "cd '" + dir + "' && exec '" + binary + "' " + args;
    FILE* child = popen(command.c_str(), "r");
    REQUIRE(child != nullptr);
    Run r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, child)) > 0)
        r.out.append(buf, n);
    int status = pclose(child);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

// The whole output is the report and the result line that the native
// runner formats from the parsed result: the same text, field for field.
minivmm::workloads::Result parse_whole(const Run& r, const std::string& options) {
    INFO(r.out);
    REQUIRE(r.status == 0);
    auto parsed = parse_result_line(r.out);
    REQUIRE(parsed);
    CHECK(r.out == format_report(*parsed, options) + format_result(*parsed));
    CHECK(parsed->threads == 1);
    CHECK(parsed->time_ns > 0);
    CHECK(parsed->lat_avg_ns > 0);
    CHECK(parsed->lat_min_ns <= parsed->lat_avg_ns);
    CHECK(parsed->lat_avg_ns <= parsed->lat_max_ns);
    CHECK(parsed->lat_sum_ns <= parsed->time_ns);
    return *parsed;
}

} // namespace

TEST_CASE("sb_static cpu: the native runner's output and prime count", "[sb_static]") {
    const std::string options = "--cpu-max-prime=2000 --events=20 --time=0";
    for (const auto& bin : binaries()) {
        INFO(bin);
        auto r = parse_whole(run(bin, "cpu " + options), options);
        CHECK(r.test == "cpu");
        CHECK(r.events == 20);
        CHECK(r.check == 302); // the primes in [3, 2000)
        CHECK(r.check == run_native(Test::cpu, options, 1).check);
    }
}

TEST_CASE("sb_static memory, mutex, threads: the native runner's checks", "[sb_static]") {
    struct Case {
        Test test;
        const char* name;
        std::string options;
    };
    const Case cases[] = {
        {Test::memory, "memory", "--memory-block-size=4K --memory-total-size=1M --time=0"},
        {Test::memory, "memory",
         "--memory-block-size=8K --memory-total-size=1M --memory-oper=read --time=0"},
        {Test::memory, "memory",
         "--memory-block-size=4K --memory-total-size=256K --memory-oper=touch --time=0"},
        {Test::mutex, "mutex", "--mutex-num=16 --mutex-locks=1000 --mutex-loops=10 --time=0"},
        {Test::threads, "threads", "--events=50 --thread-yields=10 --time=0"},
        {Test::threads, "threads", "--events=20 --thread-yields=5 --thread-yield=sched --time=0"},
    };
    for (const auto& bin : binaries()) {
        for (const auto& c : cases) {
            INFO(bin << " " << c.name << " " << c.options);
            auto r = parse_whole(run(bin, std::string(c.name) + " " + c.options), c.options);
            auto native = run_native(c.test, c.options, 1);
            CHECK(r.test == c.name);
            CHECK(r.events == native.events);
            CHECK(r.check == native.check);
            CHECK(r.check != 0);
        }
    }
}

TEST_CASE("sb_static fileio: files in the current directory, verified, then removed",
          "[sb_static]") {
    const std::string options =
        "--file-num=4 --file-total-size=1M --file-block-size=4K --events=300 --time=0";
    for (const auto& bin : binaries()) {
        INFO(bin);
        char tmpl[] = "/tmp/minivmm-sb-static-XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        const std::string dir = tmpl;
        auto out = run(bin, "fileio " + options, dir);
        auto native = minivmm::workloads::run_fileio_native(dir, options, 1);
        const bool left_empty = std::filesystem::is_empty(dir);
        std::filesystem::remove_all(dir);
        INFO(out.out);
        CHECK(out.status == 0);
        CHECK(left_empty);
        auto r = parse_result_line(out.out);
        REQUIRE(r);
        CHECK(r->test == "fileio");
        CHECK(r->threads == 1);
        CHECK(r->events == 300);
        CHECK(r->check > 0); // verified reads
        auto n = native.output.find("sb-fileio ");
        REQUIRE(n != std::string::npos);
        // the same reads, writes, fsyncs and verification as the native runner's
        CHECK(out.out.find(native.output.substr(n)) != std::string::npos);
        CHECK(r->check == parse_result_line(native.output)->check);
    }
}

TEST_CASE("sb_static refuses threads and bad options", "[sb_static]") {
    for (const auto& bin : binaries()) {
        INFO(bin);
        CHECK(run(bin, "cpu --threads=2 --events=1 2>/dev/null").status == 2);
        CHECK(run(bin, "cpu --no-such-option=1 2>/dev/null").status == 2);
        CHECK(run(bin, "cpu --events=0 --time=0 2>/dev/null").status == 2);
        CHECK(run(bin, "nosuchtest 2>/dev/null").status == 2);
        CHECK(run(bin, "cpu --threads=1 --events=1 --cpu-max-prime=100").status == 0);
    }
}
