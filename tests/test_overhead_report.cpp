// minivmm-bench overhead's report (src/bench/overhead_report.hpp): the
// statistics, and the HTML page as a headless Chromium renders it.
//
// The browser check runs when /usr/bin/chromium exists; without it the test
// is skipped (exit status 77, ctest's "Skipped"), unless
// MINIVMM_REQUIRE_BROWSER=1 makes that a failure.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "bench/emulated.hpp"
#include "bench/overhead_report.hpp"
#include "skip.hpp"

using minivmm::bench::compare_rates;
using minivmm::bench::compare_times;
using minivmm::bench::GuestSeries;
using minivmm::bench::Metric;
using minivmm::bench::OverheadReport;
using minivmm::bench::OverheadSample;
using minivmm::bench::render_html;
using minivmm::bench::render_table;
using minivmm::bench::report_json;
using minivmm::bench::t_quantile_975;
using minivmm::bench::TestSeries;

namespace fs = std::filesystem;

namespace {

// A sample of `rate` events/s over one second.
OverheadSample sample(double rate, double lat_ns = 1000) {
    OverheadSample s;
    s.time_ns = 1'000'000'000;
    s.events = static_cast<std::uint64_t>(rate);
    s.lat_avg_ns = lat_ns;
    s.lat_p95_ns = lat_ns * 1.2;
    s.check = 2261;
    return s;
}

std::vector<OverheadSample> samples(const std::vector<double>& rates) {
    std::vector<OverheadSample> out;
    for (double r : rates)
        out.push_back(sample(r));
    return out;
}

// Fixed data: cpu equal, mutex 20% slower in the guest under two policies.
OverheadReport fixed_report() {
    OverheadReport r;
    r.repeat = 5;
    r.time_s = 2;
    r.host = "test host";
    r.wall_seconds = 42;
    TestSeries cpu;
    cpu.name = "cpu";
    cpu.options = "--cpu-max-prime=20000 --threads=2";
    cpu.note = "2261 primes";
    cpu.native = samples({2400, 2410, 2390, 2405, 2395});
    cpu.guests.push_back({"global", samples({2395, 2412, 2393, 2400, 2401})});
    cpu.reference_name = "sysbench 1.0.20";
    cpu.reference = samples({2500, 2510, 2490, 2505, 2495}); // native 4% slower
    TestSeries mutex;
    mutex.name = "mutex";
    mutex.options = "--mutex-num=4096";
    mutex.note = "counters";
    mutex.native = samples({1000, 1010, 990, 1005, 995});
    mutex.guests.push_back({"global", samples({800, 808, 792, 804, 796})});
    mutex.guests.push_back({"rcu", samples({801, 807, 793, 803, 797})});
    r.tests = {cpu, mutex};
    return r;
}

// A sample of one sysbench mutex run: `threads` events in `seconds`.
OverheadSample mutex_sample(double seconds, unsigned threads) {
    OverheadSample s;
    s.time_ns = static_cast<std::uint64_t>(seconds * 1e9);
    s.events = threads;
    s.lat_avg_ns = seconds * 1e9;
    s.lat_p95_ns = seconds * 1e9;
    return s;
}

// --program=sysbench's report: cpu, mutex and threads (no memory, no
// fileio) at 1 and 2 threads, 3 rounds; the guest 10% slower on cpu, 50%
// more time on mutex.
OverheadReport program_report() {
    OverheadReport r;
    r.repeat = 3;
    r.time_s = 2;
    r.host = "test host";
    r.program = "sysbench 1.0.20";
    r.thread_counts = {1, 2};
    r.wall_seconds = 60;
    for (unsigned n : r.thread_counts) {
        const std::string threads = n == 1 ? "1 thread" : std::to_string(n) + " threads";
        TestSeries cpu;
        cpu.name = "cpu, " + threads;
        cpu.test = "cpu";
        cpu.threads = n;
        cpu.options = "cpu --threads=" + std::to_string(n) + " --time=2 run";
        cpu.native = samples({1000, 1010, 990});
        cpu.guests.push_back({minivmm::bench::kLinuxGuest, samples({900, 909, 891})});
        TestSeries mutex;
        mutex.name = "mutex, " + threads;
        mutex.test = "mutex";
        mutex.threads = n;
        mutex.metric = Metric::time;
        mutex.options = "mutex --threads=" + std::to_string(n) + " run";
        mutex.native = {mutex_sample(0.30, n), mutex_sample(0.31, n), mutex_sample(0.29, n)};
        mutex.guests.push_back(
            {minivmm::bench::kLinuxGuest,
             {mutex_sample(0.45, n), mutex_sample(0.465, n), mutex_sample(0.435, n)}});
        TestSeries threads_row = cpu;
        threads_row.name = "threads, " + threads;
        threads_row.test = "threads";
        r.tests.push_back(cpu);
        r.tests.push_back(mutex);
        r.tests.push_back(threads_row);
    }
    return r;
}

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        ++n;
    return n;
}

