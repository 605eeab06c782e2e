#include "bench/overhead_report.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "bench/emulated.hpp"
#include "bench/stats.hpp"

namespace minivmm::bench {

namespace {

std::vector<double> rates(const std::vector<OverheadSample>& s) {
    std::vector<double> out;
    for (const auto& x : s)
        out.push_back(x.rate());
    return out;
}

std::vector<double> times(const std::vector<OverheadSample>& s) {
    std::vector<double> out;
    for (const auto& x : s)
        out.push_back(static_cast<double>(x.time_ns));
    return out;
}

// What a row's metric compares: events/s, or total time in ns.
std::vector<double> values(Metric m, const std::vector<OverheadSample>& s) {
    return m == Metric::time ? times(s) : rates(s);
}

std::vector<double> lat_avg(const std::vector<OverheadSample>& s) {
    std::vector<double> out;
    for (const auto& x : s)
        out.push_back(x.lat_avg_ns);
    return out;
}

std::vector<double> lat_p95(const std::vector<OverheadSample>& s) {
    std::vector<double> out;
    for (const auto& x : s)
        out.push_back(x.lat_p95_ns);
    return out;
}

} // namespace

// 2.35M, 12.3k, 6.41: rates over six orders of magnitude in one column.
std::string fmt_rate(double v) {
    if (v >= 1e6) return fmt::format("{:.3f}M", v / 1e6);
    if (v >= 1e3) return fmt::format("{:.2f}k", v / 1e3);
    if (v >= 100) return fmt::format("{:.1f}", v);
    if (v >= 10) return fmt::format("{:.2f}", v);
    return fmt::format("{:.3f}", v);
}

std::string fmt_rate_summary(const Summary& s) {
    return fmt::format("{} [{}..{}]", fmt_rate(s.median), fmt_rate(s.min), fmt_rate(s.max));
}

std::string fmt_ns(double ns) {
    if (ns >= 1e9) return fmt::format("{:.2f} s", ns / 1e9);
    if (ns >= 1e6) return fmt::format("{:.2f} ms", ns / 1e6);
    if (ns >= 1e3) return fmt::format("{:.2f} us", ns / 1e3);
    return fmt::format("{:.0f} ns", ns);
}

std::string pct(double ratio) {
    return fmt::format("{:+.1f}%", ratio * 100);
}

std::string ci_text(const OverheadStats& o) {
    if (!o.ci_valid) return "n/a (1 round)";
    return fmt::format("[{}..{}]", pct(o.ci_lo), pct(o.ci_hi));
}

const std::vector<SeedRow>& seed_rows() {
    static const std::vector<SeedRow> rows{{"cpu", Metric::rate, 0.24},
                                           {"memory", Metric::rate, 0.61},
                                           {"fileio", Metric::rate, 0.98},
                                           {"mutex", Metric::time, 0.61},
                                           {"threads", Metric::rate, 0.52}};
    return rows;
}

std::string seed_text(const SeedRow& row) {
    return fmt::format("{:.0f}% {}", row.loss * 100,
                       row.metric == Metric::time ? "more time" : "loss");
}

namespace {

// A side's figure in its row's metric: "2.35k" events/s, or "1.20 s".
std::string fmt_value(Metric m, double v) {
    return m == Metric::time ? fmt_ns(v) : fmt_rate(v);
}

std::string fmt_value_summary(Metric m, const Summary& s) {
    return fmt::format("{} [{}..{}]", fmt_value(m, s.median), fmt_value(m, s.min),
                       fmt_value(m, s.max));
}

const char* metric_label(Metric m) {
    return m == Metric::time ? "total time" : "events/s";
}

// The definition of a row's overhead, for the reports.
const char* overhead_definition(Metric m) {
    return m == Metric::time ? "(guest - native) / native total time per round; > 0: guest slower"
                             : "(native - guest) / native events/s per round; > 0: guest slower";
}

// Our figure beside a seed row: the guest against native in the row of
// that test and thread count, "+3.1% loss [+1.0%..+5.2%]"; "not run" when
// there is no such row.
struct SeedOurs {
    const TestSeries* t = nullptr;
    OverheadStats o;
    std::string text = "not run";
};
SeedOurs seed_ours(const OverheadReport& r, const SeedRow& row, unsigned threads) {
    SeedOurs out;
    for (const auto& t : r.tests) {
        if (t.test != row.test || t.threads != threads || t.guests.empty()) continue;
        out.t = &t;
        out.o = compare_series(t, t.guests.front());
        out.text = fmt::format("{} {}", pct(out.o.median_ratio),
                               row.metric == Metric::time ? "more time" : "loss");
        if (out.o.ci_valid) out.text += " " + ci_text(out.o);
    }
    return out;
}

constexpr const char* kSeedSource = "sysbench 1.0.20 with its default options natively and in "
                                    "a QEMU-KVM guest (the seed experiment of issue 17: the "
                                    "seed's own figures, quoted, not measured by minivmm)";

nlohmann::json summary_json(const Summary& s) {
    return {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
}

// Every sample and side carries `emulated`, so that no figure copied out of
// the document loses the mark.
nlohmann::json samples_json(const std::vector<OverheadSample>& samples, bool emulated) {
    auto a = nlohmann::json::array();
    for (const auto& s : samples)
        a.push_back({{"events", s.events},
                     {"time_ns", s.time_ns},
                     {"events_per_s", s.rate()},
                     {"lat_min_ns", s.lat_min_ns},
                     {"lat_avg_ns", s.lat_avg_ns},
                     {"lat_max_ns", s.lat_max_ns},
                     {"lat_p95_ns", s.lat_p95_ns},
                     {"lat_sum_ns", s.lat_sum_ns},
                     {"fairness_events_avg", s.fairness_events_avg},
                     {"fairness_events_stddev", s.fairness_events_stddev},
                     {"fairness_time_avg_ns", s.fairness_time_avg_ns},
                     {"fairness_time_stddev_ns", s.fairness_time_stddev_ns},
                     {"check", s.check},
                     {"ran_first", s.first},
                     {"emulated", emulated}});
    return a;
}

nlohmann::json side_json(const std::vector<OverheadSample>& samples, bool emulated) {
    return {{"samples", samples_json(samples, emulated)},
            {"emulated", emulated},
            {"events_per_s", summary_json(summarize(rates(samples)))},
            {"total_time_ns", summary_json(summarize(times(samples)))},
            {"lat_avg_ns", summary_json(summarize(lat_avg(samples)))},
            {"lat_p95_ns", summary_json(summarize(lat_p95(samples)))}};
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        default:
            out += c;
        }
    }
    return out;
}

// A latency cell; 0 only comes from sysbench, which prints milliseconds
// with two decimals, so it means "below 10 us".
std::string lat_text(double ns) {
    return ns == 0 ? std::string("<10 us") : fmt_ns(ns);
}

// A test's name as an HTML id: "cpu, 2 threads" -> "cpu-2-threads".
std::string html_id(const std::string& name) {
    std::string out;
    for (char c : name) {
        if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')
            out += c;
        else if (!out.empty() && out.back() != '-')
            out += '-';
    }
    return out;
}

const char* verdict_class(const OverheadStats& o) {
    if (o.verdict.rfind("guest slower", 0) == 0) return "slower";
    if (o.verdict.rfind("guest faster", 0) == 0) return "faster";
    return "same";
}

// The mark after each figure of the HTML page measured on an emulated KVM.
std::string html_mark(bool emulated) {
    return emulated ? " <span class=\"emulated\">[emulated]</span>" : "";
}

// One bar chart: native and each guest policy, bar = median events/s,
// whisker = min..max; on an emulated KVM with the banner across its top.
std::string svg_chart(const TestSeries& t, bool emulated) {
    struct Bar {
        std::string label;
        Summary s;
        const char* colour;
    };
    const Metric m = t.metric;
    std::vector<Bar> bars{{"native", summarize(values(m, t.native)), "#4c72b0"}};
    for (const auto& g : t.guests)
        bars.push_back({"guest " + g.policy, summarize(values(m, g.samples)), "#dd8452"});
    if (!t.reference.empty())
        bars.push_back({t.reference_name, summarize(rates(t.reference)), "#8c8c8c"});
    double top = 0;
    for (const auto& b : bars)
        top = std::max(top, b.s.max);
    if (top <= 0) top = 1;
    top *= 1.15;
    const int plot_h = 180, base_y = 30 + plot_h, left = 70, bar_w = 70, gap = 40;
    const int width = left + static_cast<int>(bars.size()) * (bar_w + gap) + 20;
    auto y_of = [&](double v) { return base_y - v / top * plot_h; };
    std::string svg = fmt::format(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
        "viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{} {}{}\">\n",
        width, base_y + 40, width, base_y + 40, html_escape(t.name),
        m == Metric::time ? "total time" : "events per second",
        emulated ? " (emulated KVM: timings are not real)" : "");
    if (emulated)
        svg +=
            fmt::format("<text x=\"{}\" y=\"14\" class=\"emulated\">EMULATED KVM</text>\n", left);
    // Axis with three gridlines.
    for (int i = 0; i <= 3; ++i) {
        double v = top / 1.15 * i / 3;
        double y = y_of(v);
        svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" class=\"grid\"/>"
                           "<text x=\"{}\" y=\"{:.1f}\" class=\"tick\">{}</text>\n",
                           left - 5, y, width - 10, y, left - 8, y + 4, fmt_value(m, v));
    }
    svg += fmt::format("<text x=\"12\" y=\"{}\" class=\"axis\" transform=\"rotate(-90 12 {})\">"
                       "{}</text>\n",
                       base_y - plot_h / 2, base_y - plot_h / 2, metric_label(m));
    for (std::size_t i = 0; i < bars.size(); ++i) {
        const auto& b = bars[i];
        double x = left + gap / 2.0 + static_cast<double>(i) * (bar_w + gap);
        double cx = x + bar_w / 2.0, y = y_of(b.s.median);
        svg += fmt::format("<rect class=\"bar\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" "
                           "height=\"{:.1f}\" fill=\"{}\"><title>{}: median {} [{}..{}]{}</title>"
                           "</rect>\n",
                           x, y, bar_w, base_y - y, b.colour, html_escape(b.label),
                           fmt_value(m, b.s.median), fmt_value(m, b.s.min), fmt_value(m, b.s.max),
                           emulated ? " (emulated)" : "");
        double ylo = y_of(b.s.min), yhi = y_of(b.s.max);
        svg += fmt::format("<line class=\"whisker\" x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" "
                           "y2=\"{2:.1f}\"/><line class=\"whisker\" x1=\"{3:.1f}\" y1=\"{1:.1f}\" "
                           "x2=\"{4:.1f}\" y2=\"{1:.1f}\"/><line class=\"whisker\" x1=\"{3:.1f}\" "
                           "y1=\"{2:.1f}\" x2=\"{4:.1f}\" y2=\"{2:.1f}\"/>\n",
                           cx, ylo, yhi, cx - 10, cx + 10);
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"val\">{}</text>\n", cx, yhi - 6,
                           fmt_value(m, b.s.median));
        svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"lbl\">{}</text>\n", cx, base_y + 18,
                           html_escape(b.label));
    }
    svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"base\"/>\n", left - 5,
                       base_y, width - 10, base_y);
    svg += "</svg>\n";
    return svg;
}

} // namespace

