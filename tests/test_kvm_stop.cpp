// Stopping a guest that never stops by itself: the time limit and
// Vm::request_stop from another thread. Plus Vm's own error paths.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "kvm_support.hpp"
#include "minivmm/console.hpp"
#include "minivmm/error.hpp"
#include "minivmm/guest_image.hpp"
#include "minivmm/vm.hpp"
#include "test_util.hpp"

using Catch::Matchers::Contains;
using minivmm::VmConfig;
using minivmm::VmExit;
using minivmm::test::describe;
using minivmm::test::guest_path;
using minivmm::test::GuestOptions;
using minivmm::test::kvm;
using minivmm::test::run_guest;
using minivmm::test::thread_count;
using minivmm::test::thread_count_after_exits;
using minivmm::test::Watchdog;
using namespace std::chrono_literals;

namespace {

VmConfig spin_config(unsigned vcpus, std::shared_ptr<minivmm::StringConsole> console) {
    VmConfig config;
    config.mem_size = 64ull << 20;
    config.vcpus = vcpus;
    config.timeout = 20s; // safety net only; the tests stop the guest long before
    config.handle_signals = false;
    config.console = std::move(console);
    return config;
}

} // namespace

TEST_CASE("the time limit stops a spinning guest", "[kvm][timeout]") {
    const unsigned vcpus = GENERATE(1u, 2u);
    INFO(vcpus << " vCPU(s)");
    auto run = run_guest(GuestOptions("spin.bin").with_vcpus(vcpus).with_timeout(300ms));
    INFO("exit: " << describe(run.exit));
    REQUIRE(run.exit.kind == VmExit::Kind::timeout);
    CHECK_THAT(run.exit.message, Contains("0.300 s"));
    CHECK(run.exit.message.find('\n') == std::string::npos);
    CHECK(run.console == "spinning\n"); // it did run
}

TEST_CASE("request_stop from another thread stops a spinning guest", "[kvm][stop]") {
    const unsigned vcpus = GENERATE(1u, 2u);
    INFO(vcpus << " vCPU(s)");
    const std::size_t threads_before = thread_count();
    auto console = std::make_shared<minivmm::StringConsole>();
    VmConfig config = spin_config(vcpus, console);
    auto image = minivmm::load_image_for(guest_path("spin.bin"), config);

    VmExit exit;
    std::atomic<bool> saw_guest_output{false};
    {
        Watchdog watchdog(60s, "request_stop test");
        minivmm::Vm vm(kvm(), config, image);
        std::thread stopper([&] {
            // Stop only once the guest is really running; give up waiting after 10 s
            // (then the check on saw_guest_output below fails).
            auto deadline = std::chrono::steady_clock::now() + 10s;
            while (console->text().find("spinning") == std::string::npos &&
                   std::chrono::steady_clock::now() < deadline)
                std::this_thread::sleep_for(2ms);
            saw_guest_output = console->text().find("spinning") != std::string::npos;
            vm.request_stop({VmExit::Kind::signal, 15, -1, "stopped by the test"});
            // A second request loses: the first reason wins.
            vm.request_stop({VmExit::Kind::vmm_error, 99, -1, "second request"});
        });
        exit = vm.run();
        stopper.join();
    } // ~Vm joins its vCPU threads

    INFO("exit: " << describe(exit));
    CHECK(saw_guest_output);
    CHECK(exit.kind == VmExit::Kind::signal);
    CHECK(exit.code == 15);
    CHECK(exit.message == "stopped by the test");
    CHECK(thread_count_after_exits(threads_before) == threads_before);
}

TEST_CASE("request_stop before run: run returns that reason at once", "[kvm][stop]") {
    const std::size_t threads_before = thread_count();
    auto console = std::make_shared<minivmm::StringConsole>();
    VmConfig config = spin_config(2, console);
    auto image = minivmm::load_image_for(guest_path("spin.bin"), config);
    VmExit exit;
    {
        Watchdog watchdog(60s, "request_stop before run");
        minivmm::Vm vm(kvm(), config, image);
        vm.request_stop({VmExit::Kind::vmm_error, 3, -1, "early stop"});
        vm.request_stop({VmExit::Kind::timeout, 0, -1, "too late"});
        exit = vm.run();
        // run may be called only once.
        CHECK_THROWS_AS(vm.run(), minivmm::ConfigError);
    }
    INFO("exit: " << describe(exit));
    CHECK(exit.kind == VmExit::Kind::vmm_error);
    CHECK(exit.code == 3);
    CHECK(exit.message == "early stop");
    CHECK(thread_count_after_exits(threads_before) == threads_before);
}