bool ends_with(const std::string& s, std::string_view tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

} // namespace

TEST_CASE("overhead: identical samples give a CI containing 0", "[unit][overhead]") {
    std::vector<double> same{100, 102, 98, 101, 99};
    auto o = compare_rates(same, same);
    CHECK(o.n == 5);
    CHECK(o.ci_valid);
    CHECK(o.ci_lo <= 0);
    CHECK(o.ci_hi >= 0);
    CHECK(o.median_ratio == Approx(0).margin(1e-12));
    CHECK(o.verdict == "no measurable difference");
    // Noise in both directions stays "no measurable difference".
    auto noisy = compare_rates({100, 100, 100, 100}, {103, 97, 102, 98});
    CHECK(noisy.verdict == "no measurable difference");
}

TEST_CASE("overhead: a clear 20% gap gives guest slower by ~20%", "[unit][overhead]") {
    auto o = compare_rates({1000, 1010, 990, 1005, 995}, {800, 812, 790, 806, 794});
    CHECK(o.median_ratio == Approx(0.2).margin(0.005));
    CHECK(o.ratio_of_medians == Approx(0.2).margin(0.005));
    CHECK(o.ci_lo > 0.18);
    CHECK(o.ci_hi < 0.22);
    CHECK(o.verdict.rfind("guest slower by 2", 0) == 0);
    CHECK((o.verdict == "guest slower by 20.0%" || o.verdict == "guest slower by 19.9%" ||
           o.verdict == "guest slower by 20.1%"));
    auto f = compare_rates({800, 808, 792}, {1000, 1010, 990});
    CHECK(f.verdict == "guest faster by 25.0%");
}

TEST_CASE("overhead: a total time compares as more time in the guest", "[unit][overhead]") {
    auto o = compare_times({1.0e9, 1.02e9, 0.98e9}, {1.61e9, 1.6422e9, 1.5778e9});
    CHECK(o.median_ratio == Approx(0.61));
    CHECK(o.ratio_of_medians == Approx(0.61));
    CHECK(o.ci_valid);
    CHECK(o.verdict == "guest slower: 61.0% more time");
    CHECK(compare_times({2e9, 2e9}, {1e9, 1e9}).verdict == "guest faster: 50.0% less time");
    CHECK(compare_times({1e9, 1e9, 1e9}, {1.01e9, 0.99e9, 1e9}).verdict ==
          "no measurable difference");
    CHECK_THROWS(compare_times({1e9}, {}));
    // compare_series picks by the row's metric.
    TestSeries t;
    t.metric = Metric::time;
    t.native = {mutex_sample(1.0, 2), mutex_sample(1.0, 2)};
    GuestSeries g{"--linux", {mutex_sample(1.5, 2), mutex_sample(1.5, 2)}};
    CHECK(minivmm::bench::compare_series(t, g).median_ratio == Approx(0.5));
    t.metric = Metric::rate; // the same runs as events/s: 1/1.5 of native's
    CHECK(minivmm::bench::compare_series(t, g).median_ratio == Approx(1.0 / 3));
}

TEST_CASE("overhead: the seed experiment's five rows", "[unit][overhead]") {
    const auto& rows = minivmm::bench::seed_rows();
    REQUIRE(rows.size() == 5);
    std::vector<std::string> texts;
    for (const auto& row : rows)
        texts.push_back(std::string(row.test) + " " + minivmm::bench::seed_text(row));
    CHECK(texts == std::vector<std::string>{"cpu 24% loss", "memory 61% loss", "fileio 98% loss",
                                            "mutex 61% more time", "threads 52% loss"});
}

