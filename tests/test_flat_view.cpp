// MemoryRegion trees rendered into FlatViews, and what MemoryTopology tells
// its listeners when the view changes (QEMU's memory API model). No KVM.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "minivmm/address_space.hpp"
#include "minivmm/error.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/memory_listener.hpp"
#include "minivmm/memory_region.hpp"
#include "minivmm/ram_block.hpp"

using minivmm::AddressSpace;
using minivmm::ConfigError;
using minivmm::ExitAction;
using minivmm::FlatView;
using minivmm::IoAccess;
using minivmm::IoDevice;
using minivmm::MemoryListener;
using minivmm::MemoryRegion;
using minivmm::MemorySection;
using minivmm::MemoryTopology;
using minivmm::RamBlock;

namespace {

constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;
constexpr std::uint64_t GiB = 1024 * MiB;

struct NullDevice final : IoDevice {
    ExitAction access(const IoAccess&) override { return ExitAction::resume; }
};

std::shared_ptr<RamBlock> make_block(const std::string& name, std::uint64_t size) {
    return std::make_shared<RamBlock>(name, size);
}

// "name@gpa+size/offset_in_region[ ro][ log]": one section, as the tests compare them.
std::string describe(const MemorySection& s) {
    return fmt::format("{}@{:#x}+{:#x}/{:#x}{}{}", s.region ? s.region->name() : "?", s.gpa, s.size,
                       s.offset_in_region, s.readonly ? " ro" : "", s.log_dirty ? " log" : "");
}

std::vector<std::string> describe(const FlatView& view) {
    std::vector<std::string> out;
    for (const auto& s : view.sections())
        out.push_back(describe(s));
    return out;
}

std::vector<std::string> describe(const AddressSpace& as) {
    return describe(*as.view());
}

// Records every callback as one string: "begin", "del <section>",
// "add <section>", "log_start <section>", "log_stop <section>", "commit".
struct RecordingListener final : MemoryListener {
    std::vector<std::string> events;
    std::vector<MemorySection> added; // full copies of what region_add saw

    void begin() override { events.emplace_back("begin"); }
    void region_add(const MemorySection& s) override {
        events.push_back("add " + describe(s));
        added.push_back(s);
    }
    void region_del(const MemorySection& s) override { events.push_back("del " + describe(s)); }
    void log_start(const MemorySection& s) override {
        events.push_back("log_start " + describe(s));
    }
    void log_stop(const MemorySection& s) override { events.push_back("log_stop " + describe(s)); }
    void commit() override { events.emplace_back("commit"); }

    // Returns the events so far and forgets them.
    std::vector<std::string> take() {
        auto out = std::move(events);
        events.clear();
        added.clear();
        return out;
    }
};

using Events = std::vector<std::string>;

// A topology with one address space of 4 GiB whose root is a container.
struct Rig {
    MemoryTopology topo;
    std::shared_ptr<MemoryRegion> root = MemoryRegion::container("root", 4 * GiB);
    AddressSpace& as = topo.add_address_space("memory", root);
};

} // namespace

TEST_CASE("FlatView: one RAM region is one section", "[memory][flat_view]") {
    Rig rig;
    auto block = make_block("ram", 1 * MiB);
    auto ram = MemoryRegion::ram("ram", block, 0x2000, 0x8000);
    CHECK(ram->kind() == MemoryRegion::Kind::ram);
    CHECK(ram->block() == block.get());
    CHECK(ram->block_offset() == 0x2000);
    CHECK(rig.as.view()->sections().empty());

    rig.topo.add_subregion(*rig.root, 0x100000, ram);
    auto view = rig.as.view();
    REQUIRE(view->sections().size() == 1);
    const MemorySection& s = view->sections()[0];
    CHECK(s.gpa == 0x100000);
    CHECK(s.size == 0x8000);
    CHECK(s.end() == 0x108000);
    CHECK(s.region == ram.get());
    CHECK(s.offset_in_region == 0);
    CHECK(s.kind == MemoryRegion::Kind::ram);
    CHECK(s.is_ram());
    CHECK(s.block == block.get());
    CHECK(s.block_offset == 0x2000);
    CHECK(s.host == block->host() + 0x2000);
    CHECK_FALSE(s.readonly);
    CHECK_FALSE(s.log_dirty);

    // Rendering the tree directly gives the same view as the address space holds.
    CHECK(describe(FlatView::render(*rig.root)) == describe(*view));
    CHECK(describe(*view) == Events{"ram@0x100000+0x8000/0x0"});
}

