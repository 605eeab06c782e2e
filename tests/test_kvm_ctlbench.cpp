// minivmm-bench end to end: control (src/bench/control_bench.*), one short
// round under one policy, and overhead (src/bench/overhead_bench.*), short
// rounds of a few rows; checked for correctness (every figure was measured,
// every run reported), not for speed; and their usage errors.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "kvm_support.hpp"

using json = nlohmann::json;
using minivmm::test::Child;
using minivmm::test::describe;
using namespace std::chrono_literals;

namespace {

minivmm::test::ProcessResult run_bench(const std::vector<std::string>& args,
                                       std::chrono::milliseconds limit = 120s,
                                       const std::string& command = "control") {
    std::vector<std::string> argv{MINIVMM_BENCH_PATH, command};
    argv.insert(argv.end(), args.begin(), args.end());
    Child child(argv);
    return child.finish(limit);
}

} // namespace

TEST_CASE("minivmm-bench control: one round under load measures every figure", "[ctlbench]") {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/minivmm-ctlbench-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    const std::string json_path = tmpl + "/control.json";
    auto r = run_bench({"--repeat", "1", "--time", "1", "--lock", "global", "--json", json_path});
    INFO(describe(r));
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, Catch::Matchers::Contains("policy global"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("hotplug round trips/s"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("query-stats latency"));

    std::ifstream in(json_path);
    REQUIRE(in);
    json j = json::parse(in);
    std::filesystem::remove_all(tmpl);
    REQUIRE(j.at("policies").size() == 1);
    const auto& p = j["policies"][0];
    CHECK(p.at("policy") == "global");
    REQUIRE(p.at("rounds").size() == 1);
    const auto& round = p["rounds"][0];
    const auto& loaded = round.at("loaded");
    CHECK(loaded.at("round_trips").get<std::uint64_t>() > 0);
    CHECK(loaded.at("round_trips_per_s").get<double>() > 0);
    CHECK(loaded.at("round_trip_ns").size() == loaded.at("round_trips").get<std::size_t>());
    for (const auto& ns : loaded.at("round_trip_ns"))
        CHECK(ns.get<double>() > 0);
    CHECK(round.at("baseline").at("events").get<std::uint64_t>() > 0);
    CHECK(round.at("baseline").at("events_per_s").get<double>() > 0);
    CHECK(loaded.at("guest").at("events").get<std::uint64_t>() > 0);
    CHECK(loaded.at("guest").at("events_per_s").get<double>() > 0);
    REQUIRE(!loaded.at("query_stats_ns").empty());
    for (const auto& ns : loaded.at("query_stats_ns"))
        CHECK(ns.get<double>() > 0);
    // The VMM's own counters, from a query-stats answered while the guest ran.
    CHECK(loaded.at("vmm").at("memory_adds").get<std::uint64_t>() > 0);
    CHECK(loaded.at("vmm").at("query_stats").at("slot_lock").at("policy") == "global");
    const auto& s = p.at("summary");
    CHECK(s.at("round_trips_per_s").at("median").get<double>() > 0);
    CHECK(s.at("query_stats_ns").at("p50_ns").get<double>() > 0);
    CHECK(s.at("slowdown").at("verdict") == "one round: no confidence interval");
}

TEST_CASE("minivmm-bench control: bad usage is one line and status 2", "[ctlbench]") {
    for (const auto& args :
         std::vector<std::vector<std::string>>{{"--repeat", "0"},
                                               {"--lock", "bogus"},
                                               {"--lock", "global,global"},
                                               {"--time", "x"},
                                               {"--json", "/nonexistent-dir/x.json"},
                                               {"--no-such-option"}}) {
        auto r = run_bench(args, 20s);
        INFO(args.front() << " " << args.back() << ": " << describe(r));
        CHECK(r.status == 2);
        CHECK(r.out.empty());
        CHECK(minivmm::test::line_count(r.err) == 1);
    }
}

TEST_CASE("minivmm-bench overhead: short rounds, every run reported as sysbench prints it",
          "[ctlbench][overhead]") {
    // fileio needs a disk filesystem: the build tree, not a tmpfs /tmp
    std::string tmpl = (std::filesystem::current_path() / "minivmm-ovbench-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    const std::string json_path = tmpl + "/overhead.json";
    auto r =
        run_bench({"--tests", "cpu,fileio,threads", "--repeat", "2", "--time", "1",
                   "--file-total-size", "4M", "--file-dir", tmpl, "--verbose", "--json", json_path},
                  300s, "overhead");
    INFO(describe(r));
    REQUIRE(r.status == 0);
    std::ifstream in(json_path);
    REQUIRE(in);
    json j = json::parse(in);
    std::filesystem::remove_all(tmpl);
    REQUIRE(j.at("tests").size() == 4); // cpu, fileio, threads, threads-sched
    std::size_t runs = 0;
    for (const auto& t : j["tests"]) {
        const std::string name = t.at("name");
        INFO(name);
        std::vector<const json*> sides{&t.at("native")};
        for (const auto& g : t.at("guests"))
            sides.push_back(&g);
        REQUIRE(sides.size() == 2);
        for (const json* side : sides) {
            REQUIRE(side->at("samples").size() == 2);
            for (const auto& s : side->at("samples")) {
                ++runs;
                const auto events = s.at("events").get<double>();
                CHECK(events > 0);
                CHECK(s.at("lat_min_ns").get<double>() <= s.at("lat_avg_ns").get<double>());
                CHECK(s.at("lat_avg_ns").get<double>() <= s.at("lat_max_ns").get<double>());
                CHECK(s.at("lat_p95_ns").get<double>() <= s.at("lat_max_ns").get<double>());
                // the sum is every event's latency, the average its mean
                CHECK(s.at("lat_sum_ns").get<double>() ==
                      Approx(events * s.at("lat_avg_ns").get<double>()).epsilon(0.01));
                // fairness: per thread, over the 2 threads
                CHECK(s.at("fairness_events_avg").get<double>() * 2 == Approx(events));
                CHECK(s.at("fairness_time_avg_ns").get<double>() * 2 ==
                      Approx(s.at("lat_sum_ns").get<double>()).epsilon(0.001));
                CHECK(s.at("fairness_time_avg_ns").get<double>() <= s.at("time_ns").get<double>());
            }
        }
    }
    // --verbose: each of those runs printed its report (native, guest and,
    // where sysbench is installed, sysbench's own), in sysbench's layout
    std::size_t reports = 0, headers = 0;
    for (std::size_t at = 0; (at = r.out.find("\nGeneral statistics:\n", at)) != std::string::npos;
         ++at)
        ++reports;
    for (std::size_t at = 0; (at = r.out.find("=== ", at)) != std::string::npos; ++at)
        ++headers;
    CHECK(headers == reports);
    CHECK(reports >= runs);
    CHECK_THAT(r.out, Catch::Matchers::Contains("=== cpu round 1/2: native ===\n"
                                                "Running the test with following options:\n"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("=== fileio round 2/2: guest global ===\n"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("Threads fairness:\n    events (avg/stddev):"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("File operations:\n    reads/s:"));
    // then the table
    CHECK_THAT(r.out, Catch::Matchers::Contains("overhead, guest global: median of rounds"));
}