TEST_CASE("overhead: the real program's table has a row per test and thread count, and the seed",
          "[unit][overhead]") {
    auto r = program_report();
    auto table = render_table(r);
    INFO(table);
    CHECK(table.rfind("minivmm-bench overhead --program=sysbench: sysbench 1.0.20 natively and "
                      "under minivmm-run --linux",
                      0) == 0);
    CHECK(table.find("threads 1,2") != std::string::npos);
    for (const char* row :
         {"\ncpu, 1 thread  (", "\nmutex, 1 thread  (", "\nthreads, 1 thread  (",
          "\ncpu, 2 threads  (", "\nmutex, 2 threads  (", "\nthreads, 2 threads  ("})
        CHECK(table.find(row) != std::string::npos);
    CHECK(count_of(table, "  guest --linux ") == 6);
    CHECK(count_of(table, "  overhead, guest --linux: median of rounds +10.0%") == 4);
    CHECK(count_of(table, "  overhead, guest --linux: median of rounds +50.0%") == 2);
    CHECK(count_of(table, "guest slower: 50.0% more time") == 2);
    CHECK(count_of(table, "  side                 total time ") == 2);
    // the seed: quoted, labelled as such, beside ours per thread count
    CHECK(table.find("the seed's own figures, quoted, not measured by minivmm") !=
          std::string::npos);
    auto lines = lines_of(table);
    auto line_of = [&](const std::string& start) {
        for (const auto& l : lines)
            if (l.rfind(start, 0) == 0) return l;
        return std::string{};
    };
    CHECK(line_of("  test      seed (QEMU-KVM)") != "");
    CHECK(line_of("  test      seed (QEMU-KVM)").find("ours, 1 thread") != std::string::npos);
    CHECK(line_of("  test      seed (QEMU-KVM)").find("ours, 2 threads") != std::string::npos);
    CHECK(line_of("  cpu       24% loss").find("+10.0% loss [") != std::string::npos);
    CHECK(line_of("  mutex     61% more time").find("+50.0% more time [") != std::string::npos);
    CHECK(line_of("  memory    61% loss").find("not run") != std::string::npos);
    CHECK(line_of("  fileio    98% loss").find("not run") != std::string::npos);
    CHECK(line_of("  threads   52% loss").find("+10.0% loss") != std::string::npos);
    // our own workloads' report has no seed
    CHECK(render_table(fixed_report()).find("seed") == std::string::npos);
}

TEST_CASE("overhead: the real program's JSON and HTML", "[unit][overhead]") {
    auto r = program_report();
    auto j = report_json(r);
    CHECK(j.at("program") == "sysbench 1.0.20");
    CHECK(j.at("guest") == "minivmm-run --linux");
    CHECK(j.at("thread_counts") == nlohmann::json::array({1, 2}));
    CHECK_FALSE(j.contains("threads"));
    REQUIRE(j.at("tests").size() == 6);
    const auto& mutex = j["tests"][1];
    CHECK(mutex.at("name") == "mutex, 1 thread");
    CHECK(mutex.at("test") == "mutex");
    CHECK(mutex.at("threads") == 1);
    CHECK(mutex.at("metric") == "total_time");
    CHECK(mutex.at("native").at("total_time_ns").at("median") == Approx(0.30e9));
    CHECK(mutex.at("guests")[0].at("policy") == "--linux");
    CHECK(mutex.at("guests")[0].at("overhead").at("median_of_ratios") == Approx(0.5));
    CHECK(mutex.at("guests")[0].at("overhead").at("verdict") == "guest slower: 50.0% more time");
    CHECK(j["tests"][3].at("metric") == "events_per_s");
    CHECK(j["tests"][3].at("threads") == 2);
    const auto& seed = j.at("seed");
    CHECK(seed.at("measured_by_minivmm") == false);
    CHECK(seed.at("hypervisor") == "QEMU-KVM");
    CHECK(seed.at("program") == "sysbench 1.0.20");
    REQUIRE(seed.at("rows").size() == 5);
    const auto& cpu = seed["rows"][0];
    CHECK(cpu.at("test") == "cpu");
    CHECK(cpu.at("seed_overhead") == Approx(0.24));
    CHECK(cpu.at("seed_text") == "24% loss");
    REQUIRE(cpu.at("ours").size() == 2);
    CHECK(cpu["ours"][1].at("threads") == 2);
    CHECK(cpu["ours"][1].at("ran") == true);
    CHECK(cpu["ours"][1].at("name") == "cpu, 2 threads");
    CHECK(cpu["ours"][1].at("median_of_ratios") == Approx(0.1));
    CHECK(cpu["ours"][1].at("emulated") == false);
    CHECK(seed["rows"][3].at("metric") == "total_time");
    CHECK(seed["rows"][3].at("seed_text") == "61% more time");
    CHECK(seed["rows"][1]["ours"][0].at("ran") == false); // memory: not run
    CHECK_FALSE(report_json(fixed_report()).contains("seed"));

    auto html = render_html(r);
    CHECK(html.find("<h2 id=\"seed\">The seed experiment</h2>") != std::string::npos);
    CHECK(count_of(html, "<tr class=\"seed\">") == 5);
    CHECK(html.find("<td>61% more time</td>") != std::string::npos);
    CHECK(html.find("<h2 id=\"mutex-2-threads\">mutex, 2 threads</h2>") != std::string::npos);
    CHECK(html.find("<th>total time</th>") != std::string::npos);
    CHECK(html.find("[emulated]") == std::string::npos);
}

