// Dirty logging on real KVM, both modes: a guest writes a known set of pages
// once logging is on; the VMM writes one page itself (the go flag). The
// reported set must be exactly those pages.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "kvm_support.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/console.hpp"
#include "minivmm/vm.hpp"

namespace minivmm::test {
namespace {

struct ReadyLine {
    std::uint64_t flag = 0;
    std::vector<std::uint64_t> pages;
};

std::optional<ReadyLine> parse_ready(const std::string& text) {
    auto at = text.find("dirty: ready");
    if (at == std::string::npos || text.find('\n', at) == std::string::npos) return std::nullopt;
    ReadyLine r;
    std::uint64_t p[6];
    if (std::sscanf(text.c_str() + at,
                    "dirty: ready flag=0x%" SCNx64 " pages=0x%" SCNx64 ",0x%" SCNx64 ",0x%" SCNx64
                    ",0x%" SCNx64 ",0x%" SCNx64 ",0x%" SCNx64,
                    &r.flag, &p[0], &p[1], &p[2], &p[3], &p[4], &p[5]) != 7)
        return std::nullopt;
    r.pages.assign(p, p + 6);
    return r;
}

// A 64 MiB VM config that cannot hang a test, with its console captured.
VmConfig test_config(LockPolicy policy, std::string cmdline,
                     const std::shared_ptr<StringConsole>& console) {
    VmConfig config;
    config.mem_size = 64ull << 20;
    config.handle_signals = false;
    config.timeout = 20s;
    config.lock_policy = policy;
    config.cmdline = std::move(cmdline);
    config.console = console;
    return config;
}

void run_dirty_guest(std::uint32_t ring_entries, LockPolicy policy) {
    Watchdog watchdog(60s, "dirty logging test");
    auto console = std::make_shared<StringConsole>();
    VmConfig config = test_config(policy, "", console);
    config.dirty_ring_entries = ring_entries;
    Vm vm(kvm(), config, load_image_for(guest_path("dirty.bin"), config));

    VmExit exit;
    std::thread runner([&] { exit = vm.run(); });
    std::optional<ReadyLine> ready;
    for (int i = 0; i < 2000 && !ready; ++i) {
        std::this_thread::sleep_for(5ms);
        ready = parse_ready(console->text());
    }
    if (!ready) {
        vm.request_stop({VmExit::Kind::vmm_error, 0, -1, "test gave up"});
        runner.join();
        FAIL("the dirty guest never got ready; console: " << console->text());
    }

    vm.dirty_log_start();
    // The VMM's own write: the guest waits for it before writing its pages.
    auto flag = vm.boot_ram().writable_range(ready->flag, 8);
    REQUIRE(flag);
    std::uint64_t one = 1;
    __atomic_store(reinterpret_cast<std::uint64_t*>(flag->data()), &one, __ATOMIC_RELEASE);
    vm.boot_ram().mark_written(ready->flag, 8);
    runner.join();
    INFO(describe(exit) << "; console: " << console->text());
    REQUIRE(exit.kind == VmExit::Kind::guest_exit);
    REQUIRE(exit.code == 0);

    auto dirty = vm.dirty_log_sync();
    std::set<std::uint64_t> expected;
    for (auto p : ready->pages)
        expected.insert(p & ~0xfffull);
    expected.insert(ready->flag & ~0xfffull);
    // The rule on every kind of KVM: the guest's RAM (from 1 MiB up) is
    // reported exactly. Below it only page-table pages may appear: with
    // nested paging the CPU's walks of the guest's page tables count as
    // writes at the nested level even when every accessed and dirty bit is
    // preset (Intel SDM vol. 3C 28.2.4 for EPT with A/D flags; measured on
    // AMD SVM), so KVM logs the tables it walked; shadow paging (PVM) logs
    // none. Reporting more is safe for migration, reporting less is not.
    std::set<std::uint64_t> got, vmm_area;
    for (auto page : dirty)
        (page >= layout::kReservedEnd ? got : vmm_area).insert(page);
    CAPTURE(dirty.size());
    CHECK(got == expected);
    for (auto page : vmm_area) {
        INFO("reported page " << std::hex << page << " in the VMM's first MiB");
        CHECK((page >= layout::kPageTables && page < layout::kPageTablesEnd));
    }
    CHECK(dirty.size() == got.size() + vmm_area.size()); // each page once

    // Nothing new since: a second sync reports nothing.
    CHECK(vm.dirty_log_sync().empty());
    // A VMM write after the sync is reported by the next one.
    REQUIRE(vm.boot_ram().writable_range(ready->pages[2], 1));
    vm.boot_ram().mark_written(ready->pages[2], 1);
    CHECK(vm.dirty_log_sync() == std::vector<std::uint64_t>{ready->pages[2] & ~0xfffull});
    vm.dirty_log_stop();
}

} // namespace

TEST_CASE("bitmap dirty logging reports exactly the pages written", "[kvm][dirty]") {
    auto policy = GENERATE(LockPolicy::per_listener, LockPolicy::global, LockPolicy::rcu);
    INFO("lock policy " << to_string(policy));
    run_dirty_guest(0, policy);
}

TEST_CASE("dirty ring logging reports exactly the pages written", "[kvm][dirty]") {
    auto policy = GENERATE(LockPolicy::per_listener, LockPolicy::global, LockPolicy::rcu);
    INFO("lock policy " << to_string(policy));
    run_dirty_guest(4096, policy);
}

TEST_CASE("guest RAM is a region with KVM slots under every lock policy", "[kvm][slots]") {
    auto policy = GENERATE(LockPolicy::per_listener, LockPolicy::global, LockPolicy::rcu);
    VmConfig config = test_config(policy, "", std::make_shared<StringConsole>());
    Vm vm(kvm(), config, load_image_for(guest_path("hello.bin"), config));
    auto slots = vm.kvm_slots().slots(0);
    REQUIRE(slots.size() == 1);
    CHECK(slots[0].start_addr == 0);
    CHECK(slots[0].memory_size == config.mem_size);
    CHECK(slots[0].ram == vm.boot_ram().host_base());
    CHECK(vm.kvm_slots().gpa_of_host(0, vm.boot_ram().host_base() + 0x5000) == 0x5000u);
    CHECK(vm.kvm_slots().is_guest_ram(vm.boot_ram().host_base()));
    CHECK_FALSE(vm.kvm_slots().is_guest_ram(&config));
    auto exit = vm.run();
    CHECK(exit.kind == VmExit::Kind::guest_exit);
}

} // namespace minivmm::test