TEST_CASE("FlatView: a higher priority region splits a lower one", "[memory][flat_view]") {
    Rig rig;
    RecordingListener rec;
    auto low_block = make_block("low", 64 * KiB);
    auto high_block = make_block("high", 64 * KiB);
    auto low = MemoryRegion::ram("low", low_block, 0, 0x10000);
    auto high = MemoryRegion::ram("high", high_block, 0x1000, 0x4000);
    rig.topo.add_subregion(*rig.root, 0x0, low, 0);
    rig.topo.add_listener(rig.as, rec);
    rec.take();

    rig.topo.add_subregion(*rig.root, 0x4000, high, 1);
    CHECK(describe(rig.as) ==
          Events{"low@0x0+0x4000/0x0", "high@0x4000+0x4000/0x0", "low@0x8000+0x8000/0x8000"});
    auto view = rig.as.view();
    REQUIRE(view->sections().size() == 3);
    CHECK(view->sections()[0].host == low_block->host());
    CHECK(view->sections()[1].host == high_block->host() + 0x1000);
    CHECK(view->sections()[1].block_offset == 0x1000);
    CHECK(view->sections()[2].host == low_block->host() + 0x8000);
    CHECK(view->sections()[2].block_offset == 0x8000);
    CHECK(rec.take() == Events{"begin", "del low@0x0+0x10000/0x0", "add low@0x0+0x4000/0x0",
                               "add high@0x4000+0x4000/0x0", "add low@0x8000+0x8000/0x8000",
                               "commit"});

    // Removing the top region merges the low one back into one section.
    rig.topo.remove_subregion(*rig.root, *high);
    CHECK(describe(rig.as) == Events{"low@0x0+0x10000/0x0"});
    CHECK(rec.take() == Events{"begin", "del low@0x0+0x4000/0x0", "del high@0x4000+0x4000/0x0",
                               "del low@0x8000+0x8000/0x8000", "add low@0x0+0x10000/0x0",
                               "commit"});

    // Below the low one it is hidden, wherever it was added in time.
    rig.topo.add_subregion(*rig.root, 0x4000, high, -1);
    CHECK(describe(rig.as) == Events{"low@0x0+0x10000/0x0"});
    // Hanging out past the end of the low one, only that part shows.
    rig.topo.remove_subregion(*rig.root, *high);
    rig.topo.add_subregion(*rig.root, 0xe000, high, -1);
    CHECK(describe(rig.as) == Events{"low@0x0+0x10000/0x0", "high@0x10000+0x2000/0x2000"});
    CHECK(rig.as.view()->sections()[1].host == high_block->host() + 0x3000);
}

TEST_CASE("FlatView: among equal priorities the later-added region wins", "[memory][flat_view]") {
    auto block_a = make_block("a", 64 * KiB);
    auto block_b = make_block("b", 64 * KiB);
    auto a = MemoryRegion::ram("a", block_a, 0, 0x8000);
    auto b = MemoryRegion::ram("b", block_b, 0, 0x8000);

    SECTION("a first, then b") {
        Rig rig;
        rig.topo.add_subregion(*rig.root, 0x0, a);
        rig.topo.add_subregion(*rig.root, 0x4000, b);
        CHECK(describe(rig.as) == Events{"a@0x0+0x4000/0x0", "b@0x4000+0x8000/0x0"});
        // subregions(): highest priority first, newest first among equals.
        REQUIRE(rig.root->subregions().size() == 2);
        CHECK(rig.root->subregions()[0].region == b);
        CHECK(rig.root->subregions()[1].region == a);
    }
    SECTION("b first, then a") {
        Rig rig;
        rig.topo.add_subregion(*rig.root, 0x4000, b);
        rig.topo.add_subregion(*rig.root, 0x0, a);
        CHECK(describe(rig.as) == Events{"a@0x0+0x8000/0x0", "b@0x8000+0x4000/0x4000"});
        CHECK(rig.as.view()->sections()[1].host == block_b->host() + 0x4000);
    }
    SECTION("a later-added region of lower priority still loses") {
        Rig rig;
        rig.topo.add_subregion(*rig.root, 0x0, a, 2);
        rig.topo.add_subregion(*rig.root, 0x4000, b, 1);
        CHECK(describe(rig.as) == Events{"a@0x0+0x8000/0x0", "b@0x8000+0x4000/0x4000"});
    }
}

