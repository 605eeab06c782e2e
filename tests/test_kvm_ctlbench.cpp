// minivmm-bench end to end: control (src/bench/control_bench.*), one short
// round under one policy, and overhead (src/bench/overhead_bench.*), short
// rounds of a few rows, and overhead --program=sysbench (the real sysbench
// natively and under minivmm-run --linux), one short round; checked for
// correctness (every figure was measured, every run reported), not for
// speed; their usage errors; and the refusal of
// an emulated KVM (minivmm/kvm_flavor.hpp) without --allow-emulated. The runs
// pass --allow-emulated so that they also check correctness where the suite
// runs on an emulated KVM.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "kvm_support.hpp"
#include "minivmm/kvm_flavor.hpp"
#include "skip.hpp"

using json = nlohmann::json;
using minivmm::test::Child;
using minivmm::test::describe;
using namespace std::chrono_literals;

namespace {

// `env` puts VAR=VALUE words into the child's environment only.
minivmm::test::ProcessResult run_bench(const std::vector<std::string>& args,
                                       std::chrono::milliseconds limit = 120s,
                                       const std::string& command = "control",
                                       const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv;
    if (!env.empty()) {
        argv.push_back("/usr/bin/env");
        argv.insert(argv.end(), env.begin(), env.end());
    }
    argv.insert(argv.end(), {MINIVMM_BENCH_PATH, command});
    argv.insert(argv.end(), args.begin(), args.end());
    Child child(argv);
    return child.finish(limit);
}

// The line of `out` that starts with `row` (after its newline) at or past
// `from`; fails the test when there is none.
std::string row_line(const std::string& out, const std::string& row, std::size_t from = 0) {
    INFO(row);
    const auto at = out.find(row, from);
    REQUIRE(at != std::string::npos);
    const auto end = out.find('\n', at + 1);
    return out.substr(at + 1, end - at - 1);
}

bool emulated_here() {
    return minivmm::detect_kvm_flavor() == minivmm::KvmFlavor::emulated;
}

} // namespace

