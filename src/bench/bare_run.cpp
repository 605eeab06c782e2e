// minivmm-bare-run IMAGE [CMDLINE]: the exit-path baseline. Set-up is
// libminivmm's (so the guest sees the same machine); the run loop is the
// least a correct VMM can do: KVM_RUN, then for an outl to the write or exit
// hypercall port read the argument block (bounds-checked), write, repeat.
// No bus, no threads, no event loop, no exit accounting.
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>

#include <fmt/core.h>

#include "minivmm/boot.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/error.hpp"
#include "minivmm/kvm.hpp"

int main(int argc, char** argv) {
    if (argc < 2) {
        fmt::print(stderr, "usage: minivmm-bare-run IMAGE [CMDLINE]\n");
        return 2;
    }
    try {
        constexpr std::uint64_t kMem = 256ull << 20;
        minivmm::KvmSystem kvm;
        auto image =
            minivmm::GuestImage::load_file(argv[1], minivmm::BootPlan::max_image_size(kMem, 1));
        minivmm::BootPlan plan(kMem, 1, image);
        auto vm = kvm.create_vm();
        minivmm::BootRam mem(kMem);
        kvm_userspace_memory_region region{};
        region.memory_size = kMem;
        region.userspace_addr = reinterpret_cast<std::uint64_t>(mem.host_base());
        vm.set_user_memory_region(region);
        auto vcpu = vm.create_vcpu(0);
        vcpu.set_cpuid(kvm.supported_cpuid());
        auto cr3 = minivmm::build_guest(mem, plan, image, vcpu.tsc_khz(), argc > 2 ? argv[2] : "");
        vcpu.set_sregs(minivmm::initial_sregs(vcpu.sregs(), 0, cr3));
        vcpu.set_regs(minivmm::initial_regs(plan, 0));

        kvm_run* run = &vcpu.run_state();
        const int fd = vcpu.fd();
        for (;;) {
            if (::ioctl(fd, KVM_RUN, 0) < 0) {
                if (errno == EINTR) continue;
                fmt::print(stderr, "KVM_RUN: {}\n", std::strerror(errno));
                return 125;
            }
            if (run->exit_reason != KVM_EXIT_IO || run->io.size != 4) break;
            std::uint32_t block;
            std::memcpy(&block, reinterpret_cast<char*>(run) + run->io.data_offset, 4);
            if (run->io.port == minivmm::layout::kHypercallPortBase) {
                auto args = mem.read<std::array<std::uint64_t, 2>>(block);
                if (!args) break;
                auto buf = mem.range((*args)[0], (*args)[1]);
                if (!buf) break;
                if (!buf->empty() && ::write(1, buf->data(), buf->size()) < 0) return 125;
            } else if (run->io.port == minivmm::layout::kHypercallPortBase + 1) {
                auto code = mem.read<std::uint64_t>(block);
                return code ? static_cast<int>(*code & 0xff) : 126;
            } else {
                break;
            }
        }
        fmt::print(stderr, "minivmm-bare-run: unexpected exit {} (port {:#x})\n", run->exit_reason,
                   run->io.port);
        return 126;
    } catch (const minivmm::Error& e) {
        fmt::print(stderr, "minivmm-bare-run: {}\n", e.what());
        return 125;
    }
}