TEST_CASE("a Vm that is never run is destroyed cleanly", "[kvm][stop]") {
    const std::size_t threads_before = thread_count();
    {
        auto console = std::make_shared<minivmm::StringConsole>();
        VmConfig config = spin_config(2, console);
        auto image = minivmm::load_image_for(guest_path("spin.bin"), config);
        minivmm::Vm vm(kvm(), config, image);
        CHECK(vm.plan().nr_vcpus() == 2);
        CHECK(vm.boot_ram().size() == config.mem_size);
    }
    CHECK(thread_count_after_exits(threads_before) == threads_before);
}

TEST_CASE("Vm construction rejects impossible configurations", "[kvm][config]") {
    auto console = std::make_shared<minivmm::StringConsole>();
    VmConfig config = spin_config(1, console);
    auto image = minivmm::load_image_for(guest_path("hello.bin"), config);

    SECTION("zero vCPUs") {
        config.vcpus = 0;
        CHECK_THROWS_AS(minivmm::Vm(kvm(), config, image), minivmm::ConfigError);
        CHECK_THROWS_AS(minivmm::load_image_for(guest_path("hello.bin"), config),
                        minivmm::ConfigError);
    }
    SECTION("too many vCPUs") {
        config.vcpus = 100000;
        CHECK_THROWS_AS(minivmm::Vm(kvm(), config, image), minivmm::ConfigError);
    }
    SECTION("RAM not a multiple of 4 KiB") {
        config.mem_size += 100;
        CHECK_THROWS_AS(minivmm::Vm(kvm(), config, image), minivmm::ConfigError);
    }
    SECTION("RAM too small") {
        config.mem_size = 1ull << 20;
        CHECK_THROWS_AS(minivmm::Vm(kvm(), config, image), minivmm::ConfigError);
    }
    SECTION("command line too long or with a NUL") {
        config.cmdline = std::string(5000, 'x');
        CHECK_THROWS_AS(minivmm::Vm(kvm(), config, image), minivmm::ConfigError);
        config.cmdline = std::string("a\0b", 3);
        CHECK_THROWS_AS(minivmm::Vm(kvm(), config, image), minivmm::ConfigError);
    }
    SECTION("an image that overlaps the stacks") {
        minivmm::GuestImage big = image;
        big.segments.at(0).mem_size = config.mem_size; // runs into the stacks
        CHECK_THROWS_AS(minivmm::Vm(kvm(), config, big), minivmm::ImageError);
    }
    SECTION("an image file larger than the RAM available for it") {
        config.mem_size = 2ull << 20; // ~0.7 MiB for the image
        std::vector<std::byte> bytes(1 << 20, std::byte{0x90});
        // load_image_for limits the file size to what fits.
        CHECK(minivmm::BootPlan::max_image_size(config.mem_size, 1) < bytes.size());
        minivmm::test::TempFile file(bytes);
        CHECK_THROWS_AS(minivmm::load_image_for(file.path(), config), minivmm::ImageError);
    }
}

// pause() kicks with immediate_exit = 1; a resume that comes before the
// vCPU reached its pause point (a pause that timed out, or one before run)
// must not leave the flag set, or every KVM_RUN returns EINTR at once and the
// guest never runs again (issue 14, finding 3).
TEST_CASE("pause then resume before the vCPUs got there: the guest still runs", "[kvm][pause]") {
    const unsigned vcpus = GENERATE(1u, 2u);
    INFO(vcpus << " vCPU(s)");
    Watchdog watchdog(60s, "pause/resume before run");
    auto console = std::make_shared<minivmm::StringConsole>();
    VmConfig config = spin_config(vcpus, console);
    config.timeout = 10s; // the old code spun here until this limit
    minivmm::Vm vm(kvm(), config, minivmm::load_image_for(guest_path("hello.bin"), config));
    CHECK(vm.pause(0ms));
    vm.resume();
    auto exit = vm.run();
    INFO("exit: " << describe(exit) << "; console: " << console->text());
    CHECK(exit.kind == VmExit::Kind::guest_exit);
    CHECK(exit.code == 0);
    CHECK_THAT(console->text(), Contains("Hello from minivmm guest"));
}
