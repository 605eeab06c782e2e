#include "bench/control_bench.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "bench/control_report.hpp"
#include "bench/overhead_bench.hpp"
#include "bench/process.hpp"
#include "minivmm/control_client.hpp"
#include "native_workloads.hpp"

namespace minivmm::bench {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr unsigned kVcpus = 2;
constexpr const char* kMem = "256M";
constexpr std::uint64_t kHotplugGpa = 4ull << 30, kHotplugSize = 64ull << 20;
constexpr auto kStatsPeriod = 10ms;
// The memory-write row of minivmm-bench overhead with two changes. The total
// size: 2G is written in ~0.2 s, and the guest must run for all of --time.
// The scope: local (a block per thread) instead of global. Two vCPUs writing
// one shared block bounce its cache lines between the host CPUs, so they run
// faster when they do not run at the same time: measured here, 2 vCPUs on
// two host CPUs 1.8-2.2M events/s, the same squeezed onto one host CPU
// (taskset) 2.7-2.8M. Any load that takes a host CPU away then makes the
// global-scope guest faster, which hides the load's cost; with local scope
// its rate follows the CPU time it gets (2.4-2.7M both ways).
constexpr const char* kWorkload = "--memory-block-size=8K --memory-total-size=100T "
                                  "--memory-oper=write --memory-scope=local";

double ns_between(Clock::time_point a, Clock::time_point b) {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

// A private folder for the control socket, removed afterwards.
class SocketDir {
  public:
    SocketDir() {
        const char* tmp = std::getenv("TMPDIR");
        std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/minivmm-ctlbench-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr)
            throw std::runtime_error("cannot create a folder for the control socket in " +
                                     tmpl.substr(0, tmpl.rfind('/')));
        dir_ = tmpl;
    }
    ~SocketDir() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    SocketDir(const SocketDir&) = delete;
    SocketDir& operator=(const SocketDir&) = delete;
    std::string socket() const { return dir_ + "/api.sock"; }

  private:
    std::string dir_;
};

// One minivmm-run of the guest with a control socket.
struct GuestRun {
    std::vector<std::string> argv;
    std::string socket;
    std::string what; // "global baseline", for errors
};

GuestRun guest_run(const ControlOptions& o, const std::string& policy, const SocketDir& dir,
                   const char* side) {
    GuestRun g;
    g.socket = dir.socket();
    g.what = fmt::format("{} {} run", policy, side);
    g.argv = {o.run_path, "--vcpus", std::to_string(kVcpus), "--mem", kMem, "--lock", policy,
              "--api-sock", g.socket,
              // A hung guest ends instead of hanging the benchmark.
              "--timeout", std::to_string(o.time_s + 60), o.guest_dir + "/sb_memory.bin", "--"};
    std::string word;
    for (const char* c = kWorkload;; ++c) {
        if (*c == ' ' || *c == '\0') {
            if (!word.empty()) g.argv.push_back(word);
            word.clear();
            if (*c == '\0') break;
        } else {
            word += *c;
        }
    }
    g.argv.push_back(fmt::format("--threads={}", kVcpus));
    g.argv.push_back("--events=0");
    g.argv.push_back(fmt::format("--time={}", o.time_s));
    return g;
}

// An "error" member's "class: desc", or nullopt for a "return"; throws on
// anything else.
std::optional<std::string> response_error(const json& r, const std::string& line) {
    if (!r.is_object() || (!r.contains("return") && !r.contains("error")))
        throw std::runtime_error("malformed control response: " + line);
    if (r.contains("return")) return std::nullopt;
    const auto& e = r["error"];
    return fmt::format("{}: {}", e.value("class", "?"), e.value("desc", "?"));
}

json parse_response(const std::string& line) {
    auto r = json::parse(line, nullptr, false);
    if (r.is_discarded()) throw std::runtime_error("control response is not JSON: " + line);
    return r;
}

// Waits until the socket answers query-status: the VMM's loop runs and its
// vCPU threads have started. Throws when the child exits first or after 10 s.
void wait_for_socket(const GuestRun& g, ChildProcess& child) {
    const auto deadline = Clock::now() + 10s;
    for (;;) {
        if (child.exited())
            throw std::runtime_error(fmt::format("{} before its control socket answered ({})",
                                                 describe_failure(g.argv, child.wait()), g.what));
        try {
            ControlClient c(g.socket, 2s);
            auto line = c.request(R"({"id":0,"command":"query-status"})");
            if (auto err = response_error(parse_response(line), line))
                throw std::runtime_error(
                    fmt::format("query-status refused ({}): {}", g.what, *err));
            return;
        } catch (const ControlError&) {
            if (Clock::now() > deadline) {
                child.kill(SIGKILL);
                throw std::runtime_error(fmt::format(
                    "the control socket {} did not answer within 10 s ({})", g.socket, g.what));
            }
            std::this_thread::sleep_for(2ms);
        }
    }
}

// The guest's sb-result, checked.
GuestRate guest_result(const GuestRun& g, const ProcessResult& r) {
    if (r.status != 0)
        throw std::runtime_error(fmt::format("{} ({})", describe_failure(g.argv, r), g.what));
    auto res = workloads::parse_result_line(r.out);
    if (!res)
        throw std::runtime_error(
            fmt::format("no sb-result line from the guest ({}): {}", g.what, r.out));
    if (res->test != "memory" || res->threads != kVcpus || res->events == 0 || res->time_ns == 0 ||
        res->check == 0 || res->check == std::numeric_limits<std::uint64_t>::max())
        throw std::runtime_error(
            fmt::format("CHECK FAILED: {}: {}", g.what, workloads::format_result(*res)));
    return {res->events, res->time_ns, res->check};
}

GuestRate baseline_run(const ControlOptions& o, const std::string& policy) {
    SocketDir dir;
    auto g = guest_run(o, policy, dir, "baseline");
    ChildProcess child(g.argv);
    wait_for_socket(g, child);
    return guest_result(g, child.wait());
}

VmmStats vmm_stats(const json& q) {
    VmmStats v;
    try {
        const auto& lock = q.at("slot_lock");
        const auto& adds = q.at("memory_hotplug").at("adds");
        const auto& removes = q.at("memory_hotplug").at("removes");
        v.lock_contended = lock.at("contended").get<std::uint64_t>();
        v.lock_wait_ns = lock.at("wait_ns").get<std::uint64_t>();
        v.adds = adds.at("count").get<std::uint64_t>();
        v.removes = removes.at("count").get<std::uint64_t>();
        v.add_p50_ns = adds.at("p50_ns_le").get<std::uint64_t>();
        v.add_p99_ns = adds.at("p99_ns_le").get<std::uint64_t>();
        v.remove_p50_ns = removes.at("p50_ns_le").get<std::uint64_t>();
        v.remove_p99_ns = removes.at("p99_ns_le").get<std::uint64_t>();
        v.raw = {{"slot_lock", lock},
                 {"memory_hotplug", q.at("memory_hotplug")},
                 {"slot_updates", q.at("slot_updates")}};
    } catch (const json::exception& e) {
        throw std::runtime_error(
            fmt::format("query-stats response lacks a counter ({}): {}", e.what(), q.dump()));
    }
    return v;
}

// The loaded run: the guest, and while it runs a hotplug client and a
// query-stats client, each on its own connection and thread.
LoadedRun loaded_run(const ControlOptions& o, const std::string& policy) {
    SocketDir dir;
    auto g = guest_run(o, policy, dir, "loaded");
    ChildProcess child(g.argv);
    wait_for_socket(g, child);

    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::string failure; // the first failure; aborts the benchmark
    auto fail = [&](const std::string& msg) {
        {
            std::lock_guard lock(mutex);
            if (failure.empty()) failure = msg;
        }
        stop = true;
        child.kill(SIGTERM);
    };
    // An error response or a closed connection is expected only once the VM
    // is stopping: ask on `c`, or on a new connection.
    auto guest_running = [&](ControlClient* c) {
        try {
            std::optional<ControlClient> fresh;
            if (!c) c = &fresh.emplace(g.socket, 2s);
            auto r = parse_response(c->request(R"({"id":"st","command":"query-status"})"));
            return r.contains("return") && r["return"].value("status", "") == "running";
        } catch (const std::exception&) {
            return false; // refused or closed: the VMM has stopped serving
        }
    };
    // Why each client stopped.
    std::string hot_end, stats_end;
    // Runs one client's loop: a broken connection while the guest runs is a
    // failure; afterwards it is only why the client stopped.
    auto run_client = [&](const char* who, std::string& end, auto&& loop) {
        try {
            loop();
            if (end.empty()) end = "stopped at the guest's exit";
        } catch (const ControlError& e) {
            if (guest_running(nullptr))
                fail(fmt::format("the {} client's connection failed while the guest was running "
                                 "({}): {}",
                                 who, g.what, e.what()));
            end = e.what();
        } catch (const std::exception& e) {
            fail(fmt::format("{} client ({}): {}", who, g.what, e.what()));
        }
    };
    LoadedRun run;
    json last_stats;

    const auto t0 = Clock::now();
    std::thread hot([&] {
        auto last = t0;
        run_client("hotplug", hot_end, [&] {
            ControlClient c(g.socket, 10s);
            const std::string add =
                json{{"id", "add"},
                     {"command", "memory-add"},
                     {"arguments", {{"gpa", kHotplugGpa}, {"size", kHotplugSize}}}}
                    .dump();
            const std::string remove = json{
                {"id", "rm"},
                {"command", "memory-remove"},
                {"arguments",
                 {{"gpa", kHotplugGpa}}}}.dump();
            while (!stop.load()) {
                const auto a0 = Clock::now();
                auto line = c.request(add);
                const auto a1 = Clock::now();
                if (auto err = response_error(parse_response(line), line)) {
                    if (guest_running(&c))
                        fail(fmt::format("memory-add gpa={:#x} size={:#x} was refused while the "
                                         "guest was running ({}): {}",
                                         kHotplugGpa, kHotplugSize, g.what, *err));
                    else
                        hot_end = "memory-add refused after the guest ended: " + *err;
                    break;
                }
                line = c.request(remove);
                const auto r1 = Clock::now();
                if (auto err = response_error(parse_response(line), line)) {
                    if (guest_running(&c))
                        fail(fmt::format("memory-remove gpa={:#x} was refused while the guest was "
                                         "running ({}): {}",
                                         kHotplugGpa, g.what, *err));
                    else
                        hot_end = "memory-remove refused after the guest ended: " + *err;
                    break;
                }
                run.add_ns.push_back(ns_between(a0, a1));
                run.remove_ns.push_back(ns_between(a1, r1));
                run.round_trip_ns.push_back(ns_between(a0, r1));
                ++run.round_trips;
                last = r1;
            }
        });
        run.hotplug_seconds = std::chrono::duration<double>(last - t0).count();
    });
    std::thread stats([&] {
        run_client("query-stats", stats_end, [&] {
            ControlClient c(g.socket, 10s);
            auto next = t0;
            while (!stop.load()) {
                std::this_thread::sleep_until(next);
                if (stop.load()) break;
                const auto q0 = Clock::now();
                auto line = c.request(R"({"id":"qs","command":"query-stats"})");
                const auto q1 = Clock::now();
                auto r = parse_response(line);
                if (auto err = response_error(r, line)) {
                    if (guest_running(&c))
                        fail(fmt::format("query-stats was refused while the guest was running "
                                         "({}): {}",
                                         g.what, *err));
                    else
                        stats_end = "query-stats refused after the guest ended: " + *err;
                    break;
                }
                run.query_stats_ns.push_back(ns_between(q0, q1));
                last_stats = std::move(r["return"]);
                // Every 10 ms from t0; a late response delays the next one
                // instead of causing a burst.
                next += kStatsPeriod;
                if (next < q1) next = q1;
            }
        });
    });
    const ProcessResult& result = child.wait();
    stop = true;
    hot.join();
    stats.join();

    if (!failure.empty()) throw std::runtime_error(failure);
    run.guest = guest_result(g, result);
    if (run.round_trips == 0)
        throw std::runtime_error(fmt::format(
            "no memory-add + memory-remove round trip completed while the guest ran ({}): {}",
            g.what, hot_end));
    if (run.query_stats_ns.empty() || last_stats.is_null())
        throw std::runtime_error(fmt::format(
            "no query-stats was answered while the guest ran ({}): {}", g.what, stats_end));
    run.ended_by = fmt::format("hotplug client: {}; query-stats client: {}", hot_end, stats_end);
    run.vmm = vmm_stats(last_stats);
    return run;
}

// The 1-minute load average, "?" when /proc/loadavg cannot be read: on a
// shared machine, the context of the figures.
std::string load_average() {
    std::ifstream f("/proc/loadavg");
    std::string one;
    return f >> one ? one : "?";
}

} // namespace