TEST_CASE("FlatView: nested containers, clipping and disabled regions", "[memory][flat_view]") {
    Rig rig;
    RecordingListener rec;
    rig.topo.add_listener(rig.as, rec);
    auto block = make_block("ram", 1 * MiB);
    auto outer = MemoryRegion::container("outer", 1 * MiB);
    auto inner = MemoryRegion::container("inner", 0x10000);
    auto r1 = MemoryRegion::ram("r1", block, 0x0, 0x2000);
    auto r2 = MemoryRegion::ram("r2", block, 0x10000, 0x8000); // runs past inner's end
    auto r3 = MemoryRegion::ram("r3", block, 0x20000, 0x1000); // starts at inner's end

    rig.topo.add_subregion(*inner, 0x1000, r1);
    rig.topo.add_subregion(*inner, 0xc000, r2);
    rig.topo.add_subregion(*inner, 0x10000, r3);
    rig.topo.add_subregion(*outer, 0x20000, inner);
    CHECK(rig.as.view()->sections().empty()); // not in the address space yet
    rec.take();

    rig.topo.add_subregion(*rig.root, 0x1000000, outer);
    CHECK(describe(rig.as) == Events{"r1@0x1021000+0x2000/0x0", "r2@0x102c000+0x4000/0x0"});
    auto view = rig.as.view();
    REQUIRE(view->sections().size() == 2);
    CHECK(view->sections()[0].host == block->host());
    CHECK(view->sections()[1].host == block->host() + 0x10000);
    CHECK(view->find(0x102ffff) != nullptr);
    CHECK(view->find(0x1030000) == nullptr); // clipped at inner's end
    CHECK(rec.take() ==
          Events{"begin", "add r1@0x1021000+0x2000/0x0", "add r2@0x102c000+0x4000/0x0", "commit"});

    SECTION("a disabled container hides everything in it, and brings it back") {
        rig.topo.set_enabled(*inner, false);
        CHECK_FALSE(inner->enabled());
        CHECK(rig.as.view()->sections().empty());
        CHECK(rec.take() == Events{"begin", "del r1@0x1021000+0x2000/0x0",
                                   "del r2@0x102c000+0x4000/0x0", "commit"});
        rig.topo.set_enabled(*inner, false); // no change: nothing to tell
        CHECK(rec.take().empty());
        rig.topo.set_enabled(*inner, true);
        CHECK(describe(rig.as) == Events{"r1@0x1021000+0x2000/0x0", "r2@0x102c000+0x4000/0x0"});
        CHECK(rec.take() == Events{"begin", "add r1@0x1021000+0x2000/0x0",
                                   "add r2@0x102c000+0x4000/0x0", "commit"});
    }
    SECTION("a disabled leaf vanishes; a disabled high-priority leaf uncovers a lower one") {
        rig.topo.set_enabled(*r1, false);
        CHECK(describe(rig.as) == Events{"r2@0x102c000+0x4000/0x0"});
        rig.topo.set_enabled(*r1, true);
        CHECK(describe(rig.as) == Events{"r1@0x1021000+0x2000/0x0", "r2@0x102c000+0x4000/0x0"});

        auto cover = MemoryRegion::ram("cover", block, 0x40000, 0x1000);
        rig.topo.add_subregion(*inner, 0x1000, cover, 5);
        CHECK(describe(rig.as) == Events{"cover@0x1021000+0x1000/0x0", "r1@0x1022000+0x1000/0x1000",
                                         "r2@0x102c000+0x4000/0x0"});
        rec.take();
        rig.topo.set_enabled(*cover, false);
        CHECK(describe(rig.as) == Events{"r1@0x1021000+0x2000/0x0", "r2@0x102c000+0x4000/0x0"});
        CHECK(rec.take() == Events{"begin", "del cover@0x1021000+0x1000/0x0",
                                   "del r1@0x1022000+0x1000/0x1000", "add r1@0x1021000+0x2000/0x0",
                                   "commit"});
    }
    SECTION("a container's priority covers all its subregions") {
        auto other = MemoryRegion::ram("other", block, 0x80000, 0x40000);
        // Under outer (priority 0) at its start: outer's children win where they are.
        rig.topo.add_subregion(*rig.root, 0x1010000, other, -1);
        CHECK(describe(rig.as) == Events{"other@0x1010000+0x11000/0x0", "r1@0x1021000+0x2000/0x0",
                                         "other@0x1023000+0x9000/0x13000",
                                         "r2@0x102c000+0x4000/0x0",
                                         "other@0x1030000+0x20000/0x20000"});
    }
}

