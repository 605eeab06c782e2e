// minivmm-run's command-line parsing (parse_run_options, parse_size).
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

#include "cli/run_options.hpp"

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
