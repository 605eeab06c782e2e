// The real minivmm-run binary: exit statuses, stdout carrying only the
// guest's console, and diagnostics as exactly one line on stderr.
#include <catch2/catch.hpp>

#include <signal.h>

#include <string>
#include <thread>
#include <vector>

#include "cli/run_options.hpp"
#include "kvm_support.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using minivmm::test::Child;
using minivmm::test::describe;
using minivmm::test::guest_path;
using minivmm::test::line_count;
using minivmm::test::ProcessResult;
using minivmm::test::run_minivmm;
using namespace std::chrono_literals;

namespace {

void require_exited(const ProcessResult& r, int status) {
    INFO(describe(r));
    REQUIRE_FALSE(r.hung);
    REQUIRE(r.signal == 0);
    REQUIRE(r.status == status);
}

// One diagnostic line, prefixed with the program name.
void check_one_stderr_line(const ProcessResult& r) {
    INFO(describe(r));
    CHECK(line_count(r.err) == 1);
    CHECK_THAT(r.err, StartsWith("minivmm-run: "));
    CHECK_THAT(r.err, Catch::Matchers::EndsWith("\n"));
}

struct FaultCase {
    const char* mode;
    const char* needle;
};

struct SignalCase {
    int sig;
    int status;
    const char* name;
};

// "@hello" stands for the hello.bin image, "@missing" for one that does not exist.
struct UsageCase {
    std::vector<std::string> args;
    int status;
    const char* needle;
};

} // namespace

TEST_CASE("minivmm-run: guest output on stdout only, status 0", "[kvm][cli]") {
    auto image = GENERATE(as<std::string>{}, "hello.bin", "hello.elf");
    auto r = run_minivmm({"--mem", "64M", guest_path(image), "--", "x", "--vcpus", "9"});
    require_exited(r, 0);
    INFO(describe(r));
    CHECK(r.out == "Hello from minivmm guest: vcpu 0 of 1, 64 MiB RAM\ncmdline: x --vcpus 9\n");
    CHECK(r.err.empty());
}

TEST_CASE("minivmm-run: exits with the guest's exit code & 0xff", "[kvm][cli]") {
    auto r = run_minivmm({guest_path("exitcode.bin"), "--", "42"});
    require_exited(r, 42);
    CHECK(r.out.empty());
    CHECK(r.err.empty());

    r = run_minivmm({guest_path("exitcode.elf"), "--", "300"});
    require_exited(r, 300 & 0xff);
    CHECK(r.err.empty());
}

TEST_CASE("minivmm-run: SMP guest with several vCPUs", "[kvm][cli]") {
    auto r = run_minivmm({"--vcpus", "2", guest_path("smp.elf"), "--", "50000"});
    require_exited(r, 0);
    CHECK(r.out == "smp: 2 vcpus, counter=100000 expected=100000\n");
}

TEST_CASE("minivmm-run: a guest exception is status 126 and one line on stderr", "[kvm][cli]") {
    auto c =
        GENERATE(values<FaultCase>({{"ud", "#UD (6)"}, {"pf", "#PF (14)"}, {"gp", "#GP (13)"}}));
    INFO("fault -- " << c.mode);
    auto r = run_minivmm({guest_path("fault.bin"), "--", c.mode});
    require_exited(r, minivmm::cli::kExitGuestFault);
    check_one_stderr_line(r);
    CHECK_THAT(r.err, Contains(c.needle) && Contains("vcpu 0") && Contains("rip=0x"));
    CHECK(r.out.empty());
}

TEST_CASE("minivmm-run: a bad hypercall pointer is status 126", "[kvm][cli]") {
    auto r = run_minivmm({guest_path("badptr.bin"), "--", "block-straddle"});
    require_exited(r, minivmm::cli::kExitGuestFault);
    check_one_stderr_line(r);
    CHECK_THAT(r.err, Contains("outside guest RAM"));
    CHECK(r.out.empty());
}