double t_quantile_975(std::size_t df) {
    static constexpr std::array<double, 31> table{
        0,     12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
        2.074, 2.069,  2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df == 0) throw std::invalid_argument("t quantile: df must be >= 1");
    if (df < table.size()) return table[df];
    // Beyond 30: linear in 1/df between t(30) = 2.042 and t(inf) = 1.960.
    return 1.960 + (2.042 - 1.960) * 30.0 / static_cast<double>(df);
}

namespace {

// The paired statistics of per-round overheads (> 0: guest slower), with
// the verdict in `slower` / `faster` words ("guest slower by {:.1f}%").
OverheadStats paired_overheads(const std::vector<double>& ratios, double ratio_of_medians,
                               const char* slower, const char* faster) {
    OverheadStats o;
    o.n = ratios.size();
    o.median_ratio = summarize(ratios).median;
    o.ratio_of_medians = ratio_of_medians;
    double sum = 0;
    for (double r : ratios)
        sum += r;
    o.mean_ratio = sum / static_cast<double>(o.n);
    if (o.n >= 2) {
        double ss = 0;
        for (double r : ratios)
            ss += (r - o.mean_ratio) * (r - o.mean_ratio);
        double sd = std::sqrt(ss / static_cast<double>(o.n - 1));
        double half = t_quantile_975(o.n - 1) * sd / std::sqrt(static_cast<double>(o.n));
        o.ci_lo = o.mean_ratio - half;
        o.ci_hi = o.mean_ratio + half;
        o.ci_valid = true;
    }
    if (!o.ci_valid)
        o.verdict = "one round: no confidence interval";
    else if (o.ci_lo <= 0 && o.ci_hi >= 0)
        o.verdict = "no measurable difference";
    else if (o.mean_ratio > 0)
        o.verdict = fmt::format(fmt::runtime(slower), o.mean_ratio * 100);
    else
        o.verdict = fmt::format(fmt::runtime(faster), -o.mean_ratio * 100);
    return o;
}

} // namespace

