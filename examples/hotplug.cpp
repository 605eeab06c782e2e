// Hot-adds and removes a RAM region while a guest runs on two vCPUs, and
// prints the KVM slots before, during and after, plus how long the round
// trips took under the chosen lock policy.
//   hotplug [--lock=per-listener|global|rcu] [ROUNDS]
#include <chrono>
#include <string_view>
#include <thread>

#include <fmt/core.h>

#include "minivmm/console.hpp"
#include "minivmm/error.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/vm.hpp"

namespace {
void print_slots(minivmm::Vm& vm, const char* when) {
    fmt::print("{}:\n", when);
    for (const auto& s : vm.kvm_slots().slots(0))
        fmt::print("  slot {:2}  [{:#12x}, {:#12x})\n", s.slot, s.start_addr,
                   s.start_addr + s.memory_size);
}
} // namespace

int main(int argc, char** argv) {
    minivmm::VmConfig config;
    config.vcpus = 2;
    config.mem_size = 64ull << 20;
    config.timeout = std::chrono::seconds(30);
    config.console = std::make_shared<minivmm::StringConsole>();
    unsigned rounds = 100;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a.starts_with("--lock=") && minivmm::parse_lock_policy(a.substr(7)))
            config.lock_policy = *minivmm::parse_lock_policy(a.substr(7));
        else if (!a.empty() && a.find_first_not_of("0123456789") == std::string_view::npos)
            rounds = static_cast<unsigned>(std::stoul(std::string(a)));
        else {
            fmt::print(stderr, "usage: hotplug [--lock=per-listener|global|rcu] [ROUNDS]\n");
            return 2;
        }
    }
    try {
        minivmm::KvmSystem kvm;
        minivmm::Vm vm(kvm, config, minivmm::load_image_for(MINIVMM_GUEST_DIR "/spin.bin", config));
        minivmm::VmExit exit;
        std::thread runner([&] { exit = vm.run(); }); // both vCPUs spin meanwhile

        // 64 MiB of new RAM at 1 GiB, above the guest's own RAM.
        auto block = std::make_shared<minivmm::RamBlock>("hotplug", 64ull << 20);
        auto region = minivmm::MemoryRegion::ram("hotplug", block, 0, block->size());
        print_slots(vm, "before");
        vm.topology().add_subregion(vm.root_region(), 1ull << 30, region);
        print_slots(vm, "after adding 64 MiB at 1 GiB");
        vm.topology().remove_subregion(vm.root_region(), *region);
        print_slots(vm, "after removing it");

        auto t0 = std::chrono::steady_clock::now();
        for (unsigned i = 0; i < rounds; ++i) {
            vm.topology().add_subregion(vm.root_region(), 1ull << 30, region);
            vm.topology().remove_subregion(vm.root_region(), *region);
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        fmt::print("{} add+remove round trips while 2 vCPUs ran: {:.1f} us each ({} lock "
                   "policy)\n",
                   rounds, rounds ? s / rounds * 1e6 : 0.0, minivmm::to_string(config.lock_policy));
        vm.request_stop({minivmm::VmExit::Kind::guest_exit, 0, -1, {}});
        runner.join();
        return 0;
    } catch (const minivmm::Error& e) {
        fmt::print(stderr, "hotplug: {}\n", e.what());
        return 1;
    }
}
