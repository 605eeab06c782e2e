// minivmm-bench: benchmarks that put minivmm next to a baseline in one run,
// alternating the two sides and reporting medians with their spread.
//
// Each subcommand refuses an emulated KVM (minivmm/kvm_flavor.hpp: timings
// there mean nothing) with status 2 unless given --allow-emulated; with it,
// every figure it prints or writes is marked emulated (bench/emulated.hpp).
//
//   minivmm-bench foundation [--repeat N] [--iterations N] [--hypercalls N]
//     cpu loop:  the same register loop natively and in a guest (TSC cycles)
//     clock read: back-to-back rdtsc natively and in a guest (cycles per read)
//     interruptions: 2 threads / vCPUs spinning on rdtsc: CPU time lost in
//                gaps > 2 us (interrupts, preemption, world switches)
//     exit path: N zero-length write hypercalls under minivmm-run and under
//                minivmm-bare-run (the barest correct KVM_RUN loop)
//     start-up:  minivmm-run hello.bin as a whole process: wall time, peak RSS
//
//   minivmm-bench slots [--quick] [--slots LIST] [--policy LIST] [--json FILE] ...
//     KVM memory-slot tables under each lock policy (see bench/slots_bench.hpp)
//
//   minivmm-bench overhead [--tests LIST] [--repeat N] [--time S] [--lock LIST]
//                          [--json FILE] [--html FILE] [--full] [--verbose] ...
//     sysbench-style cpu/memory/mutex/threads natively and in the sb_* guests,
//     with overhead, 95% CI and a verdict (see bench/overhead_bench.hpp)
//   minivmm-bench overhead --program=sysbench [--threads 1,2] [--repeat N] ...
//     the real sysbench natively and under minivmm-run --linux, beside the
//     seed experiment's QEMU-KVM figures (options: bench/overhead_cli.hpp)
//
//   minivmm-bench linux [--repeat N] [--calls N] [--reads N] [--cpu-events N]
//     a static Linux program natively and under minivmm-run --linux: system
//     call round trip (and a bare hypercall exit), vDSO clock read, sb_static
//     cpu, start-up (see bench/linux_bench.hpp)
//
//   minivmm-bench control [--lock LIST] [--repeat N] [--time S] [--json FILE]
//     memory-add + memory-remove round trips on the control socket while the
//     sb_memory guest runs, per lock policy; the guest's slowdown under that
//     load with a 95% CI; query-stats latency (see bench/control_bench.hpp)
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "bench/control_bench.hpp"
#include "bench/emulated.hpp"
#include "bench/linux_bench.hpp"
#include "bench/overhead_bench.hpp"
#include "bench/overhead_cli.hpp"
#include "bench/process.hpp"
#include "bench/slots_bench.hpp"
#include "bench/stats.hpp"
#include "gaps.h"
#include "minivmm/kvm_flavor.hpp"
#include "native_workloads.hpp"
#include "regloop.h"
#include "tscloop.h"

namespace fs = std::filesystem;
using minivmm::KvmFlavor;
using minivmm::bench::emulated_suffix;
using minivmm::bench::format_summary;
using minivmm::bench::parse_number;
using minivmm::bench::run_checked;
using minivmm::bench::summarize;