namespace minivmm::test {

TEST_CASE("a ROM region is readable and ignores guest writes", "[kvm][rom]") {
    auto policy = GENERATE(LockPolicy::per_listener, LockPolicy::global, LockPolicy::rcu);
    Watchdog watchdog(60s, "ROM test");
    auto console = std::make_shared<StringConsole>();
    VmConfig config = test_config(policy, "0x800000", console);
    Vm vm(kvm(), config, load_image_for(guest_path("rom.bin"), config));
    auto block = std::make_shared<RamBlock>("rom", 64 << 10);
    const char text[] = "minivmm rom text";
    std::memcpy(block->host(), text, sizeof text);
    vm.topology().add_subregion(vm.root_region(), 0x800000,
                                MemoryRegion::rom("rom", block, 0, 64 << 10), 1);

    // RAM split around the ROM: three slots, the middle one read-only.
    auto slots = vm.kvm_slots().slots(0);
    REQUIRE(slots.size() == 3);
    CHECK(slots[1].start_addr == 0x800000);
    CHECK((slots[1].flags & kSlotReadonly) != 0);
    CHECK((slots[0].flags & kSlotReadonly) == 0);
    // The VMM no longer takes the hidden RAM under the ROM for guest RAM.
    CHECK_FALSE(vm.boot_ram().range(0x800000, 1));
    CHECK(vm.boot_ram().range(0x7ff000, 0x1000));
    CHECK_FALSE(vm.boot_ram().range(0x7ff000, 0x1001));

    auto exit = vm.run();
    INFO(describe(exit) << "; console: " << console->text());
    CHECK(exit.kind == VmExit::Kind::guest_exit);
    CHECK(exit.code == 0);
    CHECK_THAT(console->text(), Catch::Contains("reads \"minivmm rom text\""));
    CHECK_THAT(console->text(), Catch::Contains("write ignored, ROM unchanged"));
    CHECK(std::memcmp(block->host(), text, sizeof text) == 0);
}

} // namespace minivmm::test

