// The overhead knobs on a real VM: guest RAM backings, vCPU pinning, and
// the exit statistics (library and minivmm-run --stats/--stats-json).
#include <catch2/catch.hpp>

#include <dirent.h>
#include <linux/kvm.h>
#include <sched.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvm_support.hpp"
#include "minivmm/console.hpp"
#include "minivmm/error.hpp"
#include "native_workloads.hpp"
#include "test_util.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using minivmm::RamBlockOptions;
using minivmm::VmExit;
using minivmm::test::describe;
using minivmm::test::GuestOptions;
using minivmm::test::run_guest;
using Backing = RamBlockOptions::Backing;
using namespace std::chrono_literals;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;

struct BackingCase {
    const char* name;
    Backing backing;
    bool thp, prefault, lock;
};

std::vector<int> allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
    std::vector<int> cpus;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
        if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
    return cpus;
}

std::string read_line_from(const std::string& path, const std::string& key = {}) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
        if (key.empty() || line.rfind(key, 0) == 0) return line.substr(key.size());
    return {};
}

// comm -> Cpus_allowed_list of this process's threads named "vcpu*".
std::map<std::string, std::string> vcpu_thread_affinity() {
    std::map<std::string, std::string> out;
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/proc/self/task"), ::closedir);
    REQUIRE(dir);
    while (dirent* e = ::readdir(dir.get())) {
        if (e->d_name[0] == '.') continue;
        const std::string task = std::string("/proc/self/task/") + e->d_name;
        std::string comm = read_line_from(task + "/comm");
        if (comm.rfind("vcpu", 0) != 0) continue;
        std::string list = read_line_from(task + "/status", "Cpus_allowed_list:");
        list.erase(0, list.find_first_not_of(" \t"));
        out[comm] = list;
    }
    return out;
}

} // namespace

TEST_CASE("sb_memory touch sees every page under each RAM backing", "[kvm][ram]") {
    minivmm::test::HugePagePoolLock pool_lock;
    const BackingCase c = GENERATE(values<BackingCase>({
        {"anonymous", Backing::anonymous, false, false, false},
        {"anonymous --thp", Backing::anonymous, true, false, false},
        {"anonymous --prefault", Backing::anonymous, false, true, false},
        {"anonymous --thp --prefault", Backing::anonymous, true, true, false},
        {"anonymous --mlock", Backing::anonymous, false, false, true},
        {"memfd", Backing::memfd, false, false, false},
        {"memfd --thp --prefault", Backing::memfd, true, true, false},
        {"hugetlbfs", Backing::hugetlbfs, false, false, false},
        {"hugetlbfs --prefault --mlock", Backing::hugetlbfs, false, true, true},
    }));
    INFO("backing: " << c.name);
    RamBlockOptions ram;
    ram.backing = c.backing;
    ram.transparent_huge_pages = c.thp;
    ram.prefault = c.prefault;
    ram.lock = c.lock;
    auto run = run_guest(GuestOptions("sb_memory.bin", "--memory-oper=touch "
                                                       "--memory-block-size=8K "
                                                       "--memory-total-size=64M --time=0 "
                                                       "--threads=1")
                             .with_mem(128 * kMiB)
                             .with_ram(ram));
    INFO("exit: " << describe(run.exit));
    INFO("console:\n" << run.console);
    REQUIRE(run.exit.kind == VmExit::Kind::guest_exit);
    REQUIRE(run.exit.code == 0);
    auto r = minivmm::workloads::parse_result_line(run.console);
    REQUIRE(r);
    CHECK(r->events == (64 * kMiB) / (8 << 10));
    CHECK(r->check == (64 * kMiB) / 4096);
    CHECK(run.ram_host % (2 * kMiB) == 0);
    // As root the pool is grown on demand, so hugetlbfs really is used.
    if (c.backing == Backing::hugetlbfs && ::geteuid() == 0)
        CHECK(run.backing == Backing::hugetlbfs);
    else if (c.backing != Backing::hugetlbfs)
        CHECK(run.backing == c.backing);
}