namespace {

struct Paths {
    std::string run, bare, guests;
};

std::uint64_t native_regloop_cycles(std::uint64_t iterations) {
    _mm_lfence();
    std::uint64_t t0 = __rdtsc();
    _mm_lfence();
    volatile std::uint64_t sink = mv_regloop(iterations);
    (void)sink;
    _mm_lfence();
    return __rdtsc() - t0;
}

constexpr std::uint64_t kTscReads = 10'000'000;

// Interruptions: `threads` threads (or vCPUs) spin on the TSC for kGapMs and
// sum the gaps longer than kGapNs (guest/workloads/gaps.h).
constexpr std::uint64_t kGapMs = 1000, kGapNs = 2000;

struct GapRun {
    double lost_fraction = 0; // of the CPU time spun
    double gaps_per_cpu_s = 0;
    double ns_per_gap = 0;
};

GapRun gap_run(const mv_gaps& g, std::uint64_t khz) {
    GapRun r;
    const double secs = static_cast<double>(g.spun) / (static_cast<double>(khz) * 1e3);
    r.lost_fraction = static_cast<double>(g.lost) / static_cast<double>(g.spun);
    r.gaps_per_cpu_s = static_cast<double>(g.gaps) / secs; // spun (so secs) sums the CPUs
    r.ns_per_gap = g.gaps ? static_cast<double>(g.lost) / static_cast<double>(g.gaps) /
                                (static_cast<double>(khz) / 1e6)
                          : 0;
    return r;
}

GapRun native_gaps(unsigned threads) {
    const std::uint64_t khz = minivmm::workloads::tsc_khz();
    std::vector<mv_gaps> per(threads);
    {
        std::vector<std::jthread> pool;
        for (unsigned t = 0; t < threads; ++t)
            pool.emplace_back(
                [&per, t, khz] { mv_gaps_run(kGapMs * khz, kGapNs * khz / 1000000, &per[t]); });
    }
    mv_gaps sum{};
    for (const auto& g : per)
        mv_gaps_add(&sum, &g);
    return gap_run(sum, khz);
}

int foundation(const Paths& p, unsigned repeat, std::uint64_t iterations, std::uint64_t hypercalls,
               bool emulated) {
    const char* cycles_fmt = "regloop: %*u iterations, %lf tsc cycles";
    const char* hc_fmt = "hcloop: %*u hypercalls, %lf cycles/hypercall";
    std::vector<double> native_tsc, guest_tsc;
    std::vector<GapRun> native_gap, guest_gap;
    constexpr unsigned kGapThreads = 2;
    std::vector<double> native_cyc, guest_cyc, bare_wall, run_wall, bare_hc, run_hc, hello_wall,
        hello_rss;
    const std::string hc = std::to_string(hypercalls), it = std::to_string(iterations);
    for (unsigned i = 0; i < repeat; ++i) {
        fmt::print(stderr, "\rfoundation: run {}/{}", i + 1, repeat);
        std::fflush(stderr);
        // Alternate which side goes first, so drift on a shared machine
        // does not always favour the same side.
        bool native_first = i % 2 == 0;
        auto guest_side = [&] {
            auto r = run_checked({p.run, p.guests + "/regloop.bin", "--", it});
            guest_cyc.push_back(parse_number(r.out, "regloop:", cycles_fmt));
        };
        auto native_side = [&] {
            native_cyc.push_back(static_cast<double>(native_regloop_cycles(iterations)));
        };
        auto guest_clock = [&] {
            auto r =
                run_checked({p.run, p.guests + "/tscloop.bin", "--", std::to_string(kTscReads)});
            guest_tsc.push_back(parse_number(r.out, "tscloop:", "tscloop: %*u reads, %lf") /
                                static_cast<double>(kTscReads));
        };
        auto native_clock = [&] {
            std::uint64_t sink = 0;
            native_tsc.push_back(static_cast<double>(mv_tscloop(kTscReads, &sink)) /
                                 static_cast<double>(kTscReads));
            volatile std::uint64_t keep = sink;
            (void)keep;
        };
        auto native_interruptions = [&] { native_gap.push_back(native_gaps(kGapThreads)); };
        auto guest_interruptions = [&] {
            auto r =
                run_checked({p.run, "--vcpus", std::to_string(kGapThreads), p.guests + "/gaps.bin",
                             "--", std::to_string(kGapMs), std::to_string(kGapNs)});
            mv_gaps g{};
            g.spun = static_cast<std::uint64_t>(
                parse_number(r.out, "gaps:", "gaps: vcpus=%*u spun=%lf"));
            g.gaps = static_cast<std::uint64_t>(parse_number(r.out, " gaps=", " gaps=%lf"));
            g.lost = static_cast<std::uint64_t>(parse_number(r.out, " lost=", " lost=%lf"));
            guest_gap.push_back(gap_run(g, minivmm::workloads::tsc_khz()));
        };
        auto run_side = [&] {
            auto r = run_checked({p.run, p.guests + "/hcloop.bin", "--", hc});
            run_wall.push_back(r.wall_seconds);
            run_hc.push_back(parse_number(r.out, "hcloop:", hc_fmt));
        };
        auto bare_side = [&] {
            auto r = run_checked({p.bare, p.guests + "/hcloop.bin", hc});
            bare_wall.push_back(r.wall_seconds);
            bare_hc.push_back(parse_number(r.out, "hcloop:", hc_fmt));
        };
        if (native_first) {
            native_side(), guest_side(), native_clock(), guest_clock(), native_interruptions(),
                guest_interruptions(), bare_side(), run_side();
        } else {
            guest_side(), native_side(), guest_clock(), native_clock(), guest_interruptions(),
                native_interruptions(), run_side(), bare_side();
        }
        auto h = run_checked({p.run, p.guests + "/hello.bin"});
        hello_wall.push_back(h.wall_seconds);
        hello_rss.push_back(static_cast<double>(h.max_rss_kib));
    }
    fmt::print(stderr, "\n");
    auto nc = summarize(native_cyc), gc = summarize(guest_cyc);
    auto bw = summarize(bare_wall), rw = summarize(run_wall);
    auto bh = summarize(bare_hc), rh = summarize(run_hc);
    auto hw = summarize(hello_wall), hr = summarize(hello_rss);
    const auto mark = emulated_suffix(emulated);
    fmt::print("{}minivmm-bench foundation: {} alternated runs; median [min..max]\n\n",
               minivmm::bench::emulated_banner_line(emulated), repeat);
    fmt::print("cpu loop, {} iterations (TSC cycles)\n", iterations);
    fmt::print("  native        {}{}\n", format_summary(nc, 1e-9, "Gcycles"), mark);
    fmt::print("  guest         {}{}\n", format_summary(gc, 1e-9, "Gcycles"), mark);
    fmt::print("  guest/native  {:.4f}  ({:+.2f}%){}\n\n", gc.median / nc.median,
               (gc.median / nc.median - 1) * 100, mark);
    auto nt = summarize(native_tsc), gt = summarize(guest_tsc);
    fmt::print("clock read, {} back-to-back rdtsc (TSC cycles per read)\n", kTscReads);
    fmt::print("  native        {}{}\n", format_summary(nt, 1, "cycles", 1), mark);
    fmt::print("  guest         {}{}\n", format_summary(gt, 1, "cycles", 1), mark);
    fmt::print("  guest/native  {:.2f}{}\n\n", gt.median / nt.median, mark);
    auto gap_field = [](const std::vector<GapRun>& runs, double GapRun::*field) {
        std::vector<double> v;
        for (const auto& r : runs)
            v.push_back(r.*field);
        return summarize(v);
    };
    std::vector<double> extra;
    for (std::size_t i = 0; i < native_gap.size(); ++i)
        extra.push_back(guest_gap[i].lost_fraction - native_gap[i].lost_fraction);
    fmt::print("interruptions: {} threads / vCPUs spinning on rdtsc for {} ms, gaps > {} us\n",
               kGapThreads, kGapMs, kGapNs / 1000);
    for (const auto* side : {&native_gap, &guest_gap}) {
        fmt::print("  {:<12}  CPU time lost {}, {} gaps/s per CPU, {} per gap{}\n",
                   side == &native_gap ? "native" : "guest",
                   format_summary(gap_field(*side, &GapRun::lost_fraction), 100, "%", 2),
                   format_summary(gap_field(*side, &GapRun::gaps_per_cpu_s), 1e-3, "k", 2),
                   format_summary(gap_field(*side, &GapRun::ns_per_gap), 1e-3, "us", 2), mark);
    }
    fmt::print("  guest-native  {} of CPU time (per round; what a CPU-bound guest loses to "
               "interruptions beyond native){}\n\n",
               format_summary(summarize(extra), 100, "%", 2), mark);
    fmt::print("exit path, {} zero-length write hypercalls (whole process)\n", hypercalls);
    fmt::print("  bare KVM_RUN loop  {}   {:.0f} cycles/hypercall in guest{}\n",
               format_summary(bw, 1, "s"), bh.median, mark);
    fmt::print("  minivmm-run        {}   {:.0f} cycles/hypercall in guest{}\n",
               format_summary(rw, 1, "s"), rh.median, mark);
    fmt::print("  minivmm-run/bare   {:.4f}  ({:+.2f}%) wall, {:.4f} per hypercall{}\n\n",
               rw.median / bw.median, (rw.median / bw.median - 1) * 100, rh.median / bh.median,
               mark);
    fmt::print("minivmm-run hello.bin (whole process)\n");
    fmt::print("  wall          {}{}\n", format_summary(hw, 1e3, "ms", 2), mark);
    fmt::print("  peak RSS      {}{}\n", format_summary(hr, 1.0 / 1024, "MiB", 2), mark);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"minivmm benchmarks: minivmm next to a baseline, measured in one run",
                 "minivmm-bench"};
    app.require_subcommand(1);
    Paths paths;
    auto self = fs::read_symlink("/proc/self/exe").parent_path();
    paths.run = (self / "minivmm-run").string();
    paths.bare = (self / "minivmm-bare-run").string();
    // Installed (cmake --install, the .deb), the guest images are at a fixed
    // place relative to this program; in the build tree, in its guest-images.
    std::error_code ec;
    auto installed_guests = (self / MINIVMM_INSTALLED_GUEST_DIR).lexically_normal();
    paths.guests = fs::is_directory(installed_guests, ec) ? installed_guests.string()
                                                          : std::string(MINIVMM_GUEST_DIR);
    app.add_option("--guest-dir", paths.guests, "folder with the guest images")
        ->check(CLI::ExistingDirectory)
        ->capture_default_str();

