// Native runner: guest/workloads/sb_run.h on std::thread threads.
#include "native_workloads.hpp"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "minivmm/host_mapping.hpp"
#include "sb_report.h"
#include "sb_run.h"

namespace minivmm::workloads {

// Both sides time events with the same code (sb_tsc_ns in sb_run.h): the
// guest has no vDSO clock, and clock_gettime costs ~20 ns here, a sixth of a
// memory-read event, which would be charged to the native side only. The
// rate is calibrated once against steady_clock.
std::uint64_t tsc_khz() {
    static const std::uint64_t khz = [] {
        using clock = std::chrono::steady_clock;
        auto t0 = clock::now();
        std::uint64_t c0 = __builtin_ia32_rdtsc();
        while (clock::now() - t0 < std::chrono::milliseconds(50)) {
        }
        std::uint64_t c1 = __builtin_ia32_rdtsc();
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count();
        return ns > 0 ? (c1 - c0) * 1000000 / static_cast<std::uint64_t>(ns) : 1000000;
    }();
    return khz;
}

std::uint64_t tsc_now_ns(void*) {
    return sb_tsc_ns(tsc_khz());
}

namespace {

// --thread-yield=sched: what sysbench does, give the CPU back to the kernel.
void native_sched_yield(void*) {
    ::sched_yield();
}

// --thread-yield=pause: the guest's code, word for word.
void native_pause_yield(void* arg) {
    sb_pause_burst(static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(arg)));
}

Result to_result(const sb_result& r) {
    Result out;
    out.test = sb_test_name(r.test);
    out.threads = r.threads;
    out.events = r.events;
    out.time_ns = r.time_ns;
    out.lat_min_ns = r.lat_min_ns;
    out.lat_avg_ns = r.lat_avg_ns;
    out.lat_max_ns = r.lat_max_ns;
    out.lat_p95_ns = r.lat_p95_ns;
    out.lat_sum_ns = r.lat_sum_ns;
    out.check = r.check;
    out.fairness_events_avg = static_cast<double>(r.fairness_events_avg_milli) / 1000.0;
    out.fairness_events_stddev = static_cast<double>(r.fairness_events_stddev_milli) / 1000.0;
    out.fairness_time_avg_ns = r.fairness_time_avg_ns;
    out.fairness_time_stddev_ns = r.fairness_time_stddev_ns;
    return out;
}

std::uint64_t to_milli(double v) {
    return static_cast<std::uint64_t>(v * 1000.0 + 0.5);
}

} // namespace

std::optional<Test> parse_test(std::string_view name) {
    for (int t = SB_TEST_CPU; t <= SB_TEST_THREADS; ++t)
        if (name == sb_test_name(t)) return static_cast<Test>(t);
    return std::nullopt;
}

Result run_native(Test test, std::string_view options, unsigned threads) {
    sb_run run{};
    run.test = static_cast<int>(test);
    sb_options_default(&run.opt);
    std::string cmdline(options);
    const char* bad = nullptr;
    if (!sb_parse_options(cmdline.c_str(), &run.opt, &bad))
        throw std::invalid_argument("workloads: bad option at '" + std::string(bad ? bad : "") +
                                    "' in '" + cmdline + "'");
    if (threads == 0) threads = run.opt.threads ? static_cast<unsigned>(run.opt.threads) : 1;
    run.threads = threads;
    run.now_ns = tsc_now_ns;
    if (run.opt.thread_yield == SB_YIELD_SCHED) {
        run.yield = native_sched_yield;
    } else {
        run.yield = native_pause_yield;
        run.yield_arg = reinterpret_cast<void*>(static_cast<std::uintptr_t>(run.opt.yield_pauses));
    }
    // Fresh anonymous memory (HostMapping), so touch mode includes first-touch faults.
    auto mem = HostMapping::anonymous(
        std::max<std::size_t>(sb_run_bytes(run.test, &run.opt, threads), 4096));
    run.mem = static_cast<unsigned char*>(mem.data());
    if (!sb_run_prepare(&run))
        throw std::invalid_argument("workloads: the run needs --events or --time");

    std::vector<std::thread> workers;
    workers.reserve(threads);
    std::uint64_t go = 0;
    for (unsigned t = 0; t < threads; ++t)
        workers.emplace_back([&run, &go, t] {
            while (__atomic_load_n(&go, __ATOMIC_ACQUIRE) == 0)
                ::sched_yield(); // more threads than CPUs must not starve the starter
            sb_run_worker(&run, t);
        });
    sb_run_start(&run);
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    for (auto& w : workers)
        w.join();
    sb_result res{};
    sb_run_finish(&run, &res);
    return to_result(res);
}

namespace {

sb_result to_sb_result(const Result& r) {
    sb_result s{};
    auto kind = parse_test(r.test);
    s.test = kind ? static_cast<int>(*kind) : -1;
    s.threads = r.threads;
    s.events = r.events;
    s.time_ns = r.time_ns;
    s.lat_min_ns = r.lat_min_ns;
    s.lat_avg_ns = r.lat_avg_ns;
    s.lat_max_ns = r.lat_max_ns;
    s.lat_p95_ns = r.lat_p95_ns;
    s.check = r.check;
    s.fairness_events_avg_milli = to_milli(r.fairness_events_avg);
    s.fairness_events_stddev_milli = to_milli(r.fairness_events_stddev);
    s.lat_sum_ns = r.lat_sum_ns;
    s.fairness_time_avg_ns = r.fairness_time_avg_ns;
    s.fairness_time_stddev_ns = r.fairness_time_stddev_ns;
    return s;
}

} // namespace