TEST_CASE("pinned vCPU threads run on the CPUs of the list", "[kvm][pin]") {
    const auto cpus = allowed_cpus();
    REQUIRE_FALSE(cpus.empty());
    // vCPU 0 on the last allowed CPU, vCPU 1 on the first (the same with one CPU).
    const int a = cpus.back(), b = cpus.front();
    minivmm::VmConfig config;
    config.mem_size = 64 * kMiB;
    config.vcpus = 3; // three vCPUs on a two-CPU list: vCPU 2 wraps around to `a`
    config.vcpu_cpus = {a, b};
    config.handle_signals = false;
    config.timeout = 20s;
    auto console = std::make_shared<minivmm::StringConsole>();
    config.console = console;
    minivmm::test::Watchdog watchdog(60s, "pinned spin guest");
    auto image = minivmm::load_image_for(minivmm::test::guest_path("spin.bin"), config);
    minivmm::Vm vm(minivmm::test::kvm(), config, image);
    VmExit exit;
    std::thread runner([&] { exit = vm.run(); });
    std::map<std::string, std::string> seen;
    for (int i = 0; i < 500 && seen.size() < 3; ++i) {
        seen = vcpu_thread_affinity();
        std::this_thread::sleep_for(10ms);
    }
    vm.request_stop({VmExit::Kind::guest_exit, 0, -1, "test done"});
    runner.join();
    INFO("exit: " << describe(exit));
    CHECK(exit.message == "test done"); // the guest ran until we stopped it
    REQUIRE(seen.size() == 3);
    CHECK(seen["vcpu0"] == std::to_string(a));
    CHECK(seen["vcpu1"] == std::to_string(b));
    CHECK(seen["vcpu2"] == std::to_string(a));
}

TEST_CASE("a pinned SMP guest runs to completion, and CPUs outside the mask are refused",
          "[kvm][pin]") {
    const auto cpus = allowed_cpus();
    auto run = run_guest(GuestOptions("smp.bin").with_vcpus(2).with_pin({cpus.front()}));
    INFO("exit: " << describe(run.exit) << "\nconsole:\n" << run.console);
    CHECK(run.exit.kind == VmExit::Kind::guest_exit);
    CHECK(run.exit.code == 0);
    CHECK_THAT(run.console, Contains("counter=2000000 expected=2000000"));
    CHECK_THROWS_AS(run_guest(GuestOptions("hello.bin").with_pin({CPU_SETSIZE - 1})),
                    minivmm::ConfigError);
    CHECK_THROWS_AS(run_guest(GuestOptions("hello.bin").with_pin({-1})), minivmm::ConfigError);
}

TEST_CASE("exit counts: hcloop's hypercalls by number", "[kvm][counts]") {
    const std::uint64_t n = GENERATE(0u, 1u, 500u);
    auto run = run_guest(GuestOptions("hcloop.bin", std::to_string(n)));
    INFO("exit: " << describe(run.exit) << "\nconsole:\n" << run.console);
    REQUIRE(run.exit.kind == VmExit::Kind::guest_exit);
    REQUIRE(run.exit.code == 0);
    // n empty writes, plus the SDK's: one write for the printf line (shorter
    // than its 512-byte buffer) and the exit hypercall.
    CHECK(run.counts.hypercalls[0] == n + 1);
    CHECK(run.counts.hypercalls[1] == 1);
    std::uint64_t hypercalls = 0;
    for (auto h : run.counts.hypercalls)
        hypercalls += h;
    CHECK(hypercalls == n + 2);
    CHECK(run.counts.io() == hypercalls + run.counts.other_io);
    CHECK(run.counts.other_io == 0);
    CHECK(run.counts.mmio() == 0);
    CHECK(run.counts.total() >= run.counts.io());
}