OverheadStats compare_rates(const std::vector<double>& native_rates,
                            const std::vector<double>& guest_rates) {
    if (native_rates.size() != guest_rates.size() || native_rates.empty())
        throw std::invalid_argument("compare_rates: need equally many native and guest rounds");
    std::vector<double> ratios;
    for (std::size_t i = 0; i < native_rates.size(); ++i) {
        if (native_rates[i] <= 0) throw std::invalid_argument("compare_rates: native rate <= 0");
        ratios.push_back((native_rates[i] - guest_rates[i]) / native_rates[i]);
    }
    double mn = summarize(native_rates).median, mg = summarize(guest_rates).median;
    return paired_overheads(ratios, (mn - mg) / mn, "guest slower by {:.1f}%",
                            "guest faster by {:.1f}%");
}

OverheadStats compare_times(const std::vector<double>& native_ns,
                            const std::vector<double>& guest_ns) {
    if (native_ns.size() != guest_ns.size() || native_ns.empty())
        throw std::invalid_argument("compare_times: need equally many native and guest rounds");
    std::vector<double> ratios;
    for (std::size_t i = 0; i < native_ns.size(); ++i) {
        if (native_ns[i] <= 0) throw std::invalid_argument("compare_times: native time <= 0");
        ratios.push_back((guest_ns[i] - native_ns[i]) / native_ns[i]);
    }
    double mn = summarize(native_ns).median, mg = summarize(guest_ns).median;
    return paired_overheads(ratios, (mg - mn) / mn, "guest slower: {:.1f}% more time",
                            "guest faster: {:.1f}% less time");
}