std::string format_result(const Result& r) {
    sb_result s = to_sb_result(r);
    char buf[512];
    int n = std::snprintf(buf, sizeof buf, SB_RESULT_FMT, SB_RESULT_ARGS_NAMED(r.test.c_str(), s));
    return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

std::string format_report(const Result& r, std::string_view options) {
    sb_options opt{};
    sb_options_default(&opt);
    std::string cmdline(options);
    const char* bad = nullptr;
    // fileio's options are its own (sb_fileio.h); only memory needs a value here
    if (r.test == "memory" && !sb_parse_options(cmdline.c_str(), &opt, &bad))
        throw std::invalid_argument("workloads: bad option at '" + std::string(bad ? bad : "") +
                                    "' in '" + cmdline + "'");
    sb_result s = to_sb_result(r);
    sb_report_info info{r.test.c_str(), cmdline.c_str(), opt.memory_block_size, 0, 0, 0, 0};
    std::string out(sb_report_format(nullptr, 0, &s, &info) + 1, '\0');
    out.resize(sb_report_format(out.data(), out.size(), &s, &info));
    return out;
}

std::optional<Result> parse_result_line(std::string_view text) {
    constexpr std::string_view kPrefix = "sb-result ";
    auto at = text.find(kPrefix);
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view line = text.substr(at + kPrefix.size());
    line = line.substr(0, line.find('\n'));
    Result r;
    struct U64Field {
        std::string_view key;
        std::uint64_t* field;
        bool seen = false;
    };
    U64Field nums[] = {{"threads", &r.threads},
                       {"events", &r.events},
                       {"time_ns", &r.time_ns},
                       {"lat_min_ns", &r.lat_min_ns},
                       {"lat_avg_ns", &r.lat_avg_ns},
                       {"lat_max_ns", &r.lat_max_ns},
                       {"lat_p95_ns", &r.lat_p95_ns},
                       {"lat_sum_ns", &r.lat_sum_ns},
                       {"check", &r.check},
                       {"fairness_time_avg_ns", &r.fairness_time_avg_ns},
                       {"fairness_time_stddev_ns", &r.fairness_time_stddev_ns}};
    bool have_test = false, have_avg = false, have_stddev = false;
    while (!line.empty()) {
        auto sp = line.find(' ');
        std::string_view tok = line.substr(0, sp);
        line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
        if (tok.empty()) continue;
        auto eq = tok.find('=');
        if (eq == std::string_view::npos) return std::nullopt;
        std::string_view key = tok.substr(0, eq), value = tok.substr(eq + 1);
        if (key == "test") {
            r.test = std::string(value);
            have_test = !value.empty();
            continue;
        }
        if (key == "fairness_events_avg" || key == "fairness_events_stddev") {
            double v = 0;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
            if (ec != std::errc{} || p != value.data() + value.size()) return std::nullopt;
            if (key == "fairness_events_avg") {
                r.fairness_events_avg = v;
                have_avg = true;
            } else {
                r.fairness_events_stddev = v;
                have_stddev = true;
            }
            continue;
        }
        for (auto& f : nums) {
            if (f.key != key) continue;
            auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), *f.field);
            if (ec != std::errc{} || p != value.data() + value.size()) return std::nullopt;
            f.seen = true;
        }
    }
    for (const auto& f : nums)
        if (!f.seen) return std::nullopt;
    if (!have_test || !have_avg || !have_stddev) return std::nullopt;
    return r;
}

std::optional<Result> parse_sysbench_report(std::string_view text, std::string_view test,
                                            std::uint64_t threads) {
    const std::string out(text);
    auto value = [&](const char* tag) -> std::optional<double> {
        auto at = out.find(tag);
        if (at == std::string::npos) return std::nullopt;
        double v = 0;
        if (std::sscanf(out.c_str() + at + std::strlen(tag), " %lf", &v) != 1) return std::nullopt;
        return v;
    };
    auto events = value("total number of events:");
    auto time_s = value("total time:");
    auto avg = value("avg:");
    auto p95 = value("95th percentile:");
    if (!events || !time_s || !avg || !p95 || *events <= 0 || *time_s <= 0) return std::nullopt;
    Result r;
    r.test = std::string(test);
    r.threads = threads;
    r.events = static_cast<std::uint64_t>(*events);
    r.time_ns = static_cast<std::uint64_t>(std::llround(*time_s * 1e9));
    r.lat_avg_ns = static_cast<std::uint64_t>(std::llround(*avg * 1e6));
    r.lat_p95_ns = static_cast<std::uint64_t>(std::llround(*p95 * 1e6));
    // The rest of the report when it is there (older sysbench versions
    // print less): ms, and "avg/stddev" pairs for fairness.
    auto ms = [](std::optional<double> v) {
        return v ? static_cast<std::uint64_t>(std::llround(*v * 1e6)) : 0;
    };
    r.lat_min_ns = ms(value("min:"));
    r.lat_max_ns = ms(value("max:"));
    r.lat_sum_ns = ms(value("sum:"));
    auto pair = [&](const char* tag, double& avg_out, double& stddev_out) {
        auto at = out.find(tag);
        double a = 0, d = 0;
        if (at != std::string::npos &&
            std::sscanf(out.c_str() + at + std::strlen(tag), " %lf/%lf", &a, &d) == 2) {
            avg_out = a;
            stddev_out = d;
        }
    };
    pair("events (avg/stddev):", r.fairness_events_avg, r.fairness_events_stddev);
    double exec_avg = 0, exec_stddev = 0;
    pair("execution time (avg/stddev):", exec_avg, exec_stddev);
    r.fairness_time_avg_ns = static_cast<std::uint64_t>(std::llround(exec_avg * 1e9));
    r.fairness_time_stddev_ns = static_cast<std::uint64_t>(std::llround(exec_stddev * 1e9));
    return r;
}

} // namespace minivmm::workloads