    unsigned repeat = 7;
    std::uint64_t iterations = 500'000'000, hypercalls = 20'000;
    auto* f =
        app.add_subcommand("foundation", "cpu loop, clock read, exit path and start-up figures");
    f->add_option("--repeat", repeat, "alternated runs per side (default 7)")
        ->check(CLI::Range(1u, 1000u));
    f->add_option("--iterations", iterations, "register-loop iterations (default 5e8)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
    f->add_option("--hypercalls", hypercalls, "hypercalls per exit-path run (default 20000)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));

    minivmm::bench::SlotsOptions so;
    std::vector<std::string> policy_names{"per-listener", "global", "rcu"};
    std::vector<std::string> parts{"memslots", "contention", "guests"};
    bool quick = false;
    auto* s = app.add_subcommand("slots", "KVM memory-slot tables under each lock policy: "
                                          "memslot_perf_test shapes, contention, guests");
    auto* slots_opt = s->add_option("--slots", so.slots, "slot counts (default 16,512,32764)")
                          ->delimiter(',')
                          ->check(CLI::Range(1u, 1u << 20));
    s->add_option("--policy", policy_names, "lock policies (default per-listener,global,rcu)")
        ->delimiter(',')
        ->check(CLI::IsMember({"per-listener", "global", "rcu"}));
    s->add_option("--batch", so.batch,
                  "regions per transaction (default: 1 up to 512 slots, 256 above)")
        ->check(CLI::Range(0u, 1u << 20));
    s->add_option("--sample", so.tail_sample,
                  "single-region transactions timed at the end of a batched map (default 512)")
        ->check(CLI::Range(0u, 1u << 20));
    s->add_option("--fake-max-slots", so.fake_max_slots,
                  "run the RecordingSlotBackend rows only up to this many slots (default 4096)");
    s->add_option("--readers", so.readers, "contention: reader threads (default 2)")
        ->check(CLI::Range(1u, 256u));
    auto* seconds_opt = s->add_option("--seconds", so.seconds,
                                      "contention: seconds per policy and round (default 2)")
                            ->check(CLI::Range(0.01, 3600.0));
    s->add_option("--repeat", so.repeat, "contention: rounds, policy order rotated (default 3)")
        ->check(CLI::Range(1u, 1000u));
    auto* guest_opt =
        s->add_option("--guest-repeat", so.guest_repeat, "guest runs per policy (default 5)")
            ->check(CLI::Range(1u, 1000u));
    s->add_option("--parts", parts, "parts to run (default memslots,contention,guests)")
        ->delimiter(',')
        ->check(CLI::IsMember({"memslots", "contention", "guests"}));
    s->add_option("--json", so.json_path, "also write every number to FILE as JSON");
    s->add_flag("--quick", quick,
                "CI smoke run: slots 16,512, 0.5 s contention, 2 guest rounds (explicit options "
                "still win)");
    minivmm::bench::OverheadCli ocli;
    auto* ov = app.add_subcommand("overhead", "sysbench-style workloads natively and in a guest "
                                              "(or, with --program=sysbench, the real sysbench "
                                              "natively and under minivmm-run --linux): events/s, "
                                              "latency, overhead with a 95% CI");
    minivmm::bench::add_overhead_options(*ov, ocli);
    minivmm::bench::ControlOptions co;
    auto* ctl = app.add_subcommand(
        "control", "memory-add + memory-remove round trips while a memory-writing guest runs, per "
                   "lock policy: round trips/s, the guest's slowdown, query-stats latency");
    ctl->add_option("--lock", co.policies, "lock policies (default per-listener,global,rcu)")
        ->delimiter(',')
        ->check(CLI::IsMember({"per-listener", "global", "rcu"}));
    ctl->add_option("--repeat", co.repeat, "rounds per policy (default 5)")
        ->check(CLI::Range(1u, 1000u));
    ctl->add_option("--time", co.time_s, "seconds per guest run (default 2)")
        ->check(CLI::Range(1u, 600u));
    ctl->add_option("--json", co.json_path, "write all samples and summaries to FILE as JSON");
    minivmm::bench::LinuxBenchOptions lo;
    lo.program_dir = MINIVMM_LINUX_PROGRAM_DIR;
    auto* lx = app.add_subcommand(
        "linux", "a static Linux program natively and under minivmm-run --linux: system call "
                 "round trip, vDSO clock read, sb_static cpu, start-up");
    lx->add_option("--repeat", lo.repeat, "alternated rounds (default 7)")
        ->check(CLI::Range(1u, 1000u));
    lx->add_option("--calls", lo.calls, "getppid calls and hypercalls per run (default 200000)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
    lx->add_option("--reads", lo.reads, "clock_gettime reads per run (default 1e7)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 36));
    lx->add_option("--cpu-events", lo.cpu_events,
                   "sb_static cpu events per run, primes up to 20000 (default 2000)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 32));
    lx->add_option("--program-dir", lo.program_dir,
                   "folder with linux_bench.glibc and sb_static.glibc (default: the build tree's)")
        ->check(CLI::ExistingDirectory);
    bool allow_emulated = false;
    for (auto* sub : {f, s, ov, ctl, lx})
        sub->add_flag("--allow-emulated", allow_emulated,
                      "run even on an emulated KVM (QEMU's software CPU), where timings mean "
                      "nothing; every figure is then marked emulated");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e); // --help
        // Usage errors: one line and status 2, as minivmm-run.
        std::string what = e.what();
        std::replace(what.begin(), what.end(), '\n', ' ');
        fmt::print(stderr, "minivmm-bench: error: {} (see --help)\n", what);
        return 2;
    }
    const KvmFlavor flavor = minivmm::detect_kvm_flavor();
    // Called once the options are known good, before any work: one line and
    // status 2, as a usage error.
    auto refuse_emulated = [&] {
        if (flavor != KvmFlavor::emulated || allow_emulated) return false;
        fmt::print(stderr,
                   "minivmm-bench: this KVM is {}; run on real KVM, or pass --allow-emulated to "
                   "run anyway with every figure marked emulated\n",
                   minivmm::describe_kvm_flavor(flavor));
        return true;
    };
    const bool emulated = flavor == KvmFlavor::emulated;
    try {
        if (*f) {
            if (refuse_emulated()) return 2;
            return foundation(paths, repeat, iterations, hypercalls, emulated);
        }
        if (*lx) {
            if (refuse_emulated()) return 2;
            lo.run_path = paths.run;
            lo.guest_dir = paths.guests;
            lo.emulated = emulated;
            return minivmm::bench::run_linux_bench(lo);
        }
        if (*ctl) {
            auto usage = [](const std::string& msg) {
                fmt::print(stderr, "minivmm-bench control: {}\n", msg);
                return 2;
            };
            for (std::size_t i = 0; i < co.policies.size(); ++i)
                for (std::size_t k = 0; k < i; ++k)
                    if (co.policies[i] == co.policies[k])
                        return usage("--lock lists " + co.policies[i] + " twice");
            if (!co.json_path.empty()) {
                // Fail now, not after the runs.
                auto dir = fs::path(co.json_path).parent_path();
                if (dir.empty()) dir = ".";
                if (fs::is_directory(co.json_path) || ::access(dir.c_str(), W_OK) != 0)
                    return usage("--json " + co.json_path + ": cannot write there");
            }
            if (refuse_emulated()) return 2;
            co.run_path = paths.run;
            co.guest_dir = paths.guests;
            co.kvm_flavor = flavor;
            return minivmm::bench::run_control(co);
        }
        if (*ov) {
            if (auto err = minivmm::bench::finish_overhead_options(ocli); !err.empty()) {
                fmt::print(stderr, "minivmm-bench overhead: {}\n", err);
                return 2;
            }
            if (refuse_emulated()) return 2;
            auto& oo = ocli.options;
            oo.run_path = paths.run;
            oo.guest_dir = paths.guests;
            oo.kvm_flavor = flavor;
            return minivmm::bench::run_overhead(oo);
        }
        if (*s) {
            if (refuse_emulated()) return 2;
            if (quick) {
                if (slots_opt->count() == 0) so.slots = {16, 512};
                if (seconds_opt->count() == 0) so.seconds = 0.5;
                if (guest_opt->count() == 0) so.guest_repeat = 2;
            }
            so.policies.clear();
            for (const auto& n : policy_names)
                so.policies.push_back(*minivmm::parse_lock_policy(n));
            auto has = [&](const char* part) {
                return std::find(parts.begin(), parts.end(), part) != parts.end();
            };
            so.memslots = has("memslots");
            so.contention = has("contention");
            so.guest = has("guests");
            so.run_path = paths.run;
            so.guest_dir = paths.guests;
            so.kvm_flavor = flavor;
            return minivmm::bench::run_slots(so);
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "\nminivmm-bench: error: {}\n", e.what());
        return 1;
    }
    return 0;
}