TEST_CASE("minivmm-run: --timeout stops a spinning guest with status 124", "[kvm][cli]") {
    auto vcpus = GENERATE(as<std::string>{}, "1", "2");
    auto r = run_minivmm({"--timeout", "0.3", "--vcpus", vcpus, guest_path("spin.bin")});
    require_exited(r, minivmm::cli::kExitTimeout);
    check_one_stderr_line(r);
    CHECK_THAT(r.err, Contains("time limit"));
    CHECK(r.out == "spinning\n");
}

TEST_CASE("minivmm-run: SIGTERM and SIGINT stop the guest cleanly", "[kvm][cli][signal]") {
    auto c = GENERATE(values<SignalCase>({{SIGTERM, 143, "SIGTERM"}, {SIGINT, 130, "SIGINT"}}));
    INFO("signal " << c.name);
    Child child({MINIVMM_RUN_PATH, "--timeout", "60", guest_path("spin.bin")});
    // "spinning" on stdout means the guest runs, and with it the VMM's
    // signal handling; then let it spin for a moment.
    bool running = child.wait_for_stdout("spinning\n", 20s);
    std::this_thread::sleep_for(300ms);
    child.send(c.sig);
    ProcessResult r = child.finish(20s);
    INFO(describe(r));
    REQUIRE(running);
    require_exited(r, c.status);
    check_one_stderr_line(r);
    CHECK_THAT(r.err, Contains(c.name));
    CHECK(r.out == "spinning\n");
}

TEST_CASE("minivmm-run: command-line and configuration errors", "[kvm][cli]") {
    const std::string hello = guest_path("hello.bin");
    const UsageCase c = GENERATE(values<UsageCase>({
        {{"--vcpus", "0", "@hello"}, minivmm::cli::kExitUsage, "--vcpus"},
        {{"--vcpus", "abc", "@hello"}, minivmm::cli::kExitUsage, "--vcpus"},
        {{"--mem", "banana", "@hello"}, minivmm::cli::kExitUsage, "banana"},
        {{"--timeout", "-1", "@hello"}, minivmm::cli::kExitUsage, "--timeout"},
        {{"--bogus", "@hello"}, minivmm::cli::kExitUsage, "bogus"},
        {{}, minivmm::cli::kExitUsage, "image"},
        {{"@missing"}, minivmm::cli::kExitVmmError, "no-such-image.bin"},
        {{"/tmp"}, minivmm::cli::kExitVmmError, "not a regular file"},
        {{"--mem", "1M", "@hello"}, minivmm::cli::kExitVmmError, "too small"},
        {{"--mem", "1000000", "@hello"}, minivmm::cli::kExitVmmError, "4 KiB"},
        {{"--mem", "128G", "@hello"}, minivmm::cli::kExitVmmError, "maximum"},
        {{"--vcpus", "300", "@hello"}, minivmm::cli::kExitVmmError, "300"},
    }));
    std::vector<std::string> args;
    for (const auto& a : c.args)
        args.push_back(a == "@hello"     ? hello
                       : a == "@missing" ? guest_path("no-such-image.bin")
                                         : a);
    std::string cmd;
    for (const auto& a : args)
        cmd += " " + a;
    INFO("minivmm-run" << cmd);
    auto r = run_minivmm(args);
    require_exited(r, c.status);
    check_one_stderr_line(r);
    CHECK_THAT(r.err, Contains("error") && Contains(c.needle));
    CHECK(r.out.empty());
}

TEST_CASE("minivmm-run: --help and --version go to stdout with status 0", "[kvm][cli]") {
    auto help = run_minivmm({"--help"});
    require_exited(help, 0);
    CHECK_THAT(help.out, Contains("--vcpus") && Contains("--mem") && Contains("--timeout"));
    CHECK(help.err.empty());

    auto version = run_minivmm({"--version"});
    require_exited(version, 0);
    CHECK_THAT(version.out, StartsWith("minivmm-run "));
    CHECK(line_count(version.out) == 1);
    CHECK(version.err.empty());
}
