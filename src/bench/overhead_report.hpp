// minivmm-bench overhead: the data, the statistics and the three renderings
// (terminal table, JSON, one self-contained HTML file) of the native-vs-guest
// comparison. No KVM and no processes here, so the tests can feed it fixed
// samples (library minivmm_report).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/stats.hpp"

namespace minivmm::bench {

// One run of one side: what sysbench's report of the run says.
struct OverheadSample {
    std::uint64_t events = 0, time_ns = 0, check = 0;
    double lat_avg_ns = 0, lat_p95_ns = 0;
    double lat_min_ns = 0, lat_max_ns = 0, lat_sum_ns = 0;
    // Threads fairness: events per thread and time in events per thread,
    // mean and population stddev.
    double fairness_events_avg = 0, fairness_events_stddev = 0;
    double fairness_time_avg_ns = 0, fairness_time_stddev_ns = 0;
    bool first = false; // ran first in its round
    // events per second (0 when the run took no time)
    double rate() const {
        return time_ns ? static_cast<double>(events) * 1e9 / static_cast<double>(time_ns) : 0;
    }
};

// The guest side under one lock policy.
struct GuestSeries {
    std::string policy;
    std::vector<OverheadSample> samples; // one per round, same order as native
};

// What a row compares: events per second (higher is better), or the run's
// total time (lower is better): the real sysbench's mutex test runs one
// event per thread, so its figure is how long they take (the seed's "more
// time").
enum class Metric { rate, time };

// One workload (e.g. "memory-read"): the native series and a guest series
// per lock policy, round i of each taken in the same alternated round.
struct TestSeries {
    std::string name;    // "cpu", "memory-write", "cpu, 2 threads", ...
    std::string options; // the sysbench-style options both sides ran
    std::string note;    // what the check verified, shown in the report
    std::vector<OverheadSample> native;
    std::vector<GuestSeries> guests;
    // The real tool run with the same options in the same rounds ("sysbench
    // 1.0.20"), to show the native runner is sysbench's workload; empty name
    // and samples when not run for this test.
    std::string reference_name;
    std::vector<OverheadSample> reference;
    // The real program's rows (OverheadReport::program): its test ("cpu")
    // and thread count, which the seed rows are matched by; "" and 0 else.
    std::string test;
    unsigned threads = 0;
    Metric metric = Metric::rate;
};

// Overhead of the guest against native for a rate (higher is better):
// per round (native - guest) / native, positive = guest slower.
struct OverheadStats {
    std::size_t n = 0;           // paired rounds
    double median_ratio = 0;     // median of the per-round overheads
    double ratio_of_medians = 0; // (median native - median guest) / median native
    double mean_ratio = 0;       // mean of the per-round overheads (CI centre)
    double ci_lo = 0, ci_hi = 0; // 95% t-interval on the per-round overheads
    bool ci_valid = false;       // false with fewer than 2 rounds
    std::string verdict;         // "no measurable difference", "guest slower by 4.2%", ...
};

// Pairs native[i] with guest[i] (equal lengths, throws otherwise). The 95%
// confidence interval is a Student t-interval on the paired per-round
// overheads: mean +- t(0.975, n-1) * sd / sqrt(n). The verdict says "no
// measurable difference" when the interval contains 0, else "guest slower
// by x%" / "guest faster by x%" with x the mean per-round overhead.
OverheadStats compare_rates(const std::vector<double>& native_rates,
                            const std::vector<double>& guest_rates);

// The same for a total time (lower is better): per round (guest - native)
// / native, positive = guest slower (the seed's "more time"); the verdict
// says "guest slower: x% more time" / "guest faster: x% less time".
OverheadStats compare_times(const std::vector<double>& native_ns,
                            const std::vector<double>& guest_ns);

// compare_rates or compare_times, as t.metric says.
OverheadStats compare_series(const TestSeries& t, const GuestSeries& g);

// t(0.975, df): the two-sided 95% Student t quantile (exact table to 30,
// then interpolated in 1/df towards 1.96).
double t_quantile_975(std::size_t df);

// The native runner against the reference tool: compare_rates(reference,
// native), so the overhead is (reference - native) / reference (> 0: ours
// slower); `within` says whether the median of the per-round differences
// is inside the +-bound (the 10%).
struct ReferenceStats {
    OverheadStats o;
    double bound = 0.10;
    bool within = false;
    std::string text; // "native 3.1% slower than sysbench 1.0.20: within 10%"
};
ReferenceStats compare_reference(const TestSeries& t, double bound = 0.10);

// Formatting shared with the other reports (control_report.hpp).
// 2.35M, 12.3k, 6.41: a rate in 4 significant digits or so.
std::string fmt_rate(double v);
// "median [min..max]" of rates, each as fmt_rate.
std::string fmt_rate_summary(const Summary& s);
// 812 ns, 1.20 us, 3.45 ms, 1.02 s.
std::string fmt_ns(double ns);
// "+4.2%" for 0.042.
std::string pct(double ratio);
// "[+1.0%..+3.2%]", or "n/a (1 round)" without an interval.
std::string ci_text(const OverheadStats& o);

// One row of the seed experiment (issue 17): Debian's sysbench 1.0.20 with
// its default options, natively and in a QEMU-KVM guest. These are the
// seed's own figures, quoted, never measured by minivmm: `loss` is (native
// - guest) / native events/s, or for mutex (Metric::time) the guest's extra
// total time, (guest - native) / native.
struct SeedRow {
    const char* test;
    Metric metric;
    double loss;
};
// cpu 24% loss, memory 61%, fileio 98%, mutex 61% more time, threads 52%.
const std::vector<SeedRow>& seed_rows();
// "24% loss", "61% more time".
std::string seed_text(const SeedRow& row);

// The guest column's name (GuestSeries::policy) of the real program's rows:
// minivmm-run --linux, which has no lock policy to choose.
inline constexpr const char* kLinuxGuest = "--linux";

struct OverheadReport {
    unsigned repeat = 0;
    double time_s = 0; // --time per run
    bool full = false; // --full (sysbench's 10 s)
    unsigned threads = 2;
    std::string host;           // free text: kernel, CPU
    std::string reference_note; // why there is no reference column, if there is none
    double wall_seconds = 0;
    // The KVM measured, as to_string(KvmFlavor) names it: "hardware", "pvm"
    // or "emulated", where every figure of every rendering is marked
    // (bench/emulated.hpp).
    std::string kvm_flavor = "hardware";
    bool emulated() const { return kvm_flavor == "emulated"; }
    std::vector<TestSeries> tests;
    // minivmm-bench overhead --program=sysbench: the real program ("sysbench
    // 1.0.20") natively and under minivmm-run --linux, one row per test and
    // thread count (TestSeries::test, threads), with the seed's rows beside
    // ours. Empty: our own workloads in the sb_* guests.
    std::string program;
    std::vector<unsigned> thread_counts;
};

// The terminal table (stdout), the JSON document (raw samples and
// summaries), and one self-contained HTML page (inline CSS and SVG, no
// scripts, no external resources). The JSON always has "kvm_flavor" and an
// "emulated" boolean on every test, side and sample.
std::string render_table(const OverheadReport& report);
nlohmann::json report_json(const OverheadReport& report);
std::string render_html(const OverheadReport& report);

} // namespace minivmm::bench
