// minivmm-run's command-line parsing (parse_run_options, parse_size).
#include <catch2/catch.hpp>

#include <sched.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "cli/run_options.hpp"
#include "cli/stats.hpp"
#include "minivmm/seccomp.hpp"

using Catch::Matchers::Contains;
using minivmm::cli::EarlyExit;
using minivmm::cli::parse_run_options;
using minivmm::cli::parse_size;
using minivmm::cli::RunOptions;

namespace {

using Parsed = std::variant<RunOptions, EarlyExit>;

Parsed parse(std::initializer_list<const char*> args) {
    std::vector<const char*> argv = {"minivmm-run"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(nullptr); // like a real argv
    return parse_run_options(static_cast<int>(argv.size() - 1), argv.data());
}

RunOptions options(std::initializer_list<const char*> args) {
    auto parsed = parse(args);
    const auto* early = std::get_if<EarlyExit>(&parsed);
    INFO("unexpected early exit: status " << (early ? early->status : 0)
                                          << ", text: " << (early ? early->text : std::string()));
    REQUIRE(early == nullptr);
    return std::get<RunOptions>(parsed);
}

EarlyExit early_exit(std::initializer_list<const char*> args) {
    auto parsed = parse(args);
    const auto* opts = std::get_if<RunOptions>(&parsed);
    INFO("expected an early exit, got options for image '" << (opts ? opts->image : "") << "'");
    REQUIRE(opts == nullptr);
    return std::get<EarlyExit>(parsed);
}

// A usage error: status 2 and one line of text that says something.
void require_usage_error(std::initializer_list<const char*> args, const std::string& needle = "") {
    std::string cmd;
    for (const char* a : args)
        cmd += std::string(" ") + a;
    INFO("minivmm-run" << cmd);
    EarlyExit e = early_exit(args);
    INFO("text: " << e.text);
    CHECK(e.status == minivmm::cli::kExitUsage);
    CHECK_FALSE(e.text.empty());
    CHECK(e.text.find('\n') == std::string::npos);
    if (!needle.empty()) CHECK_THAT(e.text, Contains(needle));
}

constexpr std::uint64_t kKiB = 1ull << 10, kMiB = 1ull << 20, kGiB = 1ull << 30, kTiB = 1ull << 40;

} // namespace

TEST_CASE("run options: defaults", "[cli]") {
    RunOptions o = options({"guest.bin"});
    CHECK(o.image == "guest.bin");
    CHECK(o.vcpus == 1);
    CHECK(o.mem_size == 256 * kMiB);
    CHECK_FALSE(o.timeout.has_value());
    CHECK(o.log_level == spdlog::level::warn);
    CHECK(o.cmdline.empty());
}

TEST_CASE("run options: every option", "[cli]") {
    RunOptions o = options(
        {"--vcpus", "4", "--mem", "1G", "--timeout", "2.5", "--log-level", "debug", "guest.elf"});
    CHECK(o.image == "guest.elf");
    CHECK(o.vcpus == 4);
    CHECK(o.mem_size == kGiB);
    REQUIRE(o.timeout.has_value());
    CHECK(*o.timeout == std::chrono::milliseconds(2500));
    CHECK(o.log_level == spdlog::level::debug);

    RunOptions eq = options({"guest.elf", "--vcpus=3", "--mem=64M", "--timeout=0.3"});
    CHECK(eq.vcpus == 3);
    CHECK(eq.mem_size == 64 * kMiB);
    REQUIRE(eq.timeout.has_value());
    CHECK(*eq.timeout == std::chrono::milliseconds(300));
}

TEST_CASE("run options: the guest command line after --", "[cli]") {
    CHECK(options({"g.bin", "--", "a", "b"}).cmdline == "a b");
    CHECK(options({"g.bin", "--"}).cmdline.empty());
    CHECK(options({"g.bin", "--", "42"}).cmdline == "42");

    // Options after -- belong to the guest, not to minivmm-run.
    RunOptions o = options({"g.bin", "--", "--vcpus", "3"});
    CHECK(o.vcpus == 1);
    CHECK(o.cmdline == "--vcpus 3");
    CHECK(options({"g.bin", "--", "--help"}).cmdline == "--help");
    CHECK(options({"g.bin", "--", "--", "x"}).cmdline == "-- x");
    CHECK(options({"--vcpus", "2", "g.bin", "--", "--mem", "banana"}).mem_size == 256 * kMiB);
}

TEST_CASE("run options: usage errors exit with status 2 and one line", "[cli]") {
    require_usage_error({"--vcpus", "0", "g.bin"}, "--vcpus");
    require_usage_error({"--vcpus", "abc", "g.bin"});
    require_usage_error({"--vcpus", "-1", "g.bin"});
    require_usage_error({"--mem", "banana", "g.bin"}, "banana");
    require_usage_error({"--mem", "0", "g.bin"}, "--mem");
    require_usage_error({"--mem", "99999999999T", "g.bin"}, "--mem");
    require_usage_error({"--mem", "", "g.bin"});
    require_usage_error({"--timeout", "0", "g.bin"}, "--timeout");
    require_usage_error({"--timeout", "-1", "g.bin"});
    require_usage_error({"--timeout", "nan", "g.bin"});
    require_usage_error({"--timeout", "inf", "g.bin"});
    require_usage_error({"--timeout", "soon", "g.bin"});
    require_usage_error({"--log-level", "loud", "g.bin"});
    require_usage_error({"--frobnicate", "g.bin"});
    require_usage_error({"-x", "g.bin"});
    require_usage_error({}, "image");               // missing image
    require_usage_error({"--vcpus", "2"}, "image"); // still missing
    require_usage_error({"--", "a", "b"}, "image"); // the cmdline is not the image
    require_usage_error({"a.bin", "b.bin"});        // one image only
    require_usage_error({"g.bin", "--vcpus"});      // option without its value
}

TEST_CASE("run options: --help and --version exit with status 0", "[cli]") {
    EarlyExit help = early_exit({"--help"});
    CHECK(help.status == 0);
    CHECK_THAT(help.text, Contains("--vcpus") && Contains("--mem") && Contains("--timeout"));
    CHECK(early_exit({"-h"}).status == 0);
    CHECK(early_exit({"g.bin", "--help"}).status == 0);

    EarlyExit version = early_exit({"--version"});
    CHECK(version.status == 0);
    CHECK_THAT(version.text, Contains("minivmm-run"));
}

TEST_CASE("parse_size accepts bytes with binary suffixes", "[cli][size]") {
    CHECK(parse_size("4096") == 4096u);
    CHECK(parse_size("0") == 0u);
    CHECK(parse_size("4K") == 4 * kKiB);
    CHECK(parse_size("4k") == 4 * kKiB);
    CHECK(parse_size("4KB") == 4 * kKiB);
    CHECK(parse_size("4KiB") == 4 * kKiB);
    CHECK(parse_size("256M") == 256 * kMiB);
    CHECK(parse_size("256MiB") == 256 * kMiB);
    CHECK(parse_size("256mib") == 256 * kMiB);
    CHECK(parse_size("1G") == kGiB);
    CHECK(parse_size("2GB") == 2 * kGiB);
    CHECK(parse_size("1T") == kTiB);
    CHECK(parse_size("16777215T") == 16777215 * kTiB); // the largest whole number of TiB
    CHECK(parse_size("18446744073709551615") == UINT64_MAX);
    CHECK(parse_size("512B") == 512u);
}

TEST_CASE("parse_size rejects everything else", "[cli][size]") {
    for (const char* bad : {"",       "M",   "K",   "B",    "-1",    "-4K",  "+4K",   "12Q",
                            "4 K",    " 4K", "4K ", "4.5G", "0x100", "4MM",  "4KK",   "4GiBs",
                            "banana", "1e3", "4BB", "4iB",  "4IB",   "4KBB", "4KiBB", "4Bi"}) {
        INFO("'" << bad << "'");
        CHECK_FALSE(parse_size(bad).has_value());
    }
}

TEST_CASE("parse_size rejects overflow", "[cli][size]") {
    CHECK_FALSE(parse_size("18446744073709551616").has_value()); // 2^64
    CHECK_FALSE(parse_size("99999999999999999999999").has_value());
    CHECK_FALSE(parse_size("16777216T").has_value()); // exactly 2^64
    CHECK_FALSE(parse_size("99999999999T").has_value());
    CHECK_FALSE(parse_size("17179869184G").has_value());       // 2^34 GiB = 2^64
    CHECK_FALSE(parse_size("18014398509481984K").has_value()); // 2^54 KiB = 2^64
    CHECK(parse_size("18014398509481983K") == 18014398509481983ull * kKiB);
}

TEST_CASE("run options: guest RAM backing and its flags", "[cli][ram]") {
    using Backing = minivmm::RamBlockOptions::Backing;
    RunOptions d = options({"g.bin"});
    CHECK(d.ram.backing == Backing::anonymous);
    CHECK(d.ram.transparent_huge_pages); // the measured best without root (docs/benchmarks.md,
                                         // "Knobs")
    CHECK_FALSE(options({"--no-thp", "g.bin"}).ram.transparent_huge_pages);
    CHECK_FALSE(d.ram.prefault);
    CHECK_FALSE(d.ram.lock);
    CHECK(d.ram.hugetlb_fallback); // a warning, not a failure, without huge pages

    CHECK(options({"--ram-backing=anonymous", "g.bin"}).ram.backing == Backing::anonymous);
    CHECK(options({"--ram-backing", "memfd", "g.bin"}).ram.backing == Backing::memfd);
    CHECK(options({"--ram-backing=hugetlbfs", "g.bin"}).ram.backing == Backing::hugetlbfs);

    RunOptions all = options({"--thp", "--prefault", "--mlock", "--ram-backing=memfd", "g.bin"});
    CHECK(all.ram.backing == Backing::memfd);
    CHECK(all.ram.transparent_huge_pages);
    CHECK(all.ram.prefault);
    CHECK(all.ram.lock);
    RunOptions huge = options({"--ram-backing=hugetlbfs", "--prefault", "--mlock", "g.bin"});
    CHECK(huge.ram.prefault);
    CHECK(huge.ram.lock);
    CHECK_FALSE(huge.ram.transparent_huge_pages);

    require_usage_error({"--ram-backing=shm", "g.bin"}, "shm");
    require_usage_error({"--ram-backing", "g.bin"});
    require_usage_error({"--ram-backing=hugetlbfs", "--thp", "g.bin"}, "--thp");
    require_usage_error({"--thp", "--no-thp", "g.bin"});
    CHECK_FALSE(
        options({"--ram-backing=hugetlbfs", "--no-thp", "g.bin"}).ram.transparent_huge_pages);
}

TEST_CASE("parse_cpu_list: lists and ranges in the order given", "[cli][pin]") {
    using minivmm::cli::parse_cpu_list;
    using V = std::vector<int>;
    CHECK(parse_cpu_list("0") == V{0});
    CHECK(parse_cpu_list("0,1") == V{0, 1});
    CHECK(parse_cpu_list("1,0") == V{1, 0});
    CHECK(parse_cpu_list("0-1") == V{0, 1});
    CHECK(parse_cpu_list("3-5,0") == V{3, 4, 5, 0});
    CHECK(parse_cpu_list("1,1") == V{1, 1});
    CHECK(parse_cpu_list("2-2") == V{2});
    CHECK(parse_cpu_list("1023") == V{1023});
    for (const char* bad : {"", ",", "0,", ",0", "a", "1-", "-1", "1-0", "0--1", "0-1-2", " 0",
                            "0 ", "1.5", "0x1", "1024", "99999999999", "0,,1", "+1"}) {
        INFO("'" << bad << "'");
        CHECK_FALSE(parse_cpu_list(bad).has_value());
    }
}

TEST_CASE("run options: --pin", "[cli][pin]") {
    CHECK(options({"g.bin"}).vcpu_cpus.empty());
    CHECK(options({"--pin", "0", "g.bin"}).vcpu_cpus == std::vector<int>{0});
    cpu_set_t allowed;
    REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
    int first = 0;
    while (!CPU_ISSET(first, &allowed))
        ++first;
    const std::string arg = "--pin=" + std::to_string(first) + "," + std::to_string(first);
    CHECK(options({arg.c_str(), "g.bin"}).vcpu_cpus == std::vector<int>{first, first});
    require_usage_error({"--pin", "x", "g.bin"}, "--pin");
    require_usage_error({"--pin", "1-0", "g.bin"}, "--pin");
    require_usage_error({"--pin=", "g.bin"});                // CLI11 takes g.bin as the value
    require_usage_error({"--pin", "1023", "g.bin"}, "1023"); // no such CPU here
    require_usage_error({"--pin", "g.bin"});
}

TEST_CASE("run options: --stats and --stats-json", "[cli][stats]") {
    RunOptions d = options({"g.bin"});
    CHECK_FALSE(d.stats);
    CHECK(d.stats_json.empty());
    RunOptions o = options({"--stats", "--stats-json", "/tmp/s.json", "g.bin"});
    CHECK(o.stats);
    CHECK(o.stats_json == "/tmp/s.json");
    CHECK_FALSE(options({"--stats-json=x.json", "g.bin"}).stats);
    require_usage_error({"--stats-json=", "g.bin"});
    require_usage_error({"g.bin", "--stats-json"});
}

TEST_CASE("run options: --print-seccomp lists a role's allowlist, one name a line",
          "[cli][seccomp]") {
    for (auto role : {minivmm::ThreadRole::vcpu, minivmm::ThreadRole::io, minivmm::ThreadRole::vmm,
                      minivmm::ThreadRole::program}) {
        const std::string name = minivmm::to_string(role);
        CAPTURE(name);
        // No image needed; with one, the listing still comes instead of a run.
        EarlyExit e = early_exit({"--print-seccomp", name.c_str()});
        CHECK(e.status == 0);
        CHECK(early_exit({("--print-seccomp=" + name).c_str()}).text == e.text);
        CHECK(early_exit({"g.bin", "--print-seccomp", name.c_str()}).text == e.text);
        // The role's list in order (the sanitizer runtime's calls follow in
        // sanitizer builds), each line a name, ioctl's saying which requests.
        std::istringstream lines(e.text);
        std::string line;
        std::size_t n = 0;
        for (std::string_view want : minivmm::seccomp_allowlist(role)) {
            REQUIRE(std::getline(lines, line));
            CHECK(line.substr(0, line.find(' ')) == want);
            if (want == "ioctl") {
                CHECK_THAT(line, Contains("0xAE"));
                if (role == minivmm::ThreadRole::vmm)
                    CHECK_THAT(line, Contains("FIONBIO"));
                else
                    CHECK_THAT(line, !Contains("FIONBIO"));
                if (role == minivmm::ThreadRole::program)
                    CHECK_THAT(line, Contains("TCGETS") && Contains("TIOCGWINSZ"));
                else
                    CHECK_THAT(line, !Contains("TCGETS"));
            } else {
                CHECK(line == want);
            }
            ++n;
        }
        while (std::getline(lines, line))
            CHECK_THAT(line, Contains("(sanitizer runtime)"));
        CHECK(n > 30);
        CHECK(e.text.back() == '\n');
    }
    require_usage_error({"--print-seccomp", "gpu"}, "--print-seccomp");
    require_usage_error({"--print-seccomp=", "g.bin"});
    require_usage_error({"--print-seccomp"});
}

TEST_CASE("stats line and JSON list the non-zero counts", "[cli][stats]") {
    minivmm::ExitCounts c;
    CHECK(minivmm::cli::stats_line(c) == "minivmm-stats: exits=0 io=0 mmio=0");
    CHECK(minivmm::cli::stats_json(c) ==
          R"({"exits":0,"io":0,"mmio":0,"reasons":{},"hypercalls":{},"io_other":0,)"
          R"("ioeventfd":0,"ring_requests":0})");
    c.by_reason[KVM_EXIT_IO] = 7;
    c.by_reason[KVM_EXIT_MMIO] = 2;
    c.by_reason[KVM_EXIT_HLT] = 1;
    c.by_reason[KVM_EXIT_INTR] = 3;
    c.by_reason[50] = 1;
    c.hypercalls[0] = 5;
    c.hypercalls[18] = 1;
    c.other_io = 1;
    c.ioeventfd_signals = 40;
    c.ring_requests = 400;
    CHECK(minivmm::cli::stats_line(c) ==
          "minivmm-stats: exits=14 io=7 mmio=2 hlt=1 intr=3 reason50=1 hypercall[0]=5 "
          "hypercall[18]=1 io_other=1 ioeventfd=40 ring_requests=400");
    CHECK(minivmm::cli::stats_json(c) ==
          R"({"exits":14,"io":7,"mmio":2,"reasons":{"hlt":1,"intr":3,"reason50":1},)"
          R"("hypercalls":{"0":5,"18":1},"io_other":1,"ioeventfd":40,"ring_requests":400})");
    minivmm::ExitCounts sum = c;
    sum += c;
    CHECK(sum.total() == 28);
    CHECK(sum.hypercalls[18] == 2);
    CHECK(sum.other_io == 2);
}
