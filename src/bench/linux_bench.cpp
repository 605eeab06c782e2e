#include "bench/linux_bench.hpp"

#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <vector>

#include <fmt/core.h>

#include "bench/emulated.hpp"
#include "bench/process.hpp"
#include "bench/stats.hpp"
#include "native_workloads.hpp"

namespace minivmm::bench {

namespace {

struct Samples {
    std::vector<double> native, guest;
};

// One side's command: the program itself, or the same under minivmm-run.
std::vector<std::string> on_side(const LinuxBenchOptions& o, bool guest,
                                 std::vector<std::string> program) {
    if (!guest) return program;
    std::vector<std::string> argv = {o.run_path, "--linux"};
    argv.insert(argv.end(), program.begin(), program.end());
    return argv;
}

void require_file(const std::string& path) {
    if (!std::filesystem::is_regular_file(path))
        throw std::runtime_error(path + " is missing: build the tree's Linux programs (cmake "
                                        "--build build --target minivmm-bench), or point "
                                        "--program-dir at them");
}

} // namespace

int run_linux_bench(const LinuxBenchOptions& o) {
    const std::string program = o.program_dir + "/linux_bench.glibc";
    const std::string sb_static = o.program_dir + "/sb_static.glibc";
    require_file(program);
    require_file(sb_static);
    const std::string calls = std::to_string(o.calls), reads = std::to_string(o.reads);
    const std::string cpu_options = "--cpu-max-prime=20000";
    const std::string events = "--events=" + std::to_string(o.cpu_events);

    Samples syscall, clock, cpu, wall, rss;
    std::vector<double> hypercall, hello_wall, hello_rss;
    for (unsigned i = 0; i < o.repeat; ++i) {
        fmt::print(stderr, "\rlinux: round {}/{}", i + 1, o.repeat);
        std::fflush(stderr);
        // Which side goes first alternates, so drift on a shared machine does
        // not always favour the same one.
        for (bool guest : {i % 2 == 1, i % 2 == 0}) {
            auto side = [&](Samples& s) -> std::vector<double>& {
                return guest ? s.guest : s.native;
            };
            auto r = run_checked(on_side(o, guest, {program, "getppid", calls}));
            side(syscall).push_back(
                parse_number(r.out, "getppid:", "getppid: %*u calls, %lf cycles/call"));
            r = run_checked(on_side(o, guest, {program, "clock", reads}));
            side(clock).push_back(parse_number(r.out, "clock:", "clock: %*u reads, %lf"));
            r = run_checked(on_side(o, guest, {sb_static, "cpu", cpu_options, events, "--time=0"}));
            auto result = workloads::parse_result_line(r.out);
            if (!result || result->events != o.cpu_events)
                throw std::runtime_error("sb_static cpu printed no result for its events:\n" +
                                         r.out);
            side(cpu).push_back(static_cast<double>(result->time_ns));
            r = run_checked(on_side(o, guest, {program, "hello"}));
            side(wall).push_back(r.wall_seconds);
            side(rss).push_back(static_cast<double>(r.max_rss_kib));
        }
        auto h = run_checked({o.run_path, o.guest_dir + "/hcloop.bin", "--", calls});
        hypercall.push_back(
            parse_number(h.out, "hcloop:", "hcloop: %*u hypercalls, %lf cycles/hypercall"));
        auto b = run_checked({o.run_path, o.guest_dir + "/hello.bin"});
        hello_wall.push_back(b.wall_seconds);
        hello_rss.push_back(static_cast<double>(b.max_rss_kib));
    }
    fmt::print(stderr, "\n");

    const auto mark = emulated_suffix(o.emulated);
    const double khz = static_cast<double>(workloads::tsc_khz());
    const double ns_per_cycle = 1e6 / khz;
    fmt::print("{}minivmm-bench linux: {} alternated rounds, the same static binary natively and "
               "under minivmm-run --linux; median [min..max]\n\n",
               emulated_banner_line(o.emulated), o.repeat);

    auto sn = summarize(syscall.native), sg = summarize(syscall.guest);
    auto hc = summarize(hypercall);
    fmt::print("system call round trip, {} getppid (TSC cycles per call; {:.3f} ns/cycle)\n",
               o.calls, ns_per_cycle);
    fmt::print("  native              {}{}\n", format_summary(sn, 1, "cycles", 0), mark);
    fmt::print("  guest (LSTAR entry) {}{}\n", format_summary(sg, 1, "cycles", 0), mark);
    fmt::print("  bare hypercall exit {}  (hcloop.bin, a port write to the VMM and back){}\n",
               format_summary(hc, 1, "cycles", 0), mark);
    fmt::print("  guest/native        {:.1f}x, {:.2f} us per call{}\n", sg.median / sn.median,
               sg.median * ns_per_cycle / 1e3, mark);
    fmt::print("  guest/hypercall     {:.3f}{}\n\n", sg.median / hc.median, mark);

    auto cn = summarize(clock.native), cg = summarize(clock.guest);
    fmt::print("clock_gettime(CLOCK_MONOTONIC) through the vDSO, {} reads (cycles per read)\n",
               o.reads);
    fmt::print("  native              {}{}\n", format_summary(cn, 1, "cycles", 1), mark);
    fmt::print("  guest               {}{}\n", format_summary(cg, 1, "cycles", 1), mark);
    fmt::print("  guest/native        {:.3f}  (target 1.1 or less){}\n\n", cg.median / cn.median,
               mark);

    auto un = summarize(cpu.native), ug = summarize(cpu.guest);
    fmt::print("sb_static cpu {} {} (the program's time for its events)\n", cpu_options, events);
    fmt::print("  native              {}{}\n", format_summary(un, 1e-6, "ms", 2), mark);
    fmt::print("  guest               {}{}\n", format_summary(ug, 1e-6, "ms", 2), mark);
    fmt::print("  guest/native        {:.4f}  ({:+.2f}%, target within 1%){}\n\n",
               ug.median / un.median, (ug.median / un.median - 1) * 100, mark);

    auto wn = summarize(wall.native), wg = summarize(wall.guest), wb = summarize(hello_wall);
    auto rn = summarize(rss.native), rg = summarize(rss.guest), rb = summarize(hello_rss);
    fmt::print("start-up of a static hello world (whole process: wall, peak RSS)\n");
    fmt::print("  native                   {}  {}{}\n", format_summary(wn, 1e3, "ms", 2),
               format_summary(rn, 1.0 / 1024, "MiB", 2), mark);
    fmt::print("  minivmm-run --linux      {}  {}{}\n", format_summary(wg, 1e3, "ms", 2),
               format_summary(rg, 1.0 / 1024, "MiB", 2), mark);
    fmt::print("  minivmm-run hello.bin    {}  {}{}\n", format_summary(wb, 1e3, "ms", 2),
               format_summary(rb, 1.0 / 1024, "MiB", 2), mark);
    fmt::print("  --linux/native           {:.1f}x wall, {:.1f}x RSS{}\n", wg.median / wn.median,
               rg.median / rn.median, mark);
    fmt::print("  --linux/hello.bin        {:.2f}x wall, {:.2f}x RSS{}\n", wg.median / wb.median,
               rg.median / rb.median, mark);
    return 0;
}

} // namespace minivmm::bench