int run_control(const ControlOptions& o) {
    const auto t0 = Clock::now();
    ControlReport report;
    report.repeat = o.repeat;
    report.time_s = o.time_s;
    report.guest = "sb_memory.bin";
    report.guest_options =
        fmt::format("{} --threads={} --events=0 --time={}", kWorkload, kVcpus, o.time_s);
    report.vcpus = kVcpus;
    report.mem = kMem;
    report.hotplug_gpa = kHotplugGpa;
    report.hotplug_size = kHotplugSize;
    report.stats_period_ms = static_cast<unsigned>(kStatsPeriod.count());
    report.host = host_info();
    report.kvm_flavor = to_string(o.kvm_flavor);
    const std::string load_before = load_average();
    for (const auto& p : o.policies)
        report.policies.push_back({p, {}});
    const bool tty = ::isatty(2) != 0;
    const std::size_t n = o.policies.size();
    for (unsigned round = 0; round < o.repeat; ++round) {
        // Rotate the policy order and alternate which run goes first, so
        // drift on a shared machine favours no policy and no side.
        const bool loaded_first = round % 2 == 1;
        for (std::size_t k = 0; k < n; ++k) {
            auto& series = report.policies[(k + round) % n];
            auto progress = [&](const char* side) {
                if (tty)
                    fmt::print(stderr, "\r\033[Kcontrol: round {}/{}: {} {}", round + 1, o.repeat,
                               series.policy, side);
                else
                    fmt::print(stderr, "control: round {}/{}: {} {}\n", round + 1, o.repeat,
                               series.policy, side);
                std::fflush(stderr);
            };
            ControlRound r;
            r.round = round;
            r.loaded_first = loaded_first;
            if (loaded_first) {
                progress("loaded");
                r.loaded = loaded_run(o, series.policy);
                progress("baseline");
                r.baseline = baseline_run(o, series.policy);
            } else {
                progress("baseline");
                r.baseline = baseline_run(o, series.policy);
                progress("loaded");
                r.loaded = loaded_run(o, series.policy);
            }
            // The hot-added RAM is never the guest's: the block it writes,
            // and so its checksum, must not change under the load.
            if (r.loaded.guest.check != r.baseline.check)
                throw std::runtime_error(fmt::format(
                    "CHECK FAILED: {}: the guest's written-block checksum under load {} != "
                    "baseline {}",
                    series.policy, r.loaded.guest.check, r.baseline.check));
            series.rounds.push_back(std::move(r));
        }
    }
    if (tty) fmt::print(stderr, "\r\033[K");
    fmt::print(stderr, "control: done\n");
    report.wall_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    report.load = fmt::format("{} at the start, {} at the end (1 minute; {} host CPUs)",
                              load_before, load_average(), std::thread::hardware_concurrency());
    fmt::print("{}", render_control_table(report));
    if (!o.json_path.empty()) write_file(o.json_path, control_report_json(report).dump(2) + "\n");
    return 0;
}

} // namespace minivmm::bench