TEST_CASE("FlatView: aliases resolve to the leaf they show", "[memory][flat_view]") {
    Rig rig;
    auto block = make_block("ram", 1 * MiB);
    auto ram = MemoryRegion::ram("ram", block, 0, 1 * MiB);
    rig.topo.add_subregion(*rig.root, 0x0, ram);

    auto window = MemoryRegion::alias("window", ram, 0x20000, 0x10000);
    CHECK(window->kind() == MemoryRegion::Kind::alias);
    CHECK(window->alias_target() == ram.get());
    CHECK(window->alias_offset() == 0x20000);
    rig.topo.add_subregion(*rig.root, 0x40000000, window);
    auto view = rig.as.view();
    REQUIRE(view->sections().size() == 2);
    const MemorySection& s = view->sections()[1];
    CHECK(s.gpa == 0x40000000);
    CHECK(s.size == 0x10000);
    CHECK(s.region == ram.get()); // the leaf, not the alias
    CHECK(s.offset_in_region == 0x20000);
    CHECK(s.block == block.get());
    CHECK(s.block_offset == 0x20000);
    CHECK(s.host == block->host() + 0x20000);
    CHECK(s.kind == MemoryRegion::Kind::ram);

    SECTION("two aliases of one block give two sections over the same host range") {
        auto a1 = MemoryRegion::alias("a1", ram, 0x1000, 0x2000);
        auto a2 = MemoryRegion::alias("a2", ram, 0x1000, 0x2000);
        rig.topo.add_subregion(*rig.root, 0x80000000, a1);
        rig.topo.add_subregion(*rig.root, 0x90000000, a2);
        const auto* x = rig.as.view()->find(0x80000000);
        const auto* y = rig.as.view()->find(0x90000000);
        REQUIRE(x != nullptr);
        REQUIRE(y != nullptr);
        CHECK(x != y);
        CHECK(x->host == block->host() + 0x1000);
        CHECK(y->host == x->host);
        CHECK(x->size == 0x2000);
        CHECK(y->size == 0x2000);
        CHECK(x->region == ram.get());
        CHECK(y->region == ram.get());
    }
    SECTION("an alias of an alias adds up the offsets") {
        auto inner = MemoryRegion::alias("inner", window, 0x4000, 0x1000);
        rig.topo.add_subregion(*rig.root, 0x50000000, inner);
        const auto* x = rig.as.view()->find(0x50000000);
        REQUIRE(x != nullptr);
        CHECK(describe(*x) == "ram@0x50000000+0x1000/0x24000");
        CHECK(x->host == block->host() + 0x24000);
    }
    SECTION("an alias of a container shows its subregions") {
        auto box = MemoryRegion::container("box", 0x10000);
        auto rom_block = make_block("rom", 64 * KiB);
        auto rom = MemoryRegion::rom("rom", rom_block, 0, 0x4000);
        rig.topo.add_subregion(*box, 0x8000, rom);
        auto view_of_box = MemoryRegion::alias("view", box, 0x6000, 0x4000);
        rig.topo.add_subregion(*rig.root, 0x60000000, view_of_box);
        const auto* x = rig.as.view()->find(0x60002000);
        REQUIRE(x != nullptr);
        CHECK(describe(*x) == "rom@0x60002000+0x2000/0x0 ro");
        CHECK(rig.as.view()->find(0x60001fff) == nullptr); // the empty part of the box
    }
    SECTION("adjacent aliases of adjacent windows merge into one section") {
        auto lo = MemoryRegion::alias("lo", ram, 0x3000, 0x1000);
        auto hi = MemoryRegion::alias("hi", ram, 0x4000, 0x3000);
        rig.topo.add_subregion(*rig.root, 0x70000000, lo);
        rig.topo.add_subregion(*rig.root, 0x70001000, hi);
        const auto* x = rig.as.view()->find(0x70000000);
        REQUIRE(x != nullptr);
        CHECK(describe(*x) == "ram@0x70000000+0x4000/0x3000");
        CHECK(rig.as.view()->sections().size() == 3);
        // Not contiguous in the region: stays two sections.
        rig.topo.remove_subregion(*rig.root, *hi);
        auto gap = MemoryRegion::alias("gap", ram, 0x5000, 0x1000);
        rig.topo.add_subregion(*rig.root, 0x70001000, gap);
        CHECK(rig.as.view()->sections().size() == 4);
    }
}