TEST_CASE("overhead: the real program's report on an emulated KVM marks every figure",
          "[unit][overhead]") {
    auto r = program_report();
    r.kvm_flavor = "emulated";
    auto lines = lines_of(render_table(r));
    REQUIRE(!lines.empty());
    CHECK(lines.front() == minivmm::bench::kEmulatedBanner);
    std::size_t figure_rows = 0, seed_rows = 0;
    for (const auto& line : lines) {
        bool figures = false;
        for (const char* prefix : {"  native ", "  guest ", "  overhead,", "wall time"})
            figures = figures || line.rfind(prefix, 0) == 0;
        // a seed row with a figure of ours (memory and fileio were not run)
        bool seed = false;
        for (const char* prefix : {"  cpu   ", "  mutex   ", "  threads   "})
            seed = seed || line.rfind(prefix, 0) == 0;
        INFO(line);
        CHECK((figures || seed) == ends_with(line, minivmm::bench::kEmulatedSuffix));
        figure_rows += figures;
        seed_rows += seed;
    }
    CHECK(figure_rows == 6 * 3 + 1);
    CHECK(seed_rows == 3);
    auto j = report_json(r);
    for (const auto& row : j.at("seed").at("rows"))
        for (const auto& ours : row.at("ours"))
            if (ours.at("ran") == true) CHECK(ours.at("emulated") == true);
    for (const auto& t : j.at("tests")) {
        CHECK(t.at("emulated") == true);
        CHECK(t.at("guests")[0].at("samples")[0].at("emulated") == true);
    }
    auto html = render_html(r);
    CHECK(count_of(html, "<tr><td>") ==
          count_of(html, "<span class=\"emulated\">[emulated]</span></td>") - 6);
    CHECK(count_of(html, "<tr><td>") == 6 + 6 * 2); // summary, then native and guest per test
}

TEST_CASE("overhead: t quantiles and single rounds", "[unit][overhead]") {
    CHECK(t_quantile_975(1) == Approx(12.706));
    CHECK(t_quantile_975(4) == Approx(2.776));
    CHECK(t_quantile_975(1000) == Approx(1.96).margin(0.01));
    auto one = compare_rates({100}, {80});
    CHECK_FALSE(one.ci_valid);
    CHECK(one.median_ratio == Approx(0.2));
    CHECK_THROWS(compare_rates({100, 100}, {100}));
}

TEST_CASE("overhead: native against the reference tool, inside and outside 10%",
          "[unit][overhead]") {
    TestSeries t;
    t.name = "memory-read";
    t.reference_name = "sysbench 1.0.20";
    t.native = samples({700, 705, 695});
    t.reference = samples({1000, 1000, 1000});
    auto out = minivmm::bench::compare_reference(t);
    CHECK_FALSE(out.within);
    CHECK(out.o.median_ratio == Approx(0.3));
    CHECK(out.text == "native 30.0% slower than sysbench 1.0.20 (median of rounds): OUTSIDE 10%");
    t.native = samples({1050, 1040, 1060});
    out = minivmm::bench::compare_reference(t);
    CHECK(out.within);
    CHECK(out.text.rfind("native 5.0% faster", 0) == 0);
}

