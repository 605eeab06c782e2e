// minivmm-bench control end to end (src/bench/control_bench.*): one short
// round under one policy, checked for correctness (every figure was
// measured), not for speed; and its usage errors.
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
                                       std::chrono::milliseconds limit = 120s) {
    std::vector<std::string> argv{MINIVMM_BENCH_PATH, "control"};
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