OverheadStats compare_series(const TestSeries& t, const GuestSeries& g) {
    return t.metric == Metric::time ? compare_times(times(t.native), times(g.samples))
                                    : compare_rates(rates(t.native), rates(g.samples));
}

ReferenceStats compare_reference(const TestSeries& t, double bound) {
    ReferenceStats r;
    r.bound = bound;
    r.o = compare_rates(rates(t.reference), rates(t.native));
    r.within = std::abs(r.o.median_ratio) <= bound;
    r.text =
        fmt::format("native {:.1f}% {} than {} (median of rounds): {} {:.0f}%",
                    std::abs(r.o.median_ratio) * 100, r.o.median_ratio >= 0 ? "slower" : "faster",
                    t.reference_name, r.within ? "within" : "OUTSIDE", bound * 100);
    return r;
}

namespace {

// "1,2" of the report's thread counts.
std::string thread_list(const std::vector<unsigned>& counts) {
    std::string out;
    for (unsigned n : counts)
        out += (out.empty() ? "" : ",") + std::to_string(n);
    return out;
}

} // namespace

std::string render_table(const OverheadReport& r) {
    const auto mark = emulated_suffix(r.emulated());
    std::string out = emulated_banner_line(r.emulated());
    if (r.program.empty())
        out += fmt::format(
            "minivmm-bench overhead: {} alternated rounds, {} s per run{}, {} threads natively "
            "and {} vCPUs in the guest\n"
            "events/s and latency: median [min..max]; overhead = (native - guest) / native "
            "events/s per round\n",
            r.repeat, r.time_s, r.full ? " (--full)" : "", r.threads, r.threads);
    else
        out += fmt::format(
            "minivmm-bench overhead --program=sysbench: {} natively and under minivmm-run --linux "
            "(the same binary), {} alternated rounds, {} s per run{}, threads {}\n"
            "events/s (mutex: total time) and latency: median [min..max]; overhead = (native - "
            "guest) / native events/s per round (mutex: (guest - native) / native total time)\n",
            r.program, r.repeat, r.time_s, r.full ? " (--full)" : "", thread_list(r.thread_counts));
    out += "95% CI: Student t-interval on the per-round paired overheads\n";
    if (!r.host.empty()) out += fmt::format("host: {}\n", r.host);
    for (const auto& t : r.tests) {
        const Metric m = t.metric;
        out += fmt::format("\n{}  ({})\n", t.name, t.options);
        if (!t.note.empty()) out += fmt::format("  check: {}\n", t.note);
        if (t.native.size() != r.repeat)
            out += fmt::format("  rounds: {} (short runs get more)\n", t.native.size());
        out += fmt::format("  {:<20} {:<34} {:>10} {:>10}\n", "side", metric_label(m), "lat avg",
                           "lat p95");
        auto row = [&](const std::string& label, const std::vector<OverheadSample>& s) {
            out += fmt::format("  {:<20} {:<34} {:>10} {:>10}{}\n", label,
                               fmt_value_summary(m, summarize(values(m, s))),
                               lat_text(summarize(lat_avg(s)).median),
                               lat_text(summarize(lat_p95(s)).median), mark);
        };
        row("native", t.native);
        for (const auto& g : t.guests)
            row("guest " + g.policy, g.samples);
        if (!t.reference.empty()) row(t.reference_name, t.reference);
        for (const auto& g : t.guests) {
            auto o = compare_series(t, g);
            out +=
                fmt::format("  overhead, guest {}: median of rounds {}, of medians {}, 95% CI {}: "
                            "{}{}\n",
                            g.policy, pct(o.median_ratio), pct(o.ratio_of_medians), ci_text(o),
                            o.verdict, mark);
        }
        if (!t.reference.empty())
            out += fmt::format("  reference: {}{}\n", compare_reference(t).text, mark);
    }
    if (!r.program.empty()) {
        // The seed's figures are quoted, not measured; the mark at the end
        // of a row is for its "ours" columns.
        out += fmt::format("\nthe seed experiment: {}\n"
                           "  beside ours: guest {} against native, median of rounds [95% CI]\n",
                           kSeedSource, kLinuxGuest);
        std::string head = fmt::format("  {:<9} {:<19}", "test", "seed (QEMU-KVM)");
        for (unsigned n : r.thread_counts)
            head += fmt::format(" {:<36}", fmt::format("ours, {} thread{}", n, n == 1 ? "" : "s"));
        while (!head.empty() && head.back() == ' ')
            head.pop_back();
        out += head + "\n";
        for (const auto& row : seed_rows()) {
            std::string line = fmt::format("  {:<9} {:<19}", row.test, seed_text(row));
            bool measured = false;
            for (unsigned n : r.thread_counts) {
                auto o = seed_ours(r, row, n);
                line += fmt::format(" {:<36}", o.text);
                measured = measured || o.t != nullptr;
            }
            while (!line.empty() && line.back() == ' ')
                line.pop_back();
            out += line + std::string(measured ? mark : std::string_view{}) + "\n";
        }
    }
    if (!r.reference_note.empty()) out += fmt::format("\nreference: {}\n", r.reference_note);
    if (r.wall_seconds > 0) out += fmt::format("\nwall time {:.1f} s{}\n", r.wall_seconds, mark);
    return out;
}

