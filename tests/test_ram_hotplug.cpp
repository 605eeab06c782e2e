// RamHotplug without /dev/kvm: the KVM listener runs against
// RecordingSlotBackend, the guest's page tables are real.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "boot/builders.hpp"
#include "minivmm/address_space.hpp"
#include "minivmm/boot.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/error.hpp"
#include "minivmm/guest_image.hpp"
#include "minivmm/kvm_slots.hpp"
#include "minivmm/memory_region.hpp"
#include "testing/recording_slot_backend.hpp"
#include "vm/ram_hotplug.hpp"

using namespace minivmm;

namespace {

constexpr std::uint64_t kRam = 2ull << 20, kHot = 1ull << 30;

// Boot RAM with its page tables in one address space with a KVM listener
// of `max_slots` slots, as Vm sets them up.
struct HotplugRig {
    explicit HotplugRig(std::uint32_t max_slots) : backend(1, max_slots), kvm(backend, {}) {
        topology.add_listener(space, kvm.listener(0));
        topology.add_subregion(*root, 0, MemoryRegion::ram("ram", mem.block(), 0, kRam));
        const std::byte spin[] = {std::byte{0xeb}, std::byte{0xfe}}; // jmp .
        cr3 = build_page_tables(mem, BootPlan(kRam, 1, GuestImage::parse(spin)));
        hotplug = std::make_unique<RamHotplug>(mem, cr3, topology, *root, space, RamBlockOptions{},
                                               logging);
    }
    // Nothing of an add is left: no section, no slot, no listed region, and
    // the same add is refused for the same reason, not for an overlap.
    void check_nothing_left(const std::string& why) {
        for (const auto& sec : space.view()->sections())
            CHECK(sec.end() <= kHot);
        CHECK_FALSE(kvm.find_slot(0, kHot).has_value());
        CHECK(kvm.slots(0).size() == 1);
        CHECK(hotplug->list().empty());
        CHECK(hotplug->snapshot().generation == 0);
        CHECK_THROWS_WITH(hotplug->add(kHot, RamHotplug::kAlign), Catch::Contains(why));
    }

    BootRam mem{kRam};
    RecordingSlotBackend backend;
    KvmSlots kvm;
    MemoryTopology topology;
    std::shared_ptr<MemoryRegion> root = MemoryRegion::container("root", layout::kMaxMemSize);
    AddressSpace& space = topology.add_address_space("memory", root);
    std::atomic<bool> logging{false};
    std::uint64_t cr3 = 0;
    std::unique_ptr<RamHotplug> hotplug;
};

} // namespace

TEST_CASE("RamHotplug: a region that is added and removed leaves nothing behind", "[hotplug]") {
    HotplugRig rig(8);
    rig.hotplug->add(kHot, RamHotplug::kAlign);
    REQUIRE(rig.kvm.find_slot(0, kHot).has_value());
    REQUIRE(rig.hotplug->list().size() == 1);
    rig.hotplug->remove(kHot);
    CHECK_FALSE(rig.kvm.find_slot(0, kHot).has_value());
    CHECK(rig.hotplug->list().empty());
    CHECK(rig.hotplug->snapshot().generation == 2);
}

// Issue 14, finding 9: KVM refused the slot (here: none is free), so the
// transaction's commit threw after the region had gone into the memory
// tree. The region stayed there but not in the hot-added list: its range
// was taken ("overlaps 'hotplug0'") and memory-remove could not free it.
TEST_CASE("RamHotplug: an add that KVM refuses changes nothing", "[hotplug]") {
    HotplugRig rig(1); // boot RAM takes the only slot
    CHECK_THROWS_WITH(rig.hotplug->add(kHot, RamHotplug::kAlign),
                      Catch::Contains("KVM memory slots are in use"));
    rig.check_nothing_left("KVM memory slots are in use");
}

// The other failure after the slot exists: the guest's page tables cannot
// map the region. The slot and the region go again.
TEST_CASE("RamHotplug: an add the page tables cannot take changes nothing", "[hotplug]") {
    HotplugRig rig(8);
    rig.mem.write<std::uint64_t>(rig.cr3, 0); // PML4 entry 0 gone
    CHECK_THROWS_WITH(rig.hotplug->add(kHot, RamHotplug::kAlign),
                      Catch::Contains("page tables are not the ones"));
    rig.check_nothing_left("page tables are not the ones");
}
