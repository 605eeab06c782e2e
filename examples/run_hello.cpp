// Runs a guest image through the library API and captures its console.
//   run_hello [IMAGE]   (default: the hello guest built with the tree)
#include <cstdio>

#include <fmt/core.h>

#include "minivmm/console.hpp"
#include "minivmm/error.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/vm.hpp"

int main(int argc, char** argv) {
    std::string path = argc > 1 ? argv[1] : MINIVMM_GUEST_DIR "/hello.bin";
    try {
        minivmm::KvmSystem kvm;
        minivmm::VmConfig config;
        config.vcpus = 1;
        config.mem_size = 64ull << 20;
        config.cmdline = "from the library API";
        auto console = std::make_shared<minivmm::StringConsole>();
        config.console = console;
        minivmm::Vm vm(kvm, config, minivmm::load_image_for(path, config));
        auto exit = vm.run();
        fmt::print("guest said: {}", console->text());
        fmt::print("guest ended: {} (code {}), {} KVM exits\n", minivmm::to_string(exit.kind),
                   exit.code, vm.exit_counts().total());
        return exit.kind == minivmm::VmExit::Kind::guest_exit ? exit.code : 1;
    } catch (const minivmm::Error& e) {
        fmt::print(stderr, "run_hello: {}\n", e.what());
        return 1;
    }
}
