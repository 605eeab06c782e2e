// Fuzz target: hypercall argument decoding (src/devices/hypercalls.cpp) with
// its bounds checks. The input (fuzz_support.hpp, next_op) writes guest RAM
// (2 MiB, guarded) and makes up to 16 hypercalls; the first byte chooses
// whether hypercalls 22/23 are served by a real RamHotplug with two
// hot-added 2 MiB regions (on a MemoryTopology without KVM). Every answer
// must keep check_outcome's invariants, and 22/23 must report what the
// hotplug table holds.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "boot/builders.hpp"
#include "devices/hypercalls.hpp"
#include "fuzz_support.hpp"
#include "minivmm/address_space.hpp"
#include "minivmm/boot.hpp"
#include "minivmm/boot_info.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/console.hpp"
#include "minivmm/guest_image.hpp"
#include "minivmm/hypercall.hpp"
#include "minivmm/memory_region.hpp"
#include "vm/ram_hotplug.hpp"

using namespace minivmm;
using namespace minivmm::fuzz;

namespace {

constexpr std::uint64_t kRam = 2ull << 20;
constexpr std::uint64_t kHot[] = {1ull << 30, (1ull << 30) + (4ull << 20)};

// Reads every byte it is given, so that a span reaching past RAM faults.
struct TouchingConsole final : ConsoleSink {
    void write(std::span<const std::byte> bytes) override {
        for (auto b : bytes)
            sum ^= static_cast<std::uint8_t>(b);
    }
    std::uint8_t sum = 0;
};

// Boot RAM with its page tables, and two hot-added regions, as Vm sets them up.
struct Rig {
    GuardedMemory ram{kRam};
    MemoryTopology topology;
    std::shared_ptr<MemoryRegion> root = MemoryRegion::container("root", layout::kMaxMemSize);
    AddressSpace& space = topology.add_address_space("memory", root);
    std::atomic<bool> dirty_logging{false};
    std::unique_ptr<RamHotplug> hotplug;

    Rig() {
        topology.add_subregion(*root, 0, MemoryRegion::ram("ram", ram.mem().block(), 0, kRam));
        const std::byte spin[] = {std::byte{0xeb}, std::byte{0xfe}}; // jmp .
        const auto image = GuestImage::parse(spin);
        const BootPlan plan(kRam, 1, image);
        const std::uint64_t cr3 = build_page_tables(ram.mem(), plan);
        hotplug = std::make_unique<RamHotplug>(ram.mem(), cr3, topology, *root, space,
                                               RamBlockOptions{}, dirty_logging);
        for (auto gpa : kHot)
            hotplug->add(gpa, RamHotplug::kAlign);
        (void)ram.mem().block()->dirty().take(); // the set-up's writes are not the guest's doing
    }
};

struct MemMapArgs {
    std::uint64_t buf, cap, count, generation;
};
struct MemClaimArgs {
    std::uint64_t gpa, claim, status;
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Rig rig;
    rig.ram.clear(); // the page tables too: nothing maps RAM after set-up
    for (auto gpa : kHot)
        rig.hotplug->claim(gpa, false);

    Reader in(std::span(data, size));
    const auto config = in.take<std::uint8_t>();
    TouchingConsole console;
    FakeVcpuHost control;
    HypercallDevice device(rig.ram.mem(), console, control);
    if (config & 1) device.set_hotplug(rig.hotplug.get());

    for (int calls = 0; !in.empty() && calls < 16;) {
        auto call = next_op(in, rig.ram);
        if (!call) continue;
        ++calls;
        control.stop.reset();
        const ExitAction action = perform(device, *call);
        check_outcome(action, control.stop);
        if (action == ExitAction::stop) continue;
        switch (static_cast<Hypercall>(call->nr)) {
        case Hypercall::halt:
            MINIVMM_FUZZ_CHECK(action == ExitAction::park);
            break;
        case Hypercall::mem_map: {
            // The block is written last: whatever the buffer overlapped, it
            // holds the table's count and generation (two adds).
            auto args = read_back<MemMapArgs>(rig.ram, call->block);
            MINIVMM_FUZZ_CHECK(args.count == 2 && args.generation == 2);
            MINIVMM_FUZZ_CHECK(call->block >= layout::kReservedEnd);
            break;
        }
        case Hypercall::mem_claim: {
            auto args = read_back<MemClaimArgs>(rig.ram, call->block);
            const bool known = args.gpa == kHot[0] || args.gpa == kHot[1];
            MINIVMM_FUZZ_CHECK(args.status == (args.claim > 1 ? 2u : known ? 0u : 1u));
            break;
        }
        default:
            MINIVMM_FUZZ_CHECK(action == ExitAction::resume);
        }
    }
    rig.ram.check_reserved_untouched();
    return 0;
}
