// Guests that run to completion in-process: console output, command line,
// exit codes, SMP and exit accounting.
#include <catch2/catch.hpp>

#include <linux/kvm.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "kvm_support.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using minivmm::VmExit;
using minivmm::test::describe;
using minivmm::test::GuestOptions;
using minivmm::test::run_guest;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20, kGiB = 1ull << 30;

void require_clean_exit(const minivmm::test::GuestRun& run, int code = 0) {
    INFO("exit: " << describe(run.exit));
    INFO("console:\n" << run.console);
    REQUIRE(run.exit.kind == VmExit::Kind::guest_exit);
    REQUIRE(run.exit.code == code);
}

struct ExitCase {
    const char* cmdline;
    int code;
};

} // namespace

TEST_CASE("hello greets, echoes its command line and exits 0", "[kvm][hello]") {
    auto image = GENERATE(as<std::string>{}, "hello.bin", "hello.elf");
    INFO("image " << image);
    auto run = run_guest(GuestOptions(image, "a b  c"));
    require_clean_exit(run);
    CHECK_THAT(run.console, StartsWith("Hello from minivmm guest: vcpu 0 of 1"));
    CHECK(run.console == "Hello from minivmm guest: vcpu 0 of 1, 64 MiB RAM\ncmdline: a b  c\n");
    CHECK(run.exit.vcpu == 0);
    CHECK(run.exit.message.empty());
}

TEST_CASE("hello without a command line prints no cmdline line", "[kvm][hello]") {
    auto run = run_guest(GuestOptions("hello.bin"));
    require_clean_exit(run);
    CHECK(run.console == "Hello from minivmm guest: vcpu 0 of 1, 64 MiB RAM\n");
}

TEST_CASE("hello sees the vCPU count and RAM size from the boot info", "[kvm][hello]") {
    auto run = run_guest(GuestOptions("hello.elf").with_vcpus(2).with_mem(96 * kMiB));
    require_clean_exit(run);
    CHECK_THAT(run.console, StartsWith("Hello from minivmm guest: vcpu 0 of 2, 96 MiB RAM\n"));
}

TEST_CASE("hello with RAM above 4 GiB (stacks above 4 GiB)", "[kvm][hello]") {
    auto run = run_guest(GuestOptions("hello.elf", "big").with_mem(5 * kGiB));
    require_clean_exit(run);
    CHECK(run.console == "Hello from minivmm guest: vcpu 0 of 1, 5120 MiB RAM\ncmdline: big\n");
}

TEST_CASE("the exit hypercall's code reaches the VMM, truncated to 8 bits", "[kvm][exitcode]") {
    auto c = GENERATE(values<ExitCase>(
        {{"42", 42}, {"300", 300 & 0xff}, {"", 0}, {"255", 255}, {"256", 0}, {"1", 1}}));
    INFO("exitcode -- '" << c.cmdline << "'");
    auto run = run_guest(GuestOptions("exitcode.bin", c.cmdline));
    require_clean_exit(run, c.code);
    CHECK(run.console.empty());
    CHECK(run.exit.vcpu == 0);
}

TEST_CASE("SMP: every vCPU runs and shares memory coherently", "[kvm][smp]") {
    const unsigned vcpus = GENERATE(2u, 4u);
    const std::uint64_t k = 100000;
    INFO(vcpus << " vCPUs, " << k << " increments each");
    auto run = run_guest(GuestOptions("smp.bin", std::to_string(k)).with_vcpus(vcpus));
    require_clean_exit(run);

    unsigned long long n = 0, counter = 0, expected = 0;
    INFO("console: " << run.console);
    auto at = run.console.find("smp: ");
    REQUIRE(at != std::string::npos);
    REQUIRE(std::sscanf(run.console.c_str() + at, "smp: %llu vcpus, counter=%llu expected=%llu", &n,
                        &counter, &expected) == 3);
    CHECK(n == vcpus);
    CHECK(counter == k * vcpus);
    CHECK(expected == k * vcpus);
}

TEST_CASE("SMP: counter guest (C++) prints one line per vCPU, vCPU 0 last", "[kvm][smp]") {
    auto run = run_guest(GuestOptions("counter.elf").with_vcpus(3));
    require_clean_exit(run);
    INFO("console:\n" << run.console);
    CHECK_THAT(run.console, Contains("vcpu 0 ok\n"));
    CHECK_THAT(run.console, Contains("vcpu 1 ok\n"));
    CHECK_THAT(run.console, Contains("vcpu 2 ok\n"));
    CHECK(minivmm::test::line_count(run.console) == 3);
    CHECK_THAT(run.console, Catch::Matchers::EndsWith("vcpu 0 ok\n"));
    CHECK_FALSE(Catch::Matchers::Contains("constructor").match(run.console));
}

TEST_CASE("exit counts: each hypercall is one KVM_EXIT_IO", "[kvm][counts]") {
    auto run = run_guest(GuestOptions("hcloop.bin", "1000"));
    require_clean_exit(run);
    CHECK_THAT(run.console, StartsWith("hcloop: 1000 hypercalls"));
    INFO("KVM_EXIT_IO count " << run.counts.by_reason[KVM_EXIT_IO]);
    // 1000 empty writes, the printf and the exit.
    CHECK(run.counts.by_reason[KVM_EXIT_IO] >= 1000);
    CHECK(run.counts.total() >= run.counts.by_reason[KVM_EXIT_IO]);
}

TEST_CASE("a CPU-bound guest runs to completion", "[kvm][regloop]") {
    auto run = run_guest(GuestOptions("regloop.elf", "100000"));
    require_clean_exit(run);
    CHECK_THAT(run.console, StartsWith("regloop: 100000 iterations"));
}
