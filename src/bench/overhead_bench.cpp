#include "bench/overhead_bench.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>

#include <fmt/core.h>

#include "bench/overhead_report.hpp"
#include "bench/process.hpp"
#include "native_workloads.hpp"

namespace minivmm::bench {

namespace {

using workloads::Result;
using workloads::Test;

constexpr unsigned kThreads = 2;
constexpr std::uint64_t kMutexLocks = 50000, kThreadYields = 100;

// One row of the benchmark: a workload with its options and what its
// result's check= must be.
struct Variant {
    std::string name;
    Test test;
    std::string options;   // sysbench options shared by both sides, no --time
    unsigned time_s;       // 0: run to the event limit
    std::string guest_mem; // minivmm-run --mem, empty for the default
    std::string note;
    // Throws when `r` (a run of `side`) fails its check; `ref` is the first
    // native run of this variant.
    std::function<void(const Result& r, const Result& ref)> check;
};

[[noreturn]] void check_failed(const std::string& what, const Result& r) {
    throw std::runtime_error(
        fmt::format("CHECK FAILED: {}: {}", what, workloads::format_result(r)));
}

std::vector<Variant> variants(const OverheadOptions& o) {
    const unsigned t = o.full ? 10 : o.time_s;
    std::vector<Variant> out;
    for (const auto& name : o.tests) {
        if (name == "cpu") {
            out.push_back({"cpu", Test::cpu, "--cpu-max-prime=20000", t, "",
                           "every event counts 2261 primes below 20000",
                           [](const Result& r, const Result&) {
                               if (r.check != 2261) check_failed("cpu prime count != 2261", r);
                           }});
        } else if (name == "memory") {
            const std::string base = "--memory-block-size=8K --memory-total-size=2G";
            for (const char* oper : {"write", "read"}) {
                bool write = std::string(oper) == "write";
                out.push_back(
                    {fmt::format("memory-{}", oper), Test::memory,
                     fmt::format("{} --memory-oper={} --memory-scope=global", base, oper), t, "",
                     write ? "the written block's word sum matches native's"
                           : "per-block read checksum (check / events) matches native's",
                     [write](const Result& r, const Result& ref) {
                         if (r.check == 0 || r.check == std::numeric_limits<std::uint64_t>::max())
                             check_failed("memory checksum invalid", r);
                         if (write) {
                             if (r.check != ref.check)
                                 check_failed(
                                     fmt::format("memory write checksum != native {}", ref.check),
                                     r);
                         } else if (r.check % r.events != 0 ||
                                    r.check / r.events != ref.check / ref.events) {
                             check_failed(fmt::format("memory read checksum per block != native {}",
                                                      ref.check / ref.events),
                                          r);
                         }
                     }});
            }
            const std::uint64_t region = o.memory_region, pages = (region + 4095) / 4096;
            out.push_back(
                {"memory-touch", Test::memory,
                 fmt::format("--memory-oper=touch --memory-block-size=8K --memory-total-size={}",
                             region),
                 0, fmt::format("{}M", (region >> 20) + 512),
                 fmt::format("touches all {} pages of a fresh {} MiB region once (first touch "
                             "included, no time limit)",
                             pages, region >> 20),
                 [pages](const Result& r, const Result&) {
                     if (r.check != pages)
                         check_failed(fmt::format("touched pages != {}", pages), r);
                 }});
        } else if (name == "mutex") {
            out.push_back(
                {"mutex", Test::mutex,
                 fmt::format("--mutex-num=4096 --mutex-locks={} --mutex-loops=10000", kMutexLocks),
                 t, "", "lock counters sum to events * 50000", [](const Result& r, const Result&) {
                     if (r.check != r.events * kMutexLocks)
                         check_failed("mutex counters != events * mutex-locks", r);
                 }});
        } else if (name == "threads") {
            out.push_back(
                {"threads", Test::threads,
                 fmt::format("--thread-yields={} --thread-locks=4", kThreadYields), t, "",
                 "lock counters sum to events * 100 (native yield: sched_yield; guest yield: a "
                 "burst of pause)",
                 [](const Result& r, const Result&) {
                     if (r.check != r.events * kThreadYields)
                         check_failed("threads counters != events * thread-yields", r);
                 }});
        } else {
            throw std::invalid_argument("overhead: unknown test " + name);
        }
    }
    return out;
}

OverheadSample to_sample(const Result& r, bool first) {
    OverheadSample s;
    s.events = r.events;
    s.time_ns = r.time_ns;
    s.check = r.check;
    s.lat_avg_ns = static_cast<double>(r.lat_avg_ns);
    s.lat_p95_ns = static_cast<double>(r.lat_p95_ns);
    s.first = first;
    return s;
}

const char* test_name(Test t) {
    switch (t) {
    case Test::cpu:
        return "cpu";
    case Test::memory:
        return "memory";
    case Test::mutex:
        return "mutex";
    case Test::threads:
        return "threads";
    }
    return "?";
}

// Every run, either side: the right test, 2 threads, some events.
void basic_check(const Variant& v, const Result& r) {
    if (r.test != test_name(v.test)) check_failed(v.name + ": wrong test", r);
    if (r.threads != kThreads) check_failed(fmt::format("{}: threads != {}", v.name, kThreads), r);
    if (r.events == 0 || r.time_ns == 0) check_failed(v.name + ": no events", r);
}

std::string host_info() {
    std::string out;
    utsname u{};
    if (::uname(&u) == 0) out = fmt::format("Linux {} {}", u.release, u.machine);
    std::ifstream cpu("/proc/cpuinfo");
    std::string line;
    unsigned n = 0;
    std::string model;
    while (std::getline(cpu, line)) {
        if (line.rfind("model name", 0) == 0) {
            ++n;
            if (auto c = line.find(": "); c != std::string::npos) model = line.substr(c + 2);
        }
    }
    if (n) out += fmt::format(", {} x {}", n, model);
    return out;
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    if (!f) throw std::runtime_error("cannot write " + path);
    fmt::print(stderr, "wrote {}\n", path);
}

} // namespace

int run_overhead(const OverheadOptions& o) {
    auto t0 = std::chrono::steady_clock::now();
    OverheadReport report;
    report.repeat = o.repeat;
    report.time_s = o.full ? 10 : o.time_s;
    report.full = o.full;
    report.threads = kThreads;
    report.host = host_info();
    const bool tty = ::isatty(2) != 0;
    const std::string threads_opt = fmt::format("--threads={}", kThreads);
    for (const auto& v : variants(o)) {
        TestSeries ts;
        ts.name = v.name;
        ts.options = fmt::format("{} {} --events=0 --time={}", v.options, threads_opt, v.time_s);
        ts.note = v.note;
        for (const auto& p : o.policies)
            ts.guests.push_back({p, {}});
        std::vector<std::string> guest_args;
        {
            std::string word;
            for (char c : ts.options + ' ') {
                if (c != ' ') {
                    word += c;
                } else if (!word.empty()) {
                    guest_args.push_back(word);
                    word.clear();
                }
            }
        }
        std::optional<Result> ref;
        for (unsigned round = 0; round < o.repeat; ++round) {
            // Swap which side goes first every round, and rotate the policy
            // order, so drift on a shared machine favours no side.
            const bool native_first = round % 2 == 0;
            // One overwritten line on a terminal; a line per test in a log.
            auto progress = [&](const std::string& side) {
                if (tty) {
                    fmt::print(stderr, "\r\033[Koverhead: {} round {}/{}: {}", v.name, round + 1,
                               o.repeat, side);
                } else if (round == 0 && side == "native") {
                    fmt::print(stderr, "overhead: {} ({} rounds)\n", v.name, o.repeat);
                }
                std::fflush(stderr);
            };
            auto native_side = [&] {
                progress("native");
                auto r = workloads::run_native(v.test, ts.options, kThreads);
                basic_check(v, r);
                if (!ref) ref = r;
                v.check(r, *ref);
                ts.native.push_back(to_sample(r, native_first));
            };
            auto guest_side = [&](std::size_t pi, bool first) {
                const auto& policy = o.policies[pi];
                progress("guest --lock=" + policy);
                std::vector<std::string> argv{o.run_path, "--vcpus", std::to_string(kThreads),
                                              "--lock=" + policy};
                if (!v.guest_mem.empty()) argv.insert(argv.end(), {"--mem", v.guest_mem});
                argv.push_back(fmt::format("{}/sb_{}.bin", o.guest_dir, test_name(v.test)));
                argv.push_back("--");
                argv.insert(argv.end(), guest_args.begin(), guest_args.end());
                auto pr = run_checked(argv);
                auto r = workloads::parse_result_line(pr.out);
                if (!r)
                    throw std::runtime_error(
                        fmt::format("{}: no sb-result line from the guest:\n{}", v.name, pr.out));
                basic_check(v, *r);
                v.check(*r, *ref); // round 0 runs native first, so ref is set
                ts.guests[pi].samples.push_back(to_sample(*r, first));
            };
            auto guests = [&](bool first) {
                for (std::size_t k = 0; k < o.policies.size(); ++k)
                    guest_side((k + round) % o.policies.size(), first && k == 0);
            };
            if (native_first) {
                native_side();
                guests(false);
            } else {
                guests(true);
                native_side();
            }
        }
        report.tests.push_back(std::move(ts));
    }
    if (tty) fmt::print(stderr, "\r\033[K");
    fmt::print(stderr, "overhead: done\n");
    report.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    fmt::print("{}", render_table(report));
    if (!o.json_path.empty()) write_file(o.json_path, report_json(report).dump(2) + "\n");
    if (!o.html_path.empty()) write_file(o.html_path, render_html(report));
    return 0;
}

} // namespace minivmm::bench