TEST_CASE("minivmm-bench control: one round under load measures every figure", "[ctlbench]") {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/minivmm-ctlbench-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    const std::string json_path = tmpl + "/control.json";
    // On an emulated KVM (under TSan there, measured) one memory-add/remove
    // round trip can outlast a 1 s guest run: give the guest longer there.
    const std::string seconds = emulated_here() ? "10" : "1";
    auto r = run_bench({"--repeat", "1", "--time", seconds, "--lock", "global", "--json", json_path,
                        "--allow-emulated"});
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
    auto r = run_bench({"--tests", "cpu,fileio,threads", "--repeat", "2", "--time", "1",
                        "--file-total-size", "4M", "--file-dir", tmpl, "--verbose", "--json",
                        json_path, "--allow-emulated"},
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
    const std::string mark = emulated_here() ? "[emulated] " : "";
    CHECK_THAT(r.out, Catch::Matchers::Contains("=== " + mark +
                                                "cpu round 1/2: native ===\n"
                                                "Running the test with following options:\n"));
    CHECK_THAT(r.out,
               Catch::Matchers::Contains("=== " + mark + "fileio round 2/2: guest global ===\n"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("Threads fairness:\n    events (avg/stddev):"));
    CHECK_THAT(r.out, Catch::Matchers::Contains("File operations:\n    reads/s:"));
    // then the table
    CHECK_THAT(r.out, Catch::Matchers::Contains("overhead, guest global: median of rounds"));
}

TEST_CASE("minivmm-bench: an emulated KVM is refused without --allow-emulated", "[ctlbench]") {
    const std::vector<std::pair<std::string, std::vector<std::string>>> commands{
        {"overhead", {"--tests", "cpu", "--repeat", "1", "--time", "1"}},
        {"control", {"--repeat", "1", "--time", "1"}},
        {"foundation", {"--repeat", "1"}},
        {"linux", {"--repeat", "1"}},
        {"slots", {"--quick"}}};
    for (const auto& [command, args] : commands) {
        auto r = run_bench(args, 20s, command, {"MINIVMM_KVM_EMULATED=1"});
        INFO(command << ": " << describe(r));
        CHECK(r.status == 2);
        CHECK(r.out.empty());
        CHECK(minivmm::test::line_count(r.err) == 1);
        CHECK_THAT(r.err, Catch::Matchers::Contains("this KVM is emulated") &&
                              Catch::Matchers::Contains("--allow-emulated"));
    }
}

TEST_CASE("minivmm-bench overhead --allow-emulated: every figure marked emulated",
          "[ctlbench][overhead]") {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/minivmm-embench-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    const std::string json_path = tmpl + "/overhead.json";
    auto r = run_bench(
        {"--tests", "cpu", "--repeat", "1", "--time", "1", "--allow-emulated", "--json", json_path},
        120s, "overhead", {"MINIVMM_KVM_EMULATED=1"});
    INFO(describe(r));
    REQUIRE(r.status == 0);
    CHECK(r.out.rfind("*** EMULATED KVM: timings are not real ***\n", 0) == 0);
    // every figure row of the table ends with the mark
    std::size_t rows = 0;
    for (const char* row :
         {"\n  native ", "\n  guest global ", "\n  overhead, guest global: ", "\nwall time "}) {
        CHECK(row_line(r.out, row).ends_with("  [emulated]"));
        ++rows;
    }
    CHECK(rows == 4);
    std::ifstream in(json_path);
    REQUIRE(in);
    json j = json::parse(in);
    std::filesystem::remove_all(tmpl);
    CHECK(j.at("kvm_flavor") == "emulated");
    CHECK(j.at("emulated") == true);
    REQUIRE(j.at("tests").size() == 1);
    const auto& t = j["tests"][0];
    CHECK(t.at("emulated") == true);
    std::vector<const json*> sides{&t.at("native")};
    for (const auto& g : t.at("guests"))
        sides.push_back(&g);
    if (t.contains("reference")) sides.push_back(&t.at("reference"));
    REQUIRE(sides.size() >= 2);
    for (const json* side : sides) {
        CHECK(side->at("emulated") == true);
        REQUIRE(side->at("samples").size() == 1);
        CHECK(side->at("samples")[0].at("emulated") == true);
    }
}

TEST_CASE("minivmm-bench linux: one short round measures every figure, each marked emulated",
          "[ctlbench][linux]") {
    auto r = run_bench({"--repeat", "1", "--calls", "500", "--reads", "20000", "--cpu-events", "20",
                        "--allow-emulated"},
                       300s, "linux", {"MINIVMM_KVM_EMULATED=1"});
    INFO(describe(r));
    REQUIRE(r.status == 0);
    CHECK(r.out.rfind("*** EMULATED KVM: timings are not real ***\n", 0) == 0);
    // Each figure's row is there, with a number, and marked.
    for (const char* row :
         {"\n  native              ", "\n  guest (LSTAR entry) ", "\n  bare hypercall exit ",
          "\n  guest/native        ", "\n  guest/hypercall     ", "\n  guest               ",
          "\n  minivmm-run --linux      ", "\n  minivmm-run hello.bin    ",
          "\n  --linux/native           ", "\n  --linux/hello.bin        "}) {
        const auto line = row_line(r.out, row);
        CHECK(line.ends_with("  [emulated]"));
        CHECK(line.find_first_of("0123456789") != std::string::npos);
    }
    for (const char* section :
         {"system call round trip, 500 getppid",
          "clock_gettime(CLOCK_MONOTONIC) through the vDSO, 20000 reads",
          "sb_static cpu --cpu-max-prime=20000 --events=20", "start-up of a static hello world"})
        CHECK_THAT(r.out, Catch::Matchers::Contains(section));
}

TEST_CASE("minivmm-bench overhead --program=sysbench: the five tests at 1 and 2 threads, marked",
          "[ctlbench][overhead][sysbench-program]") {
    if (::access("/usr/bin/sysbench", X_OK) != 0)
        return minivmm::test::skip_test("/usr/bin/sysbench is missing (apt-get install sysbench)");
    // fileio needs a disk filesystem: the build tree, not a tmpfs /tmp
    std::string tmpl = (std::filesystem::current_path() / "minivmm-sbprog-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    const std::string json_path = tmpl + "/overhead.json", html_path = tmpl + "/overhead.html";
    // One round of 1 s, tiny files, and the runs that are not time-bound
    // (mutex) or slow per event in a guest on an emulated KVM (threads: each
    // yield a system call, so an exit) made small. MINIVMM_KVM_EMULATED=1:
    // the marks are checked on any KVM.
    auto r = run_bench({"--program=sysbench", "--repeat", "1", "--time", "1", "--file-total-size",
                        "2M", "--file-dir", tmpl, "--program-option=mutex:--mutex-locks=200",
                        "--program-option=mutex:--mutex-loops=100",
                        "--program-option=threads:--thread-yields=20", "--json", json_path,
                        "--html", html_path, "--allow-emulated"},
                       1200s, "overhead", {"MINIVMM_KVM_EMULATED=1"});
    INFO(describe(r));
    REQUIRE(r.status == 0);
    CHECK(r.out.rfind("*** EMULATED KVM: timings are not real ***\n", 0) == 0);
    CHECK_THAT(r.out, Catch::Matchers::Contains("--program=sysbench: sysbench 1.0.20 natively and "
                                                "under minivmm-run --linux"));
    // Every test at each thread count: its section, then a native and a
    // guest row and the overhead, each with a figure and the mark.
    const std::vector<std::string> tests{"cpu", "memory", "fileio", "mutex", "threads"};
    for (const char* threads : {"1 thread", "2 threads"}) {
        for (const auto& test : tests) {
            const std::string section = "\n" + test + ", " + threads + "  (" + test;
            INFO(section);
            auto at = r.out.find(section);
            REQUIRE(at != std::string::npos);
            for (const char* row :
                 {"\n  native ", "\n  guest --linux ", "\n  overhead, guest --linux: "}) {
                const auto line = row_line(r.out, row, at);
                CHECK(line.ends_with("  [emulated]"));
                CHECK(line.find_first_of("0123456789") != std::string::npos);
            }
        }
    }
    // The seed's five rows, each with our figures beside, marked.
    CHECK_THAT(r.out, Catch::Matchers::Contains("not measured by minivmm"));
    for (const char* row :
         {"\n  cpu       24% loss ", "\n  memory    61% loss ", "\n  fileio    98% loss ",
          "\n  mutex     61% more time ", "\n  threads   52% loss "}) {
        const auto line = row_line(r.out, row);
        CHECK(line.ends_with("  [emulated]"));
        CHECK(line.find("not run") == std::string::npos);
    }

    std::ifstream in(json_path);
    REQUIRE(in);
    json j = json::parse(in);
    CHECK(j.at("program") == "sysbench 1.0.20");
    CHECK(j.at("emulated") == true);
    CHECK(j.at("thread_counts") == json::array({1, 2}));
    REQUIRE(j.at("tests").size() == 10);
    for (const auto& t : j["tests"]) {
        const std::string name = t.at("name");
        INFO(name);
        const unsigned threads = t.at("threads");
        CHECK(t.at("emulated") == true);
        CHECK(t.at("metric") == (t.at("test") == "mutex" ? "total_time" : "events_per_s"));
        REQUIRE(t.at("guests").size() == 1);
        CHECK(t["guests"][0].at("policy") == "--linux");
        for (const json* side : {&t.at("native"), &t["guests"][0]}) {
            REQUIRE(side->at("samples").size() == 1);
            const auto& s = side->at("samples")[0];
            CHECK(s.at("emulated") == true);
            CHECK(s.at("time_ns").get<double>() > 0);
            if (t.at("test") == "mutex")
                CHECK(s.at("events") == threads); // one event per thread
            else
                CHECK(s.at("events").get<double>() > 0);
        }
    }
    REQUIRE(j.at("seed").at("rows").size() == 5);
    for (const auto& row : j["seed"]["rows"])
        for (const auto& ours : row.at("ours")) {
            CHECK(ours.at("ran") == true);
            CHECK(ours.at("emulated") == true);
        }
    std::ifstream html(html_path);
    REQUIRE(html);
    const std::string page{std::istreambuf_iterator<char>(html), std::istreambuf_iterator<char>()};
    CHECK_THAT(page, Catch::Matchers::Contains("<h2 id=\"seed\">The seed experiment</h2>"));
    CHECK_THAT(page, Catch::Matchers::Contains("<p class=\"emulated-banner\">"));
    // fileio's working folder (prepared files, cleanup) is gone: only the
    // reports are left.
    std::size_t left = 0;
    for (const auto& e : std::filesystem::directory_iterator(tmpl)) {
        INFO(e.path());
        CHECK((e.path() == json_path || e.path() == html_path));
        ++left;
    }
    CHECK(left == 2);
    std::filesystem::remove_all(tmpl);
}