TEST_CASE("exit counts: the halt hypercall and exception reports", "[kvm][counts]") {
    auto smp = run_guest(GuestOptions("smp.bin").with_vcpus(2));
    REQUIRE(smp.exit.kind == VmExit::Kind::guest_exit);
    CHECK(smp.counts.hypercalls[16] == 1); // vCPU 1 halts, vCPU 0 exits
    CHECK(smp.counts.hypercalls[1] == 1);
    // An exception is reported through port 0x4ff: not a hypercall.
    auto fault = run_guest(GuestOptions("fault.bin", "ud"));
    INFO("exit: " << describe(fault.exit));
    REQUIRE(fault.exit.kind == VmExit::Kind::guest_fault);
    CHECK(fault.counts.other_io == 1);
}

TEST_CASE("minivmm-run --stats prints one minivmm-stats line after the guest",
          "[kvm][cli][counts]") {
    minivmm::test::TempFile json_file({});
    auto r = minivmm::test::run_minivmm({"--stats", "--stats-json", json_file.path(),
                                         minivmm::test::guest_path("hcloop.bin"), "--", "100"});
    INFO(minivmm::test::describe(r));
    REQUIRE(r.status == 0);
    CHECK_THAT(r.out, StartsWith("hcloop: 100 hypercalls"));
    CHECK(r.err == "minivmm-stats: exits=102 io=102 mmio=0 hypercall[0]=101 hypercall[1]=1\n");
    std::ifstream in(json_file.path());
    auto j = nlohmann::json::parse(in);
    CHECK(j["exits"] == 102);
    CHECK(j["io"] == 102);
    CHECK(j["mmio"] == 0);
    CHECK(j["hypercalls"]["0"] == 101);
    CHECK(j["hypercalls"]["1"] == 1);
    CHECK(j["reasons"].empty());
    CHECK(j["io_other"] == 0);

    // Without --stats: nothing on stderr. A fault still gets its stats line.
    auto quiet = minivmm::test::run_minivmm({minivmm::test::guest_path("hello.bin")});
    CHECK(quiet.err.empty());
    auto fault =
        minivmm::test::run_minivmm({"--stats", minivmm::test::guest_path("fault.bin"), "--", "ud"});
    INFO(minivmm::test::describe(fault));
    CHECK(fault.status == 126);
    CHECK(minivmm::test::line_count(fault.err) == 2);
    CHECK_THAT(fault.err, Contains("\nminivmm-stats: exits=1 io=1 mmio=0 io_other=1\n"));

    auto bad = minivmm::test::run_minivmm(
        {"--stats-json", "/nonexistent-dir/s.json", minivmm::test::guest_path("hello.bin")});
    CHECK(bad.status == 125);
    CHECK(bad.out.empty()); // refused before the guest ran
    CHECK_THAT(bad.err, Contains("--stats-json") && Contains("/nonexistent-dir/s.json"));
}

TEST_CASE("minivmm-run: the RAM and pinning options through the binary", "[kvm][cli][ram]") {
    minivmm::test::HugePagePoolLock pool_lock;
    const std::string hello = minivmm::test::guest_path("hello.bin");
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"--ram-backing=memfd", "--thp", "--prefault", "--mlock"},
             {"--ram-backing=hugetlbfs", "--prefault"},
             {"--pin", std::to_string(allowed_cpus().front()), "--vcpus", "2"}}) {
        args.push_back(hello);
        auto r = minivmm::test::run_minivmm(args);
        INFO(minivmm::test::describe(r));
        CHECK(r.status == 0);
        CHECK_THAT(r.out, StartsWith("Hello from minivmm guest"));
    }
    auto bad_pin = minivmm::test::run_minivmm({"--pin", "1023", hello});
    CHECK(bad_pin.status == 2);
    CHECK(minivmm::test::line_count(bad_pin.err) == 1);
    CHECK_THAT(bad_pin.err, Contains("--pin") && Contains("1023"));
    auto bad_backing = minivmm::test::run_minivmm({"--ram-backing=tmpfs", hello});
    CHECK(bad_backing.status == 2);
    CHECK_THAT(bad_backing.err, Contains("tmpfs"));
    auto odd = minivmm::test::run_minivmm({"--ram-backing=hugetlbfs", "--mem", "65540K", hello});
    CHECK(odd.status == 125);
    CHECK_THAT(odd.err, Contains("2 MiB"));
}