TEST_CASE("overhead: table, JSON and HTML carry the verdicts", "[unit][overhead]") {
    auto r = fixed_report();
    auto table = render_table(r);
    CHECK(table.find("no measurable difference") != std::string::npos);
    CHECK(table.find("guest slower by 20.0%") != std::string::npos);
    auto j = report_json(r);
    CHECK(table.find("reference: native 4.0% slower than sysbench 1.0.20 (median of rounds): "
                     "within 10%") != std::string::npos);
    REQUIRE(j["tests"].size() == 2);
    CHECK(j["tests"][0]["reference"]["name"] == "sysbench 1.0.20");
    CHECK(j["tests"][0]["reference"]["native_vs_reference"]["within_bound"] == true);
    CHECK_FALSE(j["tests"][1].contains("reference"));
    CHECK(j["tests"][1]["guests"].size() == 2);
    CHECK(j["tests"][1]["native"]["samples"].size() == 5);
    CHECK(j["tests"][1]["guests"][0]["overhead"]["verdict"] == "guest slower by 20.0%");
    auto html = render_html(r);
    CHECK(html.find("<svg") != std::string::npos);
    CHECK(html.find("sysbench 1.0.20") != std::string::npos);
    CHECK(html.find("<script") == std::string::npos);
    CHECK(html.find("http://") == html.find("http://www.w3.org/2000/svg")); // no external links
    CHECK(html.find("https://") == std::string::npos);
}

TEST_CASE("overhead: a real KVM's report has no emulated mark", "[unit][overhead]") {
    auto r = fixed_report();
    CHECK(r.kvm_flavor == "hardware");
    auto table = render_table(r);
    CHECK(table.find("EMULATED") == std::string::npos);
    CHECK(table.find("[emulated]") == std::string::npos);
    auto j = report_json(r);
    CHECK(j.at("kvm_flavor") == "hardware");
    CHECK(j.at("emulated") == false);
    CHECK(j["tests"][0].at("emulated") == false);
    CHECK(j["tests"][0]["native"]["samples"][0].at("emulated") == false);
    r.kvm_flavor = "pvm";
    CHECK(report_json(r).at("kvm_flavor") == "pvm");
    CHECK(render_table(r).find("[emulated]") == std::string::npos);
    auto html = render_html(r);
    CHECK(html.find("<p class=\"emulated-banner\">") == std::string::npos);
    CHECK(html.find("[emulated]") == std::string::npos);
}

TEST_CASE("overhead: on an emulated KVM the table, JSON and HTML mark every figure",
          "[unit][overhead]") {
    using minivmm::bench::kEmulatedBanner;
    auto r = fixed_report();
    r.kvm_flavor = "emulated";

    // Table: the banner first, then every row with a measured figure ends
    // with the mark (cpu: 3 sides, overhead, reference; mutex: 3 sides, 2
    // overheads; the wall time).
    auto lines = lines_of(render_table(r));
    REQUIRE(!lines.empty());
    CHECK(lines.front() == kEmulatedBanner);
    std::size_t figure_rows = 0;
    for (const auto& line : lines) {
        bool figures = false;
        for (const char* prefix :
             {"  native ", "  guest ", "  sysbench ", "  overhead,", "  reference:", "wall time"})
            figures = figures || line.rfind(prefix, 0) == 0;
        INFO(line);
        CHECK(figures == ends_with(line, minivmm::bench::kEmulatedSuffix));
        figure_rows += figures;
    }
    CHECK(figure_rows == 11);

    // JSON: the flavor at the top, the mark on every test, side and sample.
    auto j = report_json(r);
    CHECK(j.at("kvm_flavor") == "emulated");
    CHECK(j.at("emulated") == true);
    std::size_t marked = 0;
    for (const auto& t : j.at("tests")) {
        CHECK(t.at("emulated") == true);
        std::vector<const nlohmann::json*> sides{&t.at("native")};
        for (const auto& g : t.at("guests"))
            sides.push_back(&g);
        if (t.contains("reference")) sides.push_back(&t.at("reference"));
        for (const auto* side : sides) {
            CHECK(side->at("emulated") == true);
            for (const auto& s : side->at("samples")) {
                CHECK(s.at("emulated") == true);
                ++marked;
            }
        }
    }
    CHECK(marked == 5 * 6); // 5 rounds of cpu native, guest, sysbench and mutex native, 2 guests

    // HTML: the banner and title, every table row and every chart marked.
    auto html = render_html(r);
    CHECK(html.find("<title>EMULATED KVM: ") != std::string::npos);
    CHECK(html.find("<p class=\"emulated-banner\">" + std::string(kEmulatedBanner)) !=
          std::string::npos);
    CHECK(html.find("<p class=\"emulated-banner\">") < html.find("<table"));
    const std::size_t rows = count_of(html, "<tr><td>");
    CHECK(rows == 3 + 6); // summary: cpu global, mutex global, mutex rcu; sides: 3 + 3
    CHECK(count_of(html, "<tr><td>") ==
          count_of(html, "<span class=\"emulated\">[emulated]</span></td>"));
    CHECK(count_of(html, "<svg") == 2);
    CHECK(count_of(html, "class=\"emulated\">EMULATED KVM</text>") == 2);
    CHECK(count_of(html, "(emulated)</title>") == 6); // every bar
}