TEST_CASE("FlatView: ROM is read-only, MMIO has no host memory, find on edges",
          "[memory][flat_view]") {
    Rig rig;
    NullDevice dev;
    auto rom_block = make_block("rom", 64 * KiB);
    auto ram_block = make_block("ram", 64 * KiB);
    auto rom = MemoryRegion::rom("rom", rom_block, 0, 0x10000);
    auto mmio = MemoryRegion::mmio("uart", 0x1000, dev);
    auto ram = MemoryRegion::ram("ram", ram_block, 0x1000, 0x3000);
    CHECK(rom->kind() == MemoryRegion::Kind::rom);
    CHECK(mmio->kind() == MemoryRegion::Kind::mmio);
    CHECK(mmio->device() == &dev);
    CHECK(mmio->block() == nullptr);

    CHECK(rig.as.view()->find(0) == nullptr); // empty view
    rig.topo.add_subregion(*rig.root, 0x0, rom);
    rig.topo.add_subregion(*rig.root, 0x20000, mmio);
    rig.topo.add_subregion(*rig.root, 0x21000, ram);
    CHECK(describe(rig.as) ==
          Events{"rom@0x0+0x10000/0x0 ro", "uart@0x20000+0x1000/0x0", "ram@0x21000+0x3000/0x0"});

    auto view = rig.as.view();
    const auto& secs = view->sections();
    REQUIRE(secs.size() == 3);
    CHECK(secs[0].readonly);
    CHECK(secs[0].kind == MemoryRegion::Kind::rom);
    CHECK(secs[0].is_ram());
    CHECK(secs[0].host == rom_block->host());
    CHECK(secs[1].kind == MemoryRegion::Kind::mmio);
    CHECK_FALSE(secs[1].is_ram());
    CHECK(secs[1].host == nullptr);
    CHECK(secs[1].block == nullptr);
    CHECK_FALSE(secs[1].readonly);
    CHECK(secs[1].region->device() == &dev);
    CHECK_FALSE(secs[2].readonly);
    CHECK(secs[2].host == ram_block->host() + 0x1000);

    CHECK(view->find(0x0) == &secs[0]);     // first byte
    CHECK(view->find(0xffff) == &secs[0]);  // last byte
    CHECK(view->find(0x10000) == nullptr);  // one past
    CHECK(view->find(0x1ffff) == nullptr);  // gap
    CHECK(view->find(0x20000) == &secs[1]); // first byte of MMIO
    CHECK(view->find(0x20fff) == &secs[1]); // last byte of MMIO
    CHECK(view->find(0x21000) == &secs[2]); // adjacent section
    CHECK(view->find(0x23fff) == &secs[2]);
    CHECK(view->find(0x24000) == nullptr);
    CHECK(view->find(UINT64_MAX) == nullptr);
}

