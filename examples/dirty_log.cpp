// Builds guest memory through the library's region API, runs a guest, and
// prints what dirty logging saw:
//   - RAM: the VM's "ram" region (one RAM block at 0);
//   - a ROM: a 64 KiB block with a text, mapped read-only over RAM at 8 MiB;
//   - dirty logging (bitmap mode, or ring mode with --ring), started before
//     the guest runs; after it exits, the dirty pages are printed.
//   dirty_log [--ring] [--lock=per-listener|global|rcu]
#include <cstring>
#include <string_view>

#include <fmt/core.h>

#include "minivmm/console.hpp"
#include "minivmm/error.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/vm.hpp"

int main(int argc, char** argv) {
    minivmm::VmConfig config;
    config.mem_size = 64ull << 20;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--ring") {
            config.dirty_ring_entries = 4096;
        } else if (a.starts_with("--lock=") && minivmm::parse_lock_policy(a.substr(7))) {
            config.lock_policy = *minivmm::parse_lock_policy(a.substr(7));
        } else {
            fmt::print(stderr, "usage: dirty_log [--ring] [--lock=per-listener|global|rcu]\n");
            return 2;
        }
    }
    constexpr std::uint64_t kRomGpa = 8ull << 20, kRomSize = 64ull << 10;
    config.cmdline = fmt::format("{:#x}", kRomGpa);
    try {
        minivmm::KvmSystem kvm;
        minivmm::Vm vm(kvm, config, minivmm::load_image_for(MINIVMM_GUEST_DIR "/rom.bin", config));

        // The ROM: its own block, filled by the VMM, shown above RAM (priority 1).
        auto rom_block = std::make_shared<minivmm::RamBlock>("rom", kRomSize);
        const char text[] = "hello from a read-only region";
        std::memcpy(rom_block->host(), text, sizeof text);
        vm.topology().add_subregion(vm.root_region(), kRomGpa,
                                    minivmm::MemoryRegion::rom("rom", rom_block, 0, kRomSize), 1);

        fmt::print("KVM slots ({} lock policy):\n", minivmm::to_string(config.lock_policy));
        for (const auto& s : vm.kvm_slots().slots(0))
            fmt::print("  slot {:2}  [{:#10x}, {:#10x})  {}\n", s.slot, s.start_addr,
                       s.start_addr + s.memory_size,
                       (s.flags & minivmm::kSlotReadonly) ? "read-only" : "read-write");

        vm.dirty_log_start();
        auto exit = vm.run();
        auto dirty = vm.dirty_log_sync();
        fmt::print("guest ended: {} (code {})\n", minivmm::to_string(exit.kind), exit.code);
        fmt::print("{} dirty page(s) ({} mode):\n", dirty.size(),
                   config.dirty_ring_entries ? "ring" : "bitmap");
        for (auto gpa : dirty)
            fmt::print("  {:#x}\n", gpa);
        return exit.kind == minivmm::VmExit::Kind::guest_exit ? exit.code : 1;
    } catch (const minivmm::Error& e) {
        fmt::print(stderr, "dirty_log: {}\n", e.what());
        return 1;
    }
}