nlohmann::json report_json(const OverheadReport& r) {
    nlohmann::json j{{"benchmark", "minivmm-bench overhead"},
                     {"repeat", r.repeat},
                     {"time_s", r.time_s},
                     {"full", r.full},
                     {"host", r.host},
                     {"kvm_flavor", r.kvm_flavor},
                     {"emulated", r.emulated()},
                     {"wall_seconds", r.wall_seconds},
                     {"ci_method", "Student t-interval (95%) on per-round paired overheads"},
                     {"overhead_definition", overhead_definition(Metric::rate)},
                     {"tests", nlohmann::json::array()}};
    if (r.program.empty()) {
        j["threads"] = r.threads;
    } else {
        j["program"] = r.program;
        j["guest"] = "minivmm-run --linux";
        j["thread_counts"] = r.thread_counts;
    }
    if (!r.reference_note.empty()) j["reference_note"] = r.reference_note;
    for (const auto& t : r.tests) {
        nlohmann::json jt{{"name", t.name},
                          {"options", t.options},
                          {"check", t.note},
                          {"rounds", t.native.size()},
                          {"metric", t.metric == Metric::time ? "total_time" : "events_per_s"},
                          {"overhead_definition", overhead_definition(t.metric)},
                          {"emulated", r.emulated()},
                          {"native", side_json(t.native, r.emulated())},
                          {"guests", nlohmann::json::array()}};
        if (!t.test.empty()) jt["test"] = t.test;
        if (t.threads) jt["threads"] = t.threads;
        for (const auto& g : t.guests) {
            auto o = compare_series(t, g);
            auto jg = side_json(g.samples, r.emulated());
            jg["policy"] = g.policy;
            jg["overhead"] = {
                {"n", o.n},
                {"median_of_ratios", o.median_ratio},
                {"ratio_of_medians", o.ratio_of_medians},
                {"mean_of_ratios", o.mean_ratio},
                {"ci95", o.ci_valid ? nlohmann::json::array({o.ci_lo, o.ci_hi}) : nlohmann::json()},
                {"verdict", o.verdict}};
            jt["guests"].push_back(std::move(jg));
        }
        if (!t.reference.empty()) {
            auto rs = compare_reference(t);
            auto jr = side_json(t.reference, r.emulated());
            jr["name"] = t.reference_name;
            jr["native_vs_reference"] = {
                {"definition", "(reference - native) / reference events/s "
                               "per round; > 0: native slower"},
                {"median_of_ratios", rs.o.median_ratio},
                {"ratio_of_medians", rs.o.ratio_of_medians},
                {"ci95", rs.o.ci_valid ? nlohmann::json::array({rs.o.ci_lo, rs.o.ci_hi})
                                       : nlohmann::json()},
                {"bound", rs.bound},
                {"within_bound", rs.within},
                {"text", rs.text}};
            jt["reference"] = std::move(jr);
        }
        j["tests"].push_back(std::move(jt));
    }
    if (!r.program.empty()) {
        // The seed's figures (quoted) beside ours (measured, so marked).
        nlohmann::json rows = nlohmann::json::array();
        for (const auto& row : seed_rows()) {
            nlohmann::json ours = nlohmann::json::array();
            for (unsigned n : r.thread_counts) {
                auto o = seed_ours(r, row, n);
                nlohmann::json jo{{"threads", n}, {"ran", o.t != nullptr}, {"text", o.text}};
                if (o.t) {
                    jo["name"] = o.t->name;
                    jo["median_of_ratios"] = o.o.median_ratio;
                    jo["ci95"] = o.o.ci_valid ? nlohmann::json::array({o.o.ci_lo, o.o.ci_hi})
                                              : nlohmann::json();
                    jo["verdict"] = o.o.verdict;
                    jo["emulated"] = r.emulated();
                }
                ours.push_back(std::move(jo));
            }
            rows.push_back({{"test", row.test},
                            {"metric", row.metric == Metric::time ? "total_time" : "events_per_s"},
                            {"seed_overhead", row.loss},
                            {"seed_text", seed_text(row)},
                            {"definition", overhead_definition(row.metric)},
                            {"ours", std::move(ours)}});
        }
        j["seed"] = {{"source", kSeedSource},
                     {"hypervisor", "QEMU-KVM"},
                     {"program", "sysbench 1.0.20"},
                     {"measured_by_minivmm", false},
                     {"rows", std::move(rows)}};
    }
    return j;
}

