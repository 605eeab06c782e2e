// minivmm-bench overhead's options (src/bench/overhead_cli.hpp): what
// --program=sysbench accepts, and the options that do not apply to what runs,
// refused with one line rather than ignored.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "bench/overhead_cli.hpp"

using minivmm::bench::add_overhead_options;
using minivmm::bench::finish_overhead_options;
using minivmm::bench::OverheadCli;
using minivmm::bench::OverheadOptions;

namespace {

// The usage error of `minivmm-bench overhead ARGS` ("" when accepted; a
// CLI11 parse error as "parse: ..."), the parsed options in `out`.
std::string usage_error(const std::string& args, OverheadOptions* out = nullptr) {
    CLI::App app{"test"};
    auto* ov = app.add_subcommand("overhead");
    OverheadCli cli;
    add_overhead_options(*ov, cli);
    try {
        app.parse("overhead " + args, false);
    } catch (const CLI::ParseError& e) {
        return std::string("parse: ") + e.what();
    }
    auto err = finish_overhead_options(cli);
    if (out) *out = cli.options;
    return err;
}

} // namespace

TEST_CASE("overhead options: --program=sysbench runs the five tests at 1 and 2 threads",
          "[unit][overhead]") {
    OverheadOptions o;
    REQUIRE(usage_error("--program=sysbench", &o).empty());
    CHECK(o.program == "sysbench");
    CHECK(o.tests == std::vector<std::string>{"cpu", "memory", "fileio", "mutex", "threads"});
    CHECK(o.thread_counts == std::vector<unsigned>{1, 2});
    CHECK(o.sysbench == "sysbench");
    CHECK(o.program_options.empty());

    REQUIRE(usage_error("--program sysbench --threads 1,2,4 --tests cpu,mutex --repeat 3 --time 1 "
                        "--sysbench /usr/bin/sysbench --program-option mutex:--mutex-locks=100 "
                        "--program-option=cpu:--cpu-max-prime=2000 --verbose --json x.json "
                        "--html x.html",
                        &o)
                .empty());
    CHECK(o.thread_counts == std::vector<unsigned>{1, 2, 4});
    CHECK(o.tests == std::vector<std::string>{"cpu", "mutex"});
    CHECK(o.sysbench == "/usr/bin/sysbench");
    CHECK(o.program_options ==
          std::vector<std::string>{"mutex:--mutex-locks=100", "cpu:--cpu-max-prime=2000"});
    CHECK(o.repeat == 3);
    CHECK(o.time_s == 1);

    // fileio's own options keep their meaning.
    REQUIRE(usage_error("--program=sysbench --tests fileio --file-total-size 4M --file-dir .", &o)
                .empty());
    CHECK(o.file_total_size == 4u << 20);
    CHECK(o.file_dir == ".");
}

TEST_CASE("overhead options: what --program=sysbench cannot use is refused in one line",
          "[unit][overhead]") {
    struct Case {
        const char* args;
        const char* error;
    };
    const Case cases[] = {
        {"--lock=rcu", "--lock: not with --program=sysbench: minivmm-run --linux has no --lock"},
        {"--lock global", "--lock: not with --program=sysbench"},
        {"--knob=--thp", "--knob: not with --program=sysbench"},
        {"--memory-region=64M", "--memory-region: not with --program=sysbench"},
        {"--tests cpu,memory-write", "--tests memory-write: not with --program=sysbench"},
        {"--tests memory-touch", "--tests memory-touch: not with --program=sysbench"},
        {"--sysbench none", "--sysbench none: with --program=sysbench it names the binary"},
        {"--threads 2,1,2", "--threads lists 2 twice"},
        {"--program-option bogus", "--program-option bogus: not TEST:--option[=value]"},
        {"--program-option cpu:prime", "--program-option cpu:prime: not TEST:--option[=value]"},
        {"--program-option oltp:--x=1", "oltp is not one of sysbench's tests"},
        {"--program-option cpu:--threads=4", "--threads is set by minivmm-bench's own --threads"},
        {"--program-option cpu:--time=5", "--time is set by minivmm-bench's own --time"},
        {"--program-option fileio:--file-total-size=1M",
         "--file-total-size is set by minivmm-bench's own --file-total-size"},
        {"--tests cpu --program-option mutex:--mutex-locks=1",
         "--program-option mutex:--mutex-locks=1: needs mutex in --tests"},
        {"--tests cpu --file-total-size 4M", "--file-total-size needs fileio in --tests"},
        {"--tests cpu --file-dir .", "--file-dir needs fileio in --tests"},
    };
    for (const auto& c : cases) {
        const std::string args = std::string("--program=sysbench ") + c.args;
        INFO(args);
        const auto err = usage_error(args);
        CHECK_THAT(err, Catch::Matchers::Contains(c.error));
        CHECK(err.find('\n') == std::string::npos);
        CHECK(err.rfind("parse: ", 0) == std::string::npos);
    }
    // Not a program it knows, and no bad thread count: CLI11's own checks.
    CHECK(usage_error("--program=fio").rfind("parse: ", 0) == 0);
    CHECK(usage_error("--program=sysbench --threads 0").rfind("parse: ", 0) == 0);
}

TEST_CASE("overhead options: without --program, one thread count and no program options",
          "[unit][overhead]") {
    OverheadOptions o;
    REQUIRE(usage_error("", &o).empty());
    CHECK(o.program.empty());
    CHECK(o.threads == 2);
    REQUIRE(usage_error("--threads 3 --lock per-listener,rcu", &o).empty());
    CHECK(o.threads == 3);
    CHECK(o.policies == std::vector<std::string>{"per-listener", "rcu"});
    CHECK(usage_error("--threads 1,2") ==
          "--threads: one count (a list only with --program=sysbench)");
    CHECK(usage_error("--program-option cpu:--cpu-max-prime=10") ==
          "--program-option: only with --program=sysbench");
    // The checks that were there before --program.
    CHECK(usage_error("--tests cpu --memory-region 64M") ==
          "--memory-region needs memory or memory-touch in --tests");
    CHECK(usage_error("--tests mutex --sysbench none") ==
          "--sysbench needs cpu, memory or threads in --tests");
    CHECK(usage_error("--tests cpu --file-total-size 4M") ==
          "--file-total-size needs fileio in --tests");
    CHECK(usage_error("--full --time 3").rfind("parse: ", 0) == 0);
}
