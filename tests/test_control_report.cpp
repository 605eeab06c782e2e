// minivmm-bench control's report (src/bench/control_report.hpp) on fixed
// samples: the table's figures, the verdict, the policy comparison, the JSON.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>
#include <vector>

#include "bench/control_report.hpp"
#include "bench/emulated.hpp"

using Catch::Matchers::Contains;
using minivmm::bench::compare_policies;
using minivmm::bench::control_report_json;
using minivmm::bench::ControlReport;
using minivmm::bench::ControlRound;
using minivmm::bench::ControlSeries;
using minivmm::bench::render_control_table;

namespace {

// Rounds whose guest runs 1 s at `baseline` / `loaded` events/s and whose
// hotplug client completed `trips` round trips in 1 s, each of 1 ms.
ControlSeries series(const std::string& policy, const std::vector<double>& baseline,
                     const std::vector<double>& loaded, const std::vector<std::uint64_t>& trips) {
    ControlSeries s{policy, {}};
    for (std::size_t i = 0; i < baseline.size(); ++i) {
        ControlRound r;
        r.round = static_cast<unsigned>(i);
        r.loaded_first = i % 2 == 1;
        r.baseline = {static_cast<std::uint64_t>(baseline[i]), 1'000'000'000, 42};
        r.loaded.guest = {static_cast<std::uint64_t>(loaded[i]), 1'000'000'000, 42};
        r.loaded.round_trips = trips[i];
        r.loaded.hotplug_seconds = 1;
        r.loaded.round_trip_ns.assign(trips[i], 1e6);
        r.loaded.add_ns.assign(trips[i], 4e5);
        r.loaded.remove_ns.assign(trips[i], 6e5);
        r.loaded.query_stats_ns = {50e3, 60e3, 70e3, 2e6};
        r.loaded.vmm.lock_contended = 3;
        r.loaded.vmm.adds = trips[i];
        r.loaded.vmm.removes = trips[i];
        r.loaded.vmm.add_p50_ns = 262144;
        s.rounds.push_back(std::move(r));
    }
    return s;
}

ControlReport fixed_report() {
    ControlReport r;
    r.repeat = 3;
    r.time_s = 1;
    r.guest = "sb_memory.bin";
    r.guest_options = "--memory-oper=write";
    r.mem = "256M";
    r.hotplug_gpa = 4ull << 30;
    r.hotplug_size = 64ull << 20;
    r.host = "test host";
    // per-listener: the guest 10% slower under load; rcu: no difference.
    r.policies.push_back(
        series("per-listener", {1000, 1010, 990}, {900, 909, 891}, {100, 110, 105}));
    r.policies.push_back(series("rcu", {1000, 1010, 990}, {1010, 990, 1000}, {200, 210, 205}));
    return r;
}

} // namespace

TEST_CASE("control report: table figures and verdicts", "[control_report]") {
    auto r = fixed_report();
    auto table = render_control_table(r);
    CHECK_THAT(table, Contains("policy per-listener"));
    CHECK_THAT(table, Contains("hotplug round trips/s     105.0 [100.0..110.0]   (315 in all)"));
    CHECK_THAT(table, Contains("round-trip latency        p50 1.00 ms, p99 1.00 ms, max 1.00 ms"));
    CHECK_THAT(table, Contains("guest slower by 10.0%"));
    CHECK_THAT(table, Contains("no measurable difference"));
    CHECK_THAT(table, Contains("query-stats latency       p50 60.00 us, p99 2.00 ms, max 2.00 ms"));
    CHECK_THAT(table, Contains("3 contended acquisitions"));
    CHECK_THAT(table, Contains("memory-add in the VMM: 105 counted, p50 <= 262.14 us"));
    CHECK_THAT(table, Contains("gpa=0x100000000 size=64 MiB"));
    CHECK(compare_policies(r) ==
          "round trips/s by policy (median of rounds): per-listener 105.0, rcu 205.0; fastest "
          "rcu = 1.95x slowest per-listener (their [min..max] ranges do not overlap)");
}

TEST_CASE("control report: overlapping ranges and a single policy", "[control_report]") {
    auto r = fixed_report();
    r.policies[1] = series("rcu", {1000, 1010, 990}, {1000, 1010, 990}, {100, 115, 108});
    CHECK_THAT(compare_policies(r), Contains("ranges overlap: no clear difference"));
    r.policies.pop_back();
    CHECK(compare_policies(r).empty());
    CHECK_THAT(render_control_table(r), !Contains("by policy"));
}

TEST_CASE("control report: JSON has every sample and the summaries", "[control_report]") {
    auto j = control_report_json(fixed_report());
    REQUIRE(j["policies"].size() == 2);
    const auto& p = j["policies"][0];
    CHECK(p["policy"] == "per-listener");
    REQUIRE(p["rounds"].size() == 3);
    CHECK(p["rounds"][1]["loaded_first"] == true);
    CHECK(p["rounds"][0]["loaded"]["round_trip_ns"].size() == 100);
    CHECK(p["rounds"][0]["loaded"]["round_trips_per_s"] == 100.0);
    CHECK(p["rounds"][0]["baseline"]["events_per_s"] == 1000.0);
    CHECK(p["summary"]["slowdown"]["per_round"].size() == 3);
    CHECK(p["summary"]["slowdown"]["median"].get<double>() == Approx(0.1));
    CHECK(p["summary"]["slowdown"]["ci_valid"] == true);
    CHECK(p["summary"]["query_stats_ns"]["max_ns"] == 2e6);
    CHECK(j["policy_comparison"].get<std::string>().find("rcu") != std::string::npos);
}

TEST_CASE("control report: refuses a policy without round trips", "[control_report]") {
    auto r = fixed_report();
    r.policies[0].rounds[0].loaded.round_trip_ns.clear();
    r.policies[0].rounds[1].loaded.round_trip_ns.clear();
    r.policies[0].rounds[2].loaded.round_trip_ns.clear();
    CHECK_THROWS_WITH(render_control_table(r), Contains("no round trip"));
}

TEST_CASE("control report: a real KVM's report has no emulated mark", "[control_report]") {
    auto r = fixed_report();
    CHECK_THAT(render_control_table(r), !Contains("EMULATED") && !Contains("[emulated]"));
    auto j = control_report_json(r);
    CHECK(j.at("kvm_flavor") == "hardware");
    CHECK(j.at("emulated") == false);
    CHECK(j["policies"][0].at("emulated") == false);
}

TEST_CASE("control report: on an emulated KVM every figure is marked", "[control_report]") {
    auto r = fixed_report();
    r.kvm_flavor = "emulated";
    r.wall_seconds = 12.5;
    // Table: the banner first, then every row with a measured figure ends
    // with the mark.
    std::istringstream in(render_control_table(r));
    std::string line;
    REQUIRE(std::getline(in, line));
    CHECK(line == minivmm::bench::kEmulatedBanner);
    std::size_t figure_rows = 0;
    const std::string mark(minivmm::bench::kEmulatedSuffix);
    while (std::getline(in, line)) {
        bool figures = false;
        for (const char* prefix :
             {"  hotplug round trips/s", "  round-trip latency", "  guest events/s baseline",
              "  guest events/s loaded", "  guest slowdown", "  query-stats latency",
              "    slot lock:", "    memory-add in the VMM:", "round trips/s by policy",
              "wall time"})
            figures = figures || line.rfind(prefix, 0) == 0;
        INFO(line);
        const bool marked = line.size() >= mark.size() &&
                            line.compare(line.size() - mark.size(), mark.size(), mark) == 0;
        CHECK(figures == marked);
        figure_rows += figures;
    }
    CHECK(figure_rows == 2 * 8 + 2); // 8 per policy, the comparison, the wall time

    // JSON: the flavor at the top, the mark on every policy, round and summary.
    auto j = control_report_json(r);
    CHECK(j.at("kvm_flavor") == "emulated");
    CHECK(j.at("emulated") == true);
    REQUIRE(j.at("policies").size() == 2);
    std::size_t rounds = 0;
    for (const auto& p : j["policies"]) {
        CHECK(p.at("emulated") == true);
        CHECK(p.at("summary").at("emulated") == true);
        for (const auto& x : p.at("rounds")) {
            CHECK(x.at("emulated") == true);
            ++rounds;
        }
    }
    CHECK(rounds == 6);
}