std::string render_html(const OverheadReport& r) {
    const bool emulated = r.emulated();
    const std::string mark = html_mark(emulated);
    std::string h = fmt::format(R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{}minivmm overhead: native vs guest</title>
)",
                                emulated ? "EMULATED KVM: " : "");
    h += R"(<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:.92em}th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}
th:first-child,td:first-child{text-align:left}td{white-space:nowrap}th{background:#f4f4f4}
code{background:#f4f4f4;padding:1px 4px;border-radius:3px;font-size:.9em}
.verdict{font-weight:600;padding:2px 6px;border-radius:4px}
.verdict.same{background:#e3f1e3;color:#225522}.verdict.slower{background:#fbe3e0;color:#8a2516}
.verdict.faster{background:#e0ecfb;color:#163f8a}
.chart text{font-size:11px;fill:#333}.chart .tick{text-anchor:end}.chart .val,.chart .lbl{text-anchor:middle}
.chart .axis{text-anchor:middle}.chart .grid{stroke:#e6e6e6}.chart .base{stroke:#888}
.chart .whisker{stroke:#222;stroke-width:1.5}
.meta{color:#555;font-size:.9em}
.emulated-banner{background:#fff3cd;border:3px solid #c0392b;color:#8a1f11;font-weight:700;font-size:1.2em;padding:10px 14px;border-radius:4px}
.emulated{color:#c0392b;font-weight:700}.chart .emulated{fill:#c0392b;font-size:13px;font-weight:700}
</style></head><body>
<h1>minivmm overhead: native vs guest</h1>
)";
    if (emulated)
        h += fmt::format("<p class=\"emulated-banner\">{}<br>Measured on a KVM inside QEMU's "
                         "software CPU (TCG): every figure on this page, native ones too, is "
                         "marked [emulated] and says nothing about real hardware.</p>\n",
                         html_escape(std::string(kEmulatedBanner)));
    if (r.program.empty())
        h += fmt::format("<p class=\"meta\">{} alternated rounds, {} s per run{}, {} threads "
                         "natively and {} vCPUs in the guest. Rates are events/s, median "
                         "[min..max]. Overhead = (native &minus; guest) / native events/s per "
                         "round (&gt; 0: guest slower); the 95% CI is a Student t-interval on the "
                         "per-round paired overheads; the verdict is &ldquo;no measurable "
                         "difference&rdquo; when it contains 0.{}{}</p>\n",
                         r.repeat, r.time_s, r.full ? " (--full)" : "", r.threads, r.threads,
                         r.host.empty() ? "" : " Host: ", html_escape(r.host));
    else
        h += fmt::format("<p class=\"meta\">{} natively and under <code>minivmm-run "
                         "--linux</code> (the same binary), {} alternated rounds, {} s per run{}, "
                         "threads {}. Rates are events/s (mutex: total time), median [min..max]. "
                         "Overhead = (native &minus; guest) / native events/s per round (mutex: "
                         "(guest &minus; native) / native total time; &gt; 0: guest slower); "
                         "the 95% CI is a Student t-interval on the per-round paired overheads; "
                         "the verdict is &ldquo;no measurable difference&rdquo; when it contains "
                         "0.{}{}</p>\n",
                         html_escape(r.program), r.repeat, r.time_s, r.full ? " (--full)" : "",
                         thread_list(r.thread_counts),
                         r.host.empty() ? "" : " Host: ", html_escape(r.host));
    h += "<h2>Summary</h2>\n<table class=\"summary\"><tr><th>test</th><th>guest</th>"
         "<th>measure</th><th>native</th><th>guest</th><th>overhead</th>"
         "<th>95% CI</th><th>verdict</th></tr>\n";
    for (const auto& t : r.tests) {
        const Metric m = t.metric;
        auto n = summarize(values(m, t.native));
        for (const auto& g : t.guests) {
            auto o = compare_series(t, g);
            h += fmt::format(
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                "<td>{}</td><td>{}</td><td><span class=\"verdict {}\">{}</span></td>"
                "</tr>\n",
                html_escape(t.name), mark, html_escape(g.policy), metric_label(m),
                fmt_value_summary(m, n), fmt_value_summary(m, summarize(values(m, g.samples))),
                pct(o.median_ratio), ci_text(o), verdict_class(o), html_escape(o.verdict));
        }
    }
    h += "</table>\n";
    if (!r.program.empty()) {
        // The seed's figures are quoted, not measured: only "ours" is marked.
        h += fmt::format("<h2 id=\"seed\">The seed experiment</h2>\n<p class=\"meta\">Seed: {}. "
                         "Ours: guest <code>{}</code> against native, median of the per-round "
                         "overheads [95% CI].</p>\n<table class=\"seed\"><tr><th>test</th>"
                         "<th>seed (QEMU-KVM)</th>",
                         html_escape(kSeedSource), kLinuxGuest);
        for (unsigned n : r.thread_counts)
            h += fmt::format("<th>ours, {} thread{}</th>", n, n == 1 ? "" : "s");
        h += "</tr>\n";
        for (const auto& row : seed_rows()) {
            h += fmt::format("<tr class=\"seed\"><td>{}</td><td>{}</td>", row.test, seed_text(row));
            for (unsigned n : r.thread_counts) {
                auto o = seed_ours(r, row, n);
                h += fmt::format("<td>{}{}</td>", html_escape(o.text), o.t ? mark : "");
            }
            h += "</tr>\n";
        }
        h += "</table>\n";
    }
    for (const auto& t : r.tests) {
        h += fmt::format("<h2 id=\"{}\">{}</h2>\n<p><code>{}</code></p>\n", html_id(t.name),
                         html_escape(t.name), html_escape(t.options));
        if (!t.note.empty())
            h += fmt::format("<p class=\"meta\">Check: {}</p>\n", html_escape(t.note));
        if (t.native.size() != r.repeat)
            h += fmt::format("<p class=\"meta\">{} rounds (short runs get more).</p>\n",
                             t.native.size());
        h += svg_chart(t, emulated);
        const Metric m = t.metric;
        h += fmt::format("<table><tr><th>side</th><th>{}</th><th>latency avg</th><th>latency "
                         "p95</th><th>overhead</th><th>95% CI</th><th>verdict</th></tr>\n",
                         metric_label(m));
        auto row = [&](const std::string& label, const std::vector<OverheadSample>& s,
                       const OverheadStats* o) {
            h += fmt::format(
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td>", html_escape(label), mark,
                fmt_value_summary(m, summarize(values(m, s))),
                lat_text(summarize(lat_avg(s)).median), lat_text(summarize(lat_p95(s)).median));
            if (o)
                h += fmt::format("<td>{} (of medians {})</td><td>{}</td><td><span class=\"verdict "
                                 "{}\">{}</span></td></tr>\n",
                                 pct(o->median_ratio), pct(o->ratio_of_medians), ci_text(*o),
                                 verdict_class(*o), html_escape(o->verdict));
            else
                h += "<td></td><td></td><td></td></tr>\n";
        };
        row("native", t.native, nullptr);
        for (const auto& g : t.guests) {
            auto o = compare_series(t, g);
            row("guest " + g.policy, g.samples, &o);
        }
        if (!t.reference.empty()) row(t.reference_name, t.reference, nullptr);
        h += "</table>\n";
        if (!t.reference.empty())
            h += fmt::format("<p class=\"meta\">Reference: {}.{}</p>\n",
                             html_escape(compare_reference(t).text), mark);
    }
    if (!r.reference_note.empty())
        h += fmt::format("<p class=\"meta\">Reference: {}.</p>\n", html_escape(r.reference_note));
    if (r.wall_seconds > 0)
        h += fmt::format("<p class=\"meta\">Wall time of the benchmark: {:.1f} s.{}</p>\n",
                         r.wall_seconds, mark);
    h += "</body></html>\n";
    return h;
}

} // namespace minivmm::bench