TEST_CASE("MemoryTopology: listeners hear only the minimal changes", "[memory][listener]") {
    Rig rig;
    RecordingListener rec;
    auto block = make_block("ram", 1 * MiB);
    auto a = MemoryRegion::ram("a", block, 0x0, 0x10000);
    auto b = MemoryRegion::ram("b", block, 0x10000, 0x10000);
    auto c = MemoryRegion::ram("c", block, 0x20000, 0x10000);
    rig.topo.add_subregion(*rig.root, 0x0, a);
    rig.topo.add_listener(rig.as, rec);
    rec.take();

    SECTION("adding a region in a gap is one region_add") {
        rig.topo.add_subregion(*rig.root, 0x100000, b);
        CHECK(rec.take() == Events{"begin", "add b@0x100000+0x10000/0x0", "commit"});
        // And the full section was passed along.
        rig.topo.add_subregion(*rig.root, 0x200000, c);
        REQUIRE(rec.added.size() == 1);
        CHECK(rec.added[0].host == block->host() + 0x20000);
        CHECK(rec.added[0].block == block.get());
        rig.topo.remove_subregion(*rig.root, *b);
        CHECK(rec.take() == Events{"begin", "add c@0x200000+0x10000/0x0", "commit", "begin",
                                   "del b@0x100000+0x10000/0x0", "commit"});
    }
    SECTION("deletions come before additions within one update") {
        {
            MemoryTopology::Transaction t(rig.topo);
            rig.topo.remove_subregion(*rig.root, *a);
            rig.topo.add_subregion(*rig.root, 0x0, b);
            rig.topo.add_subregion(*rig.root, 0x30000, c);
            CHECK(rec.events.empty()); // nothing until the transaction ends
        }
        CHECK(rec.take() == Events{"begin", "del a@0x0+0x10000/0x0", "add b@0x0+0x10000/0x0",
                                   "add c@0x30000+0x10000/0x0", "commit"});
    }
    SECTION("a transaction batching three changes gives one begin/commit pair") {
        {
            MemoryTopology::Transaction t(rig.topo);
            rig.topo.add_subregion(*rig.root, 0x100000, b);
            {
                MemoryTopology::Transaction nested(rig.topo);
                rig.topo.add_subregion(*rig.root, 0x200000, c);
            }
            rig.topo.set_enabled(*a, false);
            CHECK(rec.events.empty());
            CHECK(describe(rig.as) == Events{"a@0x0+0x10000/0x0"}); // the old view until the end
        }
        CHECK(rec.take() == Events{"begin", "del a@0x0+0x10000/0x0", "add b@0x100000+0x10000/0x0",
                                   "add c@0x200000+0x10000/0x0", "commit"});
        CHECK(describe(rig.as) == Events{"b@0x100000+0x10000/0x0", "c@0x200000+0x10000/0x0"});
    }
    SECTION("a transaction whose changes cancel out reports no section changes") {
        {
            MemoryTopology::Transaction t(rig.topo);
            rig.topo.add_subregion(*rig.root, 0x100000, b);
            rig.topo.remove_subregion(*rig.root, *b);
        }
        auto events = rec.take();
        for (const auto& e : events)
            CHECK((e == "begin" || e == "commit"));
    }
    SECTION("dirty logging on a mapped region is log_start / log_stop, not del + add") {
        CHECK_FALSE(a->dirty_logging());
        rig.topo.set_dirty_logging(*a, true);
        CHECK(a->dirty_logging());
        CHECK(rec.take() == Events{"begin", "log_start a@0x0+0x10000/0x0 log", "commit"});
        CHECK(describe(rig.as) == Events{"a@0x0+0x10000/0x0 log"});
        rig.topo.set_dirty_logging(*a, true); // already on
        CHECK(rec.take().empty());
        rig.topo.set_dirty_logging(*a, false);
        CHECK(rec.take() == Events{"begin", "log_stop a@0x0+0x10000/0x0", "commit"});
        CHECK(describe(rig.as) == Events{"a@0x0+0x10000/0x0"});
    }
    SECTION("dirty logging on a split region starts on each of its sections") {
        auto mid = MemoryRegion::ram("mid", block, 0x30000, 0x4000);
        rig.topo.add_subregion(*rig.root, 0x4000, mid, 1);
        rec.take();
        rig.topo.set_dirty_logging(*a, true);
        CHECK(rec.take() == Events{"begin", "log_start a@0x0+0x4000/0x0 log",
                                   "log_start a@0x8000+0x8000/0x8000 log", "commit"});
        CHECK(describe(rig.as) == Events{"a@0x0+0x4000/0x0 log", "mid@0x4000+0x4000/0x0",
                                         "a@0x8000+0x8000/0x8000 log"});
        // Uncovering the middle merges the logging pieces back into one section.
        rig.topo.remove_subregion(*rig.root, *mid);
        CHECK(describe(rig.as) == Events{"a@0x0+0x10000/0x0 log"});
    }
    SECTION("a region added with dirty logging on carries the flag in region_add") {
        rig.topo.set_dirty_logging(*b, true); // not mapped: no section changes
        for (const auto& e : rec.take())
            CHECK((e == "begin" || e == "commit"));
        rig.topo.add_subregion(*rig.root, 0x100000, b);
        CHECK(rec.take() == Events{"begin", "add b@0x100000+0x10000/0x0 log", "commit"});
    }
    SECTION("add_listener replays the view; remove_listener deletes all of it") {
        rig.topo.add_subregion(*rig.root, 0x100000, b);
        rec.take();
        RecordingListener late;
        rig.topo.add_listener(rig.as, late);
        CHECK(late.take() ==
              Events{"begin", "add a@0x0+0x10000/0x0", "add b@0x100000+0x10000/0x0", "commit"});
        CHECK(rec.take().empty());

        rig.topo.remove_listener(rig.as, late);
        CHECK(late.take() ==
              Events{"begin", "del a@0x0+0x10000/0x0", "del b@0x100000+0x10000/0x0", "commit"});
        rig.topo.add_subregion(*rig.root, 0x200000, c);
        CHECK(late.take().empty()); // no longer listening
        CHECK(rec.take() == Events{"begin", "add c@0x200000+0x10000/0x0", "commit"});
        rig.topo.remove_listener(rig.as, late); // not registered: nothing happens
        CHECK(late.take().empty());
    }
    SECTION("listeners of another address space hear of no section changes") {
        auto root2 = MemoryRegion::container("root2", 1 * GiB);
        auto& as2 = rig.topo.add_address_space("smm", root2);
        RecordingListener other;
        rig.topo.add_listener(as2, other);
        CHECK(other.take() == Events{"begin", "commit"});
        rig.topo.add_subregion(*rig.root, 0x100000, b);
        for (const auto& e : other.take())
            CHECK((e == "begin" || e == "commit"));
        rig.topo.add_subregion(*root2, 0x0, c);
        CHECK(other.take() == Events{"begin", "add c@0x0+0x10000/0x0", "commit"});
        CHECK(describe(as2) == Events{"c@0x0+0x10000/0x0"});
        CHECK(describe(rig.as) == Events{"a@0x0+0x10000/0x0", "b@0x100000+0x10000/0x0"});
    }
}

