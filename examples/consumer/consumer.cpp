// Boots a guest image through libminivmm's public API, with its console
// captured in memory, and reports how it ended.
//
//   consumer IMAGE [GUEST COMMAND LINE]
//
// Exit status: the guest's exit code when it exited, 1 when it faulted or
// the VMM failed, 2 on a usage error.
#include <cstdio>
#include <memory>
#include <string>

#include "minivmm/console.hpp"
#include "minivmm/error.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/version.hpp"
#include "minivmm/vm.hpp"

int main(int argc, char** argv) {
    if (argc < 2 || argc > 3) {
        std::fprintf(stderr, "usage: consumer IMAGE [GUEST COMMAND LINE]\n");
        return 2;
    }
    try {
        minivmm::KvmSystem kvm;
        minivmm::VmConfig config;
        config.vcpus = 1;
        config.mem_size = 64ull << 20;
        config.cmdline = argc > 2 ? argv[2] : "";
        auto console = std::make_shared<minivmm::StringConsole>();
        config.console = console;
        minivmm::Vm vm(kvm, config, minivmm::load_image_for(argv[1], config));
        minivmm::VmExit exit = vm.run();
        std::printf("libminivmm %s\n", minivmm::version());
        std::printf("guest console: %s", console->text().c_str());
        std::printf("guest ended: %s, code %d\n", minivmm::to_string(exit.kind), exit.code);
        return exit.kind == minivmm::VmExit::Kind::guest_exit ? exit.code : 1;
    } catch (const minivmm::Error& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 1;
    }
}