namespace minivmm::test {

namespace {
// An MMIO device that shows a fixed text and counts the guest's writes.
struct TextDevice final : IoDevice {
    std::string text = "text from an MMIO device";
    std::atomic<unsigned> reads{0}, writes{0};
    ExitAction access(const IoAccess& a) override {
        if (a.is_write) {
            ++writes;
            return ExitAction::resume;
        }
        ++reads;
        for (std::size_t i = 0; i < a.data.size(); ++i) {
            std::uint64_t at = a.offset + i;
            a.data[i] = at < text.size() ? std::byte(text[at]) : std::byte{0};
        }
        return ExitAction::resume;
    }
};
} // namespace

TEST_CASE("guest accesses to an MMIO region reach its device", "[kvm][mmio]") {
    Watchdog watchdog(60s, "MMIO test");
    auto console = std::make_shared<StringConsole>();
    VmConfig config = test_config(LockPolicy::global, "0x800000", console);
    TextDevice device;
    Vm vm(kvm(), config, load_image_for(guest_path("rom.bin"), config));
    vm.topology().add_subregion(vm.root_region(), 0x800000,
                                MemoryRegion::mmio("text", 0x1000, device), 1);
    // MMIO has no KVM slot: RAM is split around it.
    CHECK(vm.kvm_slots().slots(0).size() == 2);
    CHECK_FALSE(vm.kvm_slots().find_slot(0, 0x800000));

    auto exit = vm.run();
    INFO(describe(exit) << "; console: " << console->text());
    CHECK(exit.kind == VmExit::Kind::guest_exit);
    CHECK_THAT(console->text(), Catch::Contains("reads \"text from an MMIO device\""));
    CHECK(device.writes == 1u);
    CHECK(device.reads >= device.text.size()); // at least one exit per byte read
}

} // namespace minivmm::test

namespace minivmm::test {

TEST_CASE("a full dirty ring exits, is harvested, and loses no page", "[kvm][dirty]") {
    auto policy = GENERATE(LockPolicy::per_listener, LockPolicy::global, LockPolicy::rcu);
    INFO("lock policy " << to_string(policy));
    Watchdog watchdog(60s, "dirty ring full test");
    auto console = std::make_shared<StringConsole>();
    VmConfig config = test_config(policy, "3000", console);
    config.dirty_ring_entries = 256; // the smallest ring (4 KiB): fills many times over
    Vm vm(kvm(), config, load_image_for(guest_path("touch.bin"), config));
    vm.dirty_log_start(); // before the guest runs: it dirties 3000 heap pages and more
    auto exit = vm.run();
    INFO(describe(exit) << "; console: " << console->text());
    REQUIRE(exit.kind == VmExit::Kind::guest_exit);
    REQUIRE(exit.code == 0);
    CHECK(vm.exit_counts().by_reason[KVM_EXIT_DIRTY_RING_FULL] > 0);

    auto dirty = vm.dirty_log_sync();
    std::set<std::uint64_t> got(dirty.begin(), dirty.end());
    const std::uint64_t heap = vm.plan().heap_start();
    std::uint64_t missing = 0;
    for (std::uint64_t i = 0; i < 3000; ++i)
        missing += got.count(heap + i * 4096) == 0;
    CHECK(missing == 0);
    CHECK(got.size() >= 3000);
}

} // namespace minivmm::test