TEST_CASE("MemoryTopology: bad requests throw ConfigError and change nothing",
          "[memory][topology_errors]") {
    Rig rig;
    RecordingListener rec;
    NullDevice dev;
    auto block = make_block("ram", 64 * KiB);
    auto ram = MemoryRegion::ram("ram", block, 0, 0x10000);
    auto box = MemoryRegion::container("box", 1 * MiB);
    auto mmio = MemoryRegion::mmio("mmio", 0x1000, dev);
    rig.topo.add_subregion(*rig.root, 0x0, ram);
    rig.topo.add_subregion(*rig.root, 0x100000, box);
    rig.topo.add_subregion(*box, 0x1000, mmio);
    rig.topo.add_listener(rig.as, rec);
    rec.take();
    const Events before{"ram@0x0+0x10000/0x0", "mmio@0x101000+0x1000/0x0"};
    REQUIRE(describe(rig.as) == before);

    SECTION("a region that already has a parent") {
        CHECK_THROWS_AS(rig.topo.add_subregion(*box, 0x8000, ram), ConfigError);
        CHECK_THROWS_AS(rig.topo.add_subregion(*rig.root, 0x800000, ram), ConfigError);
        CHECK(box->subregions().size() == 1);
        CHECK(rig.root->subregions().size() == 2);
        // Still where it was: it can be removed from there and added elsewhere.
        rig.topo.remove_subregion(*rig.root, *ram);
        rig.topo.add_subregion(*box, 0x8000, ram);
        CHECK(describe(rig.as) == Events{"mmio@0x101000+0x1000/0x0", "ram@0x108000+0x10000/0x0"});
        rig.topo.remove_subregion(*box, *ram);
        rig.topo.add_subregion(*rig.root, 0x0, ram);
        rec.take();
    }
    SECTION("adding into a region that is not a container") {
        auto other = MemoryRegion::ram("other", block, 0, 0x1000);
        CHECK_THROWS_AS(rig.topo.add_subregion(*ram, 0x0, other), ConfigError);
        CHECK_THROWS_AS(rig.topo.add_subregion(*mmio, 0x0, other), ConfigError);
        auto al = MemoryRegion::alias("al", box, 0, 0x1000);
        CHECK_THROWS_AS(rig.topo.add_subregion(*al, 0x0, other), ConfigError);
        // `other` was not adopted: it can still go into a real container.
        CHECK_NOTHROW(rig.topo.add_subregion(*box, 0x80000, other));
        rig.topo.remove_subregion(*box, *other);
        rec.take();
    }
    SECTION("no region, or one that would wrap around the address space") {
        CHECK_THROWS_AS(rig.topo.add_subregion(*box, 0x0, nullptr), ConfigError);
        auto other = MemoryRegion::ram("other", block, 0, 0x2000);
        CHECK_THROWS_AS(rig.topo.add_subregion(*box, UINT64_MAX - 0xfff, other), ConfigError);
        CHECK(box->subregions().size() == 1);
    }
    SECTION("cycles: a container into itself or its own descendant") {
        auto top = MemoryRegion::container("top", 1 * MiB);
        auto mid = MemoryRegion::container("mid", 1 * MiB);
        rig.topo.add_subregion(*top, 0x0, mid);
        CHECK_THROWS_AS(rig.topo.add_subregion(*mid, 0x0, top), ConfigError);
        CHECK_THROWS_AS(rig.topo.add_subregion(*top, 0x0, top), ConfigError);
        CHECK(mid->subregions().empty());
        CHECK(top->subregions().size() == 1);
        rec.take();
    }
    SECTION("cycles: an alias whose target contains the alias") {
        auto self = MemoryRegion::alias("self", rig.root, 0x0, 0x20000);
        CHECK_THROWS_AS(rig.topo.add_subregion(*rig.root, 0x10000000, self), ConfigError);
        CHECK_THROWS_AS(rig.topo.add_subregion(*box, 0x10000, self), ConfigError);
        auto of_box = MemoryRegion::alias("of_box", box, 0x0, 0x2000);
        CHECK_THROWS_AS(rig.topo.add_subregion(*box, 0x20000, of_box), ConfigError);
        CHECK(box->subregions().size() == 1);
        // Elsewhere it is fine (an alias of a container next to it).
        CHECK_NOTHROW(rig.topo.add_subregion(*rig.root, 0x200000, of_box));
        CHECK(rig.as.view()->find(0x201000) != nullptr);
        rig.topo.remove_subregion(*rig.root, *of_box);
        rec.take();
    }
    SECTION("a tree deeper than the renderer allows is refused as a whole") {
        std::vector<std::shared_ptr<MemoryRegion>> chain;
        for (int i = 0; i < 70; ++i)
            chain.push_back(MemoryRegion::container(fmt::format("c{}", i), 1 * MiB));
        for (std::size_t i = 1; i < chain.size(); ++i)
            rig.topo.add_subregion(*chain[i - 1], 0x0, chain[i]);
        rig.topo.add_subregion(*chain.back(), 0x0, MemoryRegion::ram("deep", block, 0, 0x1000));
        rec.take();
        CHECK_THROWS_AS(rig.topo.add_subregion(*rig.root, 0x1000000, chain.front()), ConfigError);
        CHECK(rig.root->subregions().size() == 2);
        // The rollback re-renders: listeners may hear an empty begin/commit.
        for (const auto& e : rec.take())
            CHECK((e == "begin" || e == "commit"));
    }
    SECTION("size 0") {
        CHECK_THROWS_AS(MemoryRegion::container("c", 0), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::ram("r", block, 0, 0), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::rom("r", block, 0, 0), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::mmio("m", 0, dev), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::alias("a", ram, 0, 0), ConfigError);
    }
    SECTION("a RAM window outside its block") {
        CHECK_THROWS_AS(MemoryRegion::ram("r", block, 0x8000, 0x10000), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::ram("r", block, 0x10000, 0x1000), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::ram("r", block, 0, 0x11000), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::ram("r", block, UINT64_MAX - 0xfff, 0x2000), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::rom("r", block, 0xf000, 0x2000), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::ram("r", nullptr, 0, 0x1000), ConfigError);
        // The whole block is fine.
        CHECK_NOTHROW(MemoryRegion::ram("r", block, 0, 0x10000));
        CHECK_NOTHROW(MemoryRegion::ram("r", block, 0xf000, 0x1000));
    }
    SECTION("an alias window outside its target") {
        CHECK_THROWS_AS(MemoryRegion::alias("a", ram, 0x8000, 0x10000), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::alias("a", ram, 0x10000, 0x1), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::alias("a", ram, UINT64_MAX, 0x2), ConfigError);
        CHECK_THROWS_AS(MemoryRegion::alias("a", nullptr, 0, 0x1000), ConfigError);
        CHECK_NOTHROW(MemoryRegion::alias("a", ram, 0x8000, 0x8000));
    }
    SECTION("removing a region that is not a child") {
        auto stranger = MemoryRegion::ram("stranger", block, 0, 0x1000);
        CHECK_THROWS_AS(rig.topo.remove_subregion(*rig.root, *stranger), ConfigError);
        CHECK_THROWS_AS(rig.topo.remove_subregion(*rig.root, *mmio), ConfigError); // a grandchild
        CHECK_THROWS_AS(rig.topo.remove_subregion(*box, *ram), ConfigError);
        CHECK(rig.root->subregions().size() == 2);
        CHECK(box->subregions().size() == 1);
    }
    SECTION("dirty logging on a region that is not RAM") {
        CHECK_THROWS_AS(rig.topo.set_dirty_logging(*mmio, true), ConfigError);
        CHECK_THROWS_AS(rig.topo.set_dirty_logging(*box, true), ConfigError);
        auto al = MemoryRegion::alias("al", ram, 0, 0x1000);
        CHECK_THROWS_AS(rig.topo.set_dirty_logging(*al, true), ConfigError);
        CHECK_FALSE(mmio->dirty_logging());
        CHECK_FALSE(box->dirty_logging());
    }
    SECTION("an address space whose root is not a container") {
        CHECK_THROWS_AS(rig.topo.add_address_space("bad", ram), ConfigError);
        CHECK_THROWS_AS(rig.topo.add_address_space("bad", nullptr), ConfigError);
    }

    CHECK(describe(rig.as) == before);
    CHECK(rec.take().empty());
}
