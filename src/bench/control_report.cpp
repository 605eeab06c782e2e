#include "bench/control_report.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "bench/emulated.hpp"
#include "bench/overhead_report.hpp"
#include "bench/stats.hpp"

namespace minivmm::bench {

namespace {

using json = nlohmann::json;

std::vector<double> baseline_rates(const ControlSeries& s) {
    std::vector<double> out;
    for (const auto& r : s.rounds)
        out.push_back(r.baseline.rate());
    return out;
}

std::vector<double> loaded_rates(const ControlSeries& s) {
    std::vector<double> out;
    for (const auto& r : s.rounds)
        out.push_back(r.loaded.guest.rate());
    return out;
}

std::vector<double> round_trip_rates(const ControlSeries& s) {
    std::vector<double> out;
    for (const auto& r : s.rounds)
        out.push_back(r.loaded.round_trips_per_s());
    return out;
}

// Every round's samples of one kind in one vector.
std::vector<double> pooled(const ControlSeries& s, std::vector<double> LoadedRun::*member) {
    std::vector<double> out;
    for (const auto& r : s.rounds)
        out.insert(out.end(), (r.loaded.*member).begin(), (r.loaded.*member).end());
    return out;
}

std::vector<double> per_run(const ControlSeries& s, std::uint64_t VmmStats::*member) {
    std::vector<double> out;
    for (const auto& r : s.rounds)
        out.push_back(static_cast<double>(r.loaded.vmm.*member));
    return out;
}

json summary_json(const Summary& s) {
    return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
}

// p50/p99/max of latency samples (ns); all 0 without samples.
json latency_summary_json(const std::vector<double>& ns) {
    if (ns.empty()) return {{"n", 0}};
    return {{"n", ns.size()},
            {"p50_ns", percentile(ns, 50)},
            {"p99_ns", percentile(ns, 99)},
            {"max_ns", *std::max_element(ns.begin(), ns.end())}};
}

std::string latency_text(const std::vector<double>& ns) {
    return fmt::format("p50 {}, p99 {}, max {}", fmt_ns(percentile(ns, 50)),
                       fmt_ns(percentile(ns, 99)), fmt_ns(*std::max_element(ns.begin(), ns.end())));
}

void check_series(const ControlSeries& s) {
    if (s.rounds.empty()) throw std::invalid_argument("control report: policy without rounds");
    if (pooled(s, &LoadedRun::round_trip_ns).empty())
        throw std::invalid_argument("control report: " + s.policy + ": no round trip");
    if (pooled(s, &LoadedRun::query_stats_ns).empty())
        throw std::invalid_argument("control report: " + s.policy + ": no query-stats sample");
}

std::string size_text(std::uint64_t bytes) {
    if (bytes % (1ull << 30) == 0) return fmt::format("{} GiB", bytes >> 30);
    return fmt::format("{} MiB", bytes >> 20);
}

} // namespace

std::string compare_policies(const ControlReport& r) {
    if (r.policies.size() < 2) return {};
    struct Entry {
        std::string policy;
        Summary s;
    };
    std::vector<Entry> e;
    for (const auto& p : r.policies)
        e.push_back({p.policy, summarize(round_trip_rates(p))});
    std::string out = "round trips/s by policy (median of rounds):";
    for (std::size_t i = 0; i < e.size(); ++i)
        out += fmt::format("{} {} {}", i ? "," : "", e[i].policy, fmt_rate(e[i].s.median));
    auto [lo, hi] = std::minmax_element(
        e.begin(), e.end(), [](const Entry& a, const Entry& b) { return a.s.median < b.s.median; });
    out += fmt::format("; fastest {} = {:.2f}x slowest {}", hi->policy,
                       lo->s.median > 0 ? hi->s.median / lo->s.median : 0.0, lo->policy);
    out += hi->s.min > lo->s.max
               ? fmt::format(" (their [min..max] ranges do not overlap)")
               : fmt::format(" (their [min..max] ranges overlap: no clear difference)");
    return out;
}

std::string render_control_table(const ControlReport& r) {
    const auto mark = emulated_suffix(r.emulated());
    std::string out = emulated_banner_line(r.emulated());
    out += fmt::format(
        "minivmm-bench control: {} round{} per policy, {} s guest runs; the policy order rotates "
        "and baseline/loaded order alternates every round\n"
        "guest: {}, {} vCPUs, --mem {}: {}\n"
        "load: one client loops memory-add gpa={:#x} size={} + memory-remove, another sends "
        "query-stats every {} ms\n"
        "median [min..max] over rounds; latencies pooled over all rounds (client side, request "
        "to response)\n"
        "slowdown = (baseline - loaded) / baseline guest events/s per round; 95% CI: Student "
        "t-interval on the per-round values\n",
        r.repeat, r.repeat == 1 ? "" : "s", r.time_s, r.guest, r.vcpus, r.mem, r.guest_options,
        r.hotplug_gpa, size_text(r.hotplug_size), r.stats_period_ms);
    if (!r.host.empty()) out += fmt::format("host: {}\n", r.host);
    if (!r.load.empty()) out += fmt::format("load average: {}\n", r.load);
    for (const auto& p : r.policies) {
        check_series(p);
        std::uint64_t trips = 0, queries = 0;
        for (const auto& x : p.rounds) {
            trips += x.loaded.round_trips;
            queries += x.loaded.query_stats_ns.size();
        }
        auto o = compare_rates(baseline_rates(p), loaded_rates(p));
        out += fmt::format("\npolicy {}\n", p.policy);
        out += fmt::format("  {:<26}{}   ({} in all){}\n", "hotplug round trips/s",
                           fmt_rate_summary(summarize(round_trip_rates(p))), trips, mark);
        out += fmt::format("  {:<26}{}{}\n", "round-trip latency",
                           latency_text(pooled(p, &LoadedRun::round_trip_ns)), mark);
        out += fmt::format("  {:<26}{}{}\n", "guest events/s baseline",
                           fmt_rate_summary(summarize(baseline_rates(p))), mark);
        out += fmt::format("  {:<26}{}{}\n", "guest events/s loaded",
                           fmt_rate_summary(summarize(loaded_rates(p))), mark);
        out += fmt::format("  {:<26}median of rounds {}, 95% CI {}: {}{}\n", "guest slowdown",
                           pct(o.median_ratio), ci_text(o), o.verdict, mark);
        out += fmt::format("  {:<26}{}   ({} requests){}\n", "query-stats latency",
                           latency_text(pooled(p, &LoadedRun::query_stats_ns)), queries, mark);
        auto med = [&](std::uint64_t VmmStats::*m) { return summarize(per_run(p, m)).median; };
        out += fmt::format("  VMM's query-stats at the end of each loaded run (median [min..max] "
                           "of runs):\n");
        out += fmt::format("    slot lock: {} contended acquisitions [{:.0f}..{:.0f}], {} "
                           "waited{}\n",
                           med(&VmmStats::lock_contended),
                           summarize(per_run(p, &VmmStats::lock_contended)).min,
                           summarize(per_run(p, &VmmStats::lock_contended)).max,
                           fmt_ns(med(&VmmStats::lock_wait_ns)), mark);
        out += fmt::format("    memory-add in the VMM: {:.0f} counted, p50 <= {}, p99 <= {}; "
                           "memory-remove: {:.0f}, p50 <= {}, p99 <= {}{}\n",
                           med(&VmmStats::adds), fmt_ns(med(&VmmStats::add_p50_ns)),
                           fmt_ns(med(&VmmStats::add_p99_ns)), med(&VmmStats::removes),
                           fmt_ns(med(&VmmStats::remove_p50_ns)),
                           fmt_ns(med(&VmmStats::remove_p99_ns)), mark);
    }
    if (auto c = compare_policies(r); !c.empty()) out += fmt::format("\n{}{}\n", c, mark);
    if (r.wall_seconds > 0) out += fmt::format("\nwall time {:.1f} s{}\n", r.wall_seconds, mark);
    return out;
}

json control_report_json(const ControlReport& r) {
    json j{{"benchmark", "minivmm-bench control"},
           {"repeat", r.repeat},
           {"time_s", r.time_s},
           {"guest", r.guest},
           {"guest_options", r.guest_options},
           {"vcpus", r.vcpus},
           {"mem", r.mem},
           {"hotplug", {{"gpa", r.hotplug_gpa}, {"size", r.hotplug_size}}},
           {"query_stats_period_ms", r.stats_period_ms},
           {"host", r.host},
           {"kvm_flavor", r.kvm_flavor},
           {"emulated", r.emulated()},
           {"load", r.load},
           {"wall_seconds", r.wall_seconds},
           {"slowdown_definition",
            "(baseline - loaded) / baseline guest events/s per round; > 0: slower under load"},
           {"ci_method", "Student t-interval (95%) on the per-round slowdowns"},
           {"policies", json::array()}};
    for (const auto& p : r.policies) {
        check_series(p);
        json jp{{"policy", p.policy}, {"emulated", r.emulated()}, {"rounds", json::array()}};
        for (const auto& x : p.rounds) {
            auto guest = [](const GuestRate& g) {
                return json{{"events", g.events},
                            {"time_ns", g.time_ns},
                            {"events_per_s", g.rate()},
                            {"check", g.check}};
            };
            const auto& l = x.loaded;
            jp["rounds"].push_back({{"round", x.round},
                                    {"emulated", r.emulated()},
                                    {"loaded_first", x.loaded_first},
                                    {"baseline", guest(x.baseline)},
                                    {"loaded",
                                     {{"guest", guest(l.guest)},
                                      {"round_trips", l.round_trips},
                                      {"hotplug_seconds", l.hotplug_seconds},
                                      {"round_trips_per_s", l.round_trips_per_s()},
                                      {"round_trip_ns", l.round_trip_ns},
                                      {"add_ns", l.add_ns},
                                      {"remove_ns", l.remove_ns},
                                      {"query_stats_ns", l.query_stats_ns},
                                      {"ended_by", l.ended_by},
                                      {"vmm",
                                       {{"slot_lock_contended", l.vmm.lock_contended},
                                        {"slot_lock_wait_ns", l.vmm.lock_wait_ns},
                                        {"memory_adds", l.vmm.adds},
                                        {"memory_removes", l.vmm.removes},
                                        {"add_p50_ns_le", l.vmm.add_p50_ns},
                                        {"add_p99_ns_le", l.vmm.add_p99_ns},
                                        {"remove_p50_ns_le", l.vmm.remove_p50_ns},
                                        {"remove_p99_ns_le", l.vmm.remove_p99_ns},
                                        {"query_stats", l.vmm.raw}}}}}});
        }
        auto o = compare_rates(baseline_rates(p), loaded_rates(p));
        std::vector<double> slowdowns;
        for (const auto& x : p.rounds)
            slowdowns.push_back((x.baseline.rate() - x.loaded.guest.rate()) / x.baseline.rate());
        jp["summary"] = {
            {"emulated", r.emulated()},
            {"round_trips_per_s", summary_json(summarize(round_trip_rates(p)))},
            {"round_trip_ns", latency_summary_json(pooled(p, &LoadedRun::round_trip_ns))},
            {"add_ns", latency_summary_json(pooled(p, &LoadedRun::add_ns))},
            {"remove_ns", latency_summary_json(pooled(p, &LoadedRun::remove_ns))},
            {"baseline_events_per_s", summary_json(summarize(baseline_rates(p)))},
            {"loaded_events_per_s", summary_json(summarize(loaded_rates(p)))},
            {"slowdown",
             {{"per_round", slowdowns},
              {"median", o.median_ratio},
              {"mean", o.mean_ratio},
              {"ci95_lo", o.ci_lo},
              {"ci95_hi", o.ci_hi},
              {"ci_valid", o.ci_valid},
              {"verdict", o.verdict}}},
            {"query_stats_ns", latency_summary_json(pooled(p, &LoadedRun::query_stats_ns))},
            {"vmm_slot_lock_contended",
             summary_json(summarize(per_run(p, &VmmStats::lock_contended)))},
            {"vmm_slot_lock_wait_ns",
             summary_json(summarize(per_run(p, &VmmStats::lock_wait_ns)))}};
        j["policies"].push_back(std::move(jp));
    }
    j["policy_comparison"] = compare_policies(r);
    return j;
}

} // namespace minivmm::bench