TEST_CASE("overhead: the HTML report renders in headless Chromium", "[unit][overhead][browser]") {
    const fs::path chromium = "/usr/bin/chromium";
    if (!fs::exists(chromium))
        return minivmm::test::skip_test(
            "headless-browser check of the overhead HTML report: " + chromium.string() +
                " is missing (scripts/setup.sh test installs it)",
            "MINIVMM_REQUIRE_BROWSER");
    auto dir = fs::temp_directory_path() / ("minivmm-overhead-test-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir / "profile");
    const auto report = dir / "overhead.html", dom = dir / "dom.html", png = dir / "shot.png";
    {
        std::ofstream f(report);
        f << render_html(fixed_report());
        REQUIRE(f.good());
    }
    const std::string common =
        "timeout 120 " + chromium.string() +
        " --headless --no-sandbox --disable-gpu --disable-background-networking "
        "--disable-component-update --disable-sync --no-first-run --user-data-dir=" +
        (dir / "profile").string();
    const std::string dump_cmd =
        common + " --dump-dom file://" + report.string() + " >" + dom.string() + " 2>/dev/null";
    INFO(dump_cmd);
    REQUIRE(std::system(dump_cmd.c_str()) == 0);
    auto text = slurp(dom);
    INFO("DOM: " << text.substr(0, 2000));
    CHECK(text.find("<svg") != std::string::npos);
    CHECK(text.find("<rect class=\"bar\"") != std::string::npos);
    CHECK(text.find("class=\"whisker\"") != std::string::npos);
    CHECK(text.find("no measurable difference") != std::string::npos);
    CHECK(text.find("guest slower by 20.0%") != std::string::npos);

    // The emulated page shows its banner.
    const auto emulated_page = dir / "emulated.html";
    {
        auto emulated = fixed_report();
        emulated.kvm_flavor = "emulated";
        std::ofstream f(emulated_page);
        f << render_html(emulated);
        REQUIRE(f.good());
    }
    const std::string emulated_cmd = common + " --dump-dom file://" + emulated_page.string() +
                                     " >" + dom.string() + " 2>/dev/null";
    REQUIRE(std::system(emulated_cmd.c_str()) == 0);
    CHECK(slurp(dom).find("class=\"emulated-banner\">*** EMULATED KVM: timings are not real ***") !=
          std::string::npos);

    const std::string shot_cmd = common + " --window-size=1200,1800 --screenshot=" + png.string() +
                                 " file://" + report.string() + " >/dev/null 2>&1";
    INFO(shot_cmd);
    REQUIRE(std::system(shot_cmd.c_str()) == 0);
    REQUIRE(fs::exists(png));
    auto bytes = slurp(png);
    CHECK(bytes.size() > 20'000); // a blank page compresses to a few KiB
    CHECK(bytes.substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
    if (const char* keep = std::getenv("MINIVMM_KEEP_REPORT_PNG"))
        fs::copy_file(png, keep, fs::copy_options::overwrite_existing);
    fs::remove_all(dir);
}
