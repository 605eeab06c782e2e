// Part 3 of minivmm-bench slots: whole guests under each lock policy, to
// show whether the policy matters to a guest that does not touch the slot
// tables (regloop: no exits) or touches the VMM on every hypercall (hcloop).
#include <algorithm>
#include <map>

#include <fmt/format.h>

#include "bench/emulated.hpp"
#include "bench/process.hpp"
#include "bench/slots_bench.hpp"
#include "bench/stats.hpp"

namespace minivmm::bench {

namespace {

using nlohmann::json;

constexpr const char* kRegloopIterations = "200000000";
constexpr const char* kHypercalls = "20000";

struct Metric {
    const char* key;   // JSON name
    const char* label; // table heading
    double scale;      // to the unit printed
    const char* unit;
    int prec;
    std::map<LockPolicy, std::vector<double>> samples;
};

// Lower is better for every metric here. "No measurable difference" needs
// every pair of [min..max] ranges to overlap and the medians within 2%.
std::string verdict(const Metric& m, const std::vector<LockPolicy>& policies) {
    LockPolicy fast = policies.front(), slow = policies.front();
    bool overlap = true;
    for (LockPolicy a : policies) {
        auto sa = summarize(m.samples.at(a));
        if (sa.median < summarize(m.samples.at(fast)).median) fast = a;
        if (sa.median > summarize(m.samples.at(slow)).median) slow = a;
        for (LockPolicy b : policies) {
            auto sb = summarize(m.samples.at(b));
            overlap = overlap && sa.min <= sb.max && sb.min <= sa.max;
        }
    }
    double diff = summarize(m.samples.at(slow)).median / summarize(m.samples.at(fast)).median - 1;
    if (overlap && diff < 0.02)
        return fmt::format("no measurable difference (medians within {:.2f}%, ranges overlap)",
                           diff * 100);
    return fmt::format("{} slower than {} by {:.2f}%{}", policy_name(slow), policy_name(fast),
                       diff * 100, overlap ? " (but the [min..max] ranges overlap)" : "");
}

} // namespace

json guest_part(const SlotsOptions& o) {
    const char* cycles_fmt = "regloop: %*u iterations, %lf tsc cycles";
    const char* hc_fmt = "hcloop: %*u hypercalls, %lf cycles/hypercall";
    Metric regloop{"regloop_tsc_cycles", "regloop", 1e-6, "Mcycles", 1, {}};
    Metric hc_cycles{"hcloop_cycles_per_hypercall", "hcloop per hypercall", 1e-3, "kcycles", 2, {}};
    Metric hc_wall{"hcloop_wall_s", "hcloop process wall", 1e3, "ms", 1, {}};
    for (unsigned round = 0; round < o.guest_repeat; ++round)
        for (LockPolicy p : rotated(o.policies, round)) {
            progress(
                fmt::format("guests: round {}/{} {}", round + 1, o.guest_repeat, policy_name(p)));
            std::string lock = fmt::format("--lock={}", policy_name(p));
            auto r = run_checked(
                {o.run_path, lock, o.guest_dir + "/regloop.bin", "--", kRegloopIterations});
            regloop.samples[p].push_back(parse_number(r.out, "regloop:", cycles_fmt));
            auto h =
                run_checked({o.run_path, lock, o.guest_dir + "/hcloop.bin", "--", kHypercalls});
            hc_cycles.samples[p].push_back(parse_number(h.out, "hcloop:", hc_fmt));
            hc_wall.samples[p].push_back(h.wall_seconds);
        }
    progress_done();
    const auto mark = emulated_suffix(o.emulated());

    fmt::print("3. guest workloads: minivmm-run --lock=P regloop.bin -- {} (TSC cycles the guest "
               "measured),\n"
               "   minivmm-run --lock=P hcloop.bin -- {} (cycles per hypercall the guest "
               "measured, and the\n"
               "   process's wall time). {} round(s), policy order rotated per round; median "
               "[min..max].\n\n",
               kRegloopIterations, kHypercalls, o.guest_repeat);
    json out = json::object();
    for (Metric* m : {&regloop, &hc_cycles, &hc_wall}) {
        fmt::print("   {}\n", m->label);
        const bool has_global = m->samples.count(LockPolicy::global) != 0;
        json jm = json::object();
        for (LockPolicy p : o.policies) {
            auto s = summarize(m->samples.at(p));
            std::string vs_global;
            if (has_global) {
                double g = summarize(m->samples.at(LockPolicy::global)).median;
                vs_global = fmt::format("  {:.4f}x global ({:+.2f}%)", s.median / g,
                                        (s.median / g - 1) * 100);
                jm[policy_name(p)]["ratio_to_global"] = s.median / g;
            }
            fmt::print("     {:<13}{:<36}{}{}\n", policy_name(p),
                       format_summary(s, m->scale, m->unit, m->prec), vs_global, mark);
            jm[policy_name(p)]["summary"] = s;
            jm[policy_name(p)]["emulated"] = o.emulated();
            jm[policy_name(p)]["samples"] = m->samples.at(p);
        }
        std::string v = verdict(*m, o.policies);
        fmt::print("     verdict: {}{}\n\n", v, mark);
        jm["verdict"] = v;
        out[m->key] = jm;
    }
    out["rounds"] = o.guest_repeat;
    out["regloop_iterations"] = std::stoull(kRegloopIterations);
    out["hypercalls"] = std::stoull(kHypercalls);
    return out;
}

} // namespace minivmm::bench
