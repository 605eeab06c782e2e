// VcpuSet on a real KVM: a vCPU added while the set runs starts at once and
// joins the guest (the path a Linux program's new threads take).
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kvm_support.hpp"
#include "minivmm/boot.hpp"
#include "minivmm/console.hpp"
#include "minivmm/error.hpp"
#include "minivmm/vm.hpp"
#include "test_util.hpp"
#include "vcpu/vcpu_set.hpp"
#include "vm/vm_devices.hpp"
#include "vm/vm_memory.hpp"

using namespace minivmm;
using namespace minivmm::test;

namespace {

// What Vm::Impl composes, put together by hand so that the test decides when
// each vCPU joins.
struct HandBuiltVm {
    explicit HandBuiltVm(VmConfig cfg)
        : config(std::move(cfg)), image(load_image_for(guest_path("smp.bin"), config)),
          vm(kvm().create_vm()), memory(vm, config), plan(config.mem_size, config.vcpus, image),
          vcpus({{}, config.seccomp}, {[] {}, [this] { memory.harvest_dirty_rings(); }, {}}),
          devices(memory.boot_ram(), vcpus, config, vm) {
        // The boot info carries the TSC rate, which a vCPU reports.
        first.emplace(vm.create_vcpu(0));
        cr3 = build_guest(memory.boot_ram(), plan, image, first->tsc_khz(), config.cmdline);
    }

    // Adds vCPU `i`, ready to enter the guest as the ABI says.
    unsigned add(unsigned i) {
        KvmVcpu vcpu = i == 0 && first ? std::move(*first) : vm.create_vcpu(i);
        if (i == 0) first.reset();
        vcpu.set_cpuid(kvm().supported_cpuid());
        vcpu.set_sregs(initial_sregs(vcpu.sregs(), i, cr3));
        vcpu.set_regs(initial_regs(plan, i));
        return vcpus.add(std::move(vcpu), devices.port_bus(), memory.address_space());
    }

    VmConfig config;
    GuestImage image;
    KvmVm vm;
    VmMemory memory;
    BootPlan plan;
    VcpuSet vcpus;
    VmDevices devices;
    std::optional<KvmVcpu> first;
    std::uint64_t cr3 = 0;
};

VmConfig smp_config(std::shared_ptr<StringConsole> console) {
    VmConfig config;
    config.vcpus = 2; // the boot info says two: vCPU 0 waits for the second
    config.cmdline = "1000";
    config.handle_signals = false;
    config.console = std::move(console);
    return config;
}

} // namespace

TEST_CASE("VcpuSet: a vCPU added while the set runs starts at once and joins the guest",
          "[kvm][vcpu-set]") {
    Watchdog watchdog(120s, "vcpu-set add while running");
    auto console = std::make_shared<StringConsole>();
    HandBuiltVm hv(smp_config(console));
    hv.add(0);
    hv.vcpus.start();

    // vCPU 0 has done its share and now waits for a second vCPU that does
    // not exist yet: the guest cannot finish on its own.
    std::this_thread::sleep_for(300ms);
    CHECK_FALSE(hv.vcpus.stopping());
    REQUIRE(hv.vcpus.size() == 1);

    unsigned index = hv.add(1);
    CHECK(index == 1);
    CHECK(hv.vcpus.size() == 2);
    hv.vcpus.join();

    VmExit exit = hv.vcpus.result();
    INFO(describe(exit) << "\nconsole: " << console->text());
    CHECK(exit.kind == VmExit::Kind::guest_exit);
    CHECK(exit.code == 0);
    CHECK(console->text().find("smp: 2 vcpus, counter=2000 expected=2000") != std::string::npos);
    CHECK(hv.vcpus.exit_counts().total() > 0);
    hv.devices.stop();
}

TEST_CASE("VcpuSet: a vCPU added while paused is held until resume", "[kvm][vcpu-set]") {
    Watchdog watchdog(120s, "vcpu-set add while paused");
    auto console = std::make_shared<StringConsole>();
    HandBuiltVm hv(smp_config(console));
    hv.add(0);
    hv.vcpus.start();
    REQUIRE(hv.vcpus.pause(10s));
    hv.add(1);
    // Held: the guest would finish within milliseconds if vCPU 1 ran.
    std::this_thread::sleep_for(300ms);
    CHECK_FALSE(hv.vcpus.stopping());
    CHECK(console->text().empty());
    hv.vcpus.resume();
    hv.vcpus.join();
    VmExit exit = hv.vcpus.result();
    INFO(describe(exit) << "\nconsole: " << console->text());
    CHECK(exit.kind == VmExit::Kind::guest_exit);
    CHECK(exit.code == 0);
    CHECK(console->text().find("smp: 2 vcpus") != std::string::npos);
    hv.devices.stop();
}

TEST_CASE("VcpuSet: adding to a stopped set is refused", "[kvm][vcpu-set]") {
    Watchdog watchdog(120s, "vcpu-set add after stop");
    auto console = std::make_shared<StringConsole>();
    HandBuiltVm hv(smp_config(console));
    hv.add(0);
    hv.vcpus.start();
    hv.vcpus.request_stop({VmExit::Kind::signal, 15, -1, "test stop"});
    hv.vcpus.join();
    CHECK(hv.vcpus.result().kind == VmExit::Kind::signal);
    CHECK_THROWS_AS(hv.add(1), ConfigError);
    hv.devices.stop();
}
