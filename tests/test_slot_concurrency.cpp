// The KVM slot tables under concurrent readers, a topology writer and a
// dirty-log syncer, for every lock policy. Meant to run clean under TSan
// (build-tsan, MINIVMM_SANITIZE=thread); bounded by iteration counts.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "minivmm/address_space.hpp"
#include "minivmm/kvm_slots.hpp"
#include "minivmm/memory_region.hpp"
#include "minivmm/ram_block.hpp"
#include "testing/recording_slot_backend.hpp"

using minivmm::AddressSpace;
using minivmm::KvmSlots;
using minivmm::LockPolicy;
using minivmm::MemoryRegion;
using minivmm::MemoryTopology;
using minivmm::RamBlock;
using minivmm::RecordingSlotBackend;

namespace {

constexpr std::uint64_t KiB = 1024;
constexpr std::uint64_t MiB = 1024 * KiB;
constexpr std::uint64_t GiB = 1024 * MiB;
constexpr std::uint64_t kPage = 4096;

constexpr std::uint64_t kBaseGpa = 0x100000; // base RAM: [1 MiB, 3 MiB)
constexpr std::uint64_t kBaseSize = 2 * MiB;
constexpr std::uint64_t kExtraGpa = 0x40000000; // extra regions come and go up here
constexpr int kExtras = 4;
constexpr int kWriterIterations = 400;
constexpr int kReaderMinIterations = 5000;
constexpr int kReaderMaxIterations = 200000;
constexpr int kSyncerMinIterations = 200;
constexpr int kSyncerMaxIterations = 100000;

// The first error any thread hit, for the main thread to report.
class Failures {
  public:
    void add(const std::string& what) {
        std::lock_guard lock(mutex_);
        if (first_.empty()) first_ = what;
        count_.fetch_add(1, std::memory_order_relaxed);
    }
    int count() const { return count_.load(); }
    std::string first() const {
        std::lock_guard lock(mutex_);
        return first_;
    }
    // Runs `body`, turning an exception into a failure.
    void guard(const char* who, const std::function<void()>& body) {
        try {
            body();
        } catch (const std::exception& e) {
            add(fmt::format("{}: exception: {}", who, e.what()));
        } catch (...) {
            add(fmt::format("{}: unknown exception", who));
        }
    }

  private:
    mutable std::mutex mutex_;
    std::string first_;
    std::atomic<int> count_{0};
};

} // namespace

TEST_CASE("KvmMemory: readers, a writer and a syncer at once", "[memory][concurrency]") {
    const LockPolicy policy =
        GENERATE(LockPolicy::per_listener, LockPolicy::global, LockPolicy::rcu);
    CAPTURE(minivmm::to_string(policy));

    RecordingSlotBackend backend(2, 32764, true, /*record=*/false);
    KvmSlots::Options options;
    options.policy = policy;
    KvmSlots kvm(backend, options);
    MemoryTopology topo;

    struct Space {
        std::shared_ptr<MemoryRegion> root;
        AddressSpace* as = nullptr;
        std::shared_ptr<RamBlock> base_block;
        std::shared_ptr<MemoryRegion> base;
        std::shared_ptr<RamBlock> extra_block;
        std::vector<std::shared_ptr<MemoryRegion>> extras;
    };
    Space spaces[2];
    for (unsigned i = 0; i < 2; ++i) {
        auto& s = spaces[i];
        s.root = MemoryRegion::container(fmt::format("root{}", i), 4 * GiB);
        s.as = &topo.add_address_space(fmt::format("as{}", i), s.root);
        s.base_block = std::make_shared<RamBlock>(fmt::format("base{}", i), kBaseSize);
        s.base = MemoryRegion::ram(fmt::format("base{}", i), s.base_block, 0, kBaseSize);
        topo.add_subregion(*s.root, kBaseGpa, s.base);
        topo.set_dirty_logging(*s.base, true);
        s.extra_block = std::make_shared<RamBlock>(fmt::format("extra{}", i), 1 * MiB);
        for (int k = 0; k < kExtras; ++k)
            s.extras.push_back(MemoryRegion::ram(fmt::format("extra{}.{}", i, k), s.extra_block,
                                                 static_cast<std::uint64_t>(k) * 0x40000, 0x40000));
        topo.add_listener(*s.as, kvm.listener(i));
    }
    REQUIRE(kvm.slots(0).size() == 1);
    REQUIRE(kvm.slots(1).size() == 1);

    Failures failures;
    std::atomic<bool> writer_done{false};
    std::atomic<std::uint64_t> reads{0}, syncs{0};

    auto reader = [&](unsigned seed) {
        failures.guard("reader", [&] {
            std::uint64_t x = seed * 2654435761u + 1;
            for (int i = 0; i < kReaderMaxIterations; ++i) {
                if (i >= kReaderMinIterations && writer_done.load()) break;
                if (failures.count() > 0) break;
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                const std::uint64_t off = (x >> 20) % kBaseSize;
                const unsigned as_id = static_cast<unsigned>(x >> 63);
                const auto& s = spaces[as_id];

                auto slot = kvm.find_slot(as_id, kBaseGpa + off);
                if (!slot) {
                    failures.add(fmt::format("as{}: no slot at {:#x}", as_id, kBaseGpa + off));
                    return;
                }
                if (kBaseGpa + off < slot->start_addr ||
                    kBaseGpa + off >= slot->start_addr + slot->memory_size ||
                    slot->ram != s.base_block->host() + (slot->start_addr - kBaseGpa)) {
                    failures.add(fmt::format("as{}: wrong slot [{:#x}, +{:#x}) for {:#x}", as_id,
                                             slot->start_addr, slot->memory_size, kBaseGpa + off));
                    return;
                }
                auto gpa = kvm.gpa_of_host(as_id, s.base_block->host() + off);
                if (gpa != kBaseGpa + off) {
                    failures.add(fmt::format("as{}: gpa_of_host(base + {:#x}) = {}", as_id, off,
                                             gpa ? fmt::format("{:#x}", *gpa) : "none"));
                    return;
                }
                if (!kvm.is_guest_ram(s.base_block->host() + off)) {
                    failures.add(fmt::format("as{}: base + {:#x} is not guest RAM", as_id, off));
                    return;
                }
                // (AddressSpace::view() is not read here: GCC 12's
                // std::atomic<std::shared_ptr> unlocks a load with a relaxed
                // RMW, which TSan reports as a race with the next store;
                // google/sanitizers#1558.)
                reads.fetch_add(1, std::memory_order_relaxed);
            }
        });
    };

    auto writer = [&] {
        failures.guard("writer", [&] {
            for (int i = 0; i < kWriterIterations && failures.count() == 0; ++i) {
                const auto k = static_cast<std::size_t>(i % kExtras);
                const std::uint64_t gpa = kExtraGpa + k * 0x1000000;
                if (i % 3 == 0) {
                    // Both address spaces in one transaction, logging from the start.
                    for (auto& s : spaces)
                        topo.set_dirty_logging(*s.extras[k], true);
                    MemoryTopology::Transaction t(topo);
                    for (auto& s : spaces)
                        topo.add_subregion(*s.root, gpa, s.extras[k]);
                } else {
                    // One at a time, logging switched on once mapped.
                    for (auto& s : spaces) {
                        topo.set_dirty_logging(*s.extras[k], false);
                        topo.add_subregion(*s.root, gpa, s.extras[k], i % 2);
                        topo.set_dirty_logging(*s.extras[k], true);
                    }
                }
                // Some writes to the extra region, pulled in before it goes.
                for (unsigned as_id = 0; as_id < 2; ++as_id)
                    if (!backend.guest_write(as_id,
                                             gpa + (static_cast<std::uint64_t>(i) % 64) * kPage))
                        failures.add(fmt::format("writer: extra region {} not logging", k));
                for (unsigned as_id = 0; as_id < 2; ++as_id) {
                    auto slot = kvm.find_slot(as_id, gpa);
                    if (!slot || slot->start_addr != gpa ||
                        (slot->flags & minivmm::kSlotLogDirty) == 0)
                        failures.add(
                            fmt::format("writer: as{}: bad slot for extra region {}", as_id, k));
                }
                if (i % 5 == 0) topo.set_dirty_logging(*spaces[0].extras[k], false);
                for (auto& s : spaces)
                    topo.remove_subregion(*s.root, *s.extras[k]);
                for (unsigned as_id = 0; as_id < 2; ++as_id)
                    if (kvm.find_slot(as_id, gpa))
                        failures.add(fmt::format("writer: as{}: slot left at {:#x}", as_id, gpa));
            }
        });
        writer_done.store(true);
    };

    auto syncer = [&] {
        failures.guard("syncer", [&] {
            for (int i = 0; i < kSyncerMaxIterations; ++i) {
                if (i >= kSyncerMinIterations && writer_done.load()) break;
                if (failures.count() > 0) break;
                for (unsigned as_id = 0; as_id < 2; ++as_id) {
                    const std::uint64_t page =
                        static_cast<std::uint64_t>(i * 7 + as_id) % (kBaseSize / kPage);
                    if (!backend.guest_write(as_id, kBaseGpa + page * kPage)) {
                        failures.add(fmt::format("syncer: base of as{} not logging", as_id));
                        return;
                    }
                }
                if (i % 2 == 0)
                    kvm.sync_dirty_all();
                else
                    topo.log_sync();
                if (i % 8 == 0)
                    for (auto& s : spaces)
                        topo.log_clear(*s.as, kBaseGpa, kBaseSize);
                for (auto& s : spaces)
                    (void)s.base_block->dirty().take();
                syncs.fetch_add(1, std::memory_order_relaxed);
            }
        });
    };

    std::vector<std::thread> threads;
    threads.emplace_back(reader, 1u);
    threads.emplace_back(reader, 2u);
    threads.emplace_back(writer);
    threads.emplace_back(syncer);
    for (auto& t : threads)
        t.join();

    INFO("first failure: " << failures.first());
    CHECK(failures.count() == 0);
    CHECK(reads.load() >= 2 * kReaderMinIterations);
    CHECK(syncs.load() >= kSyncerMinIterations);

    // Only the base regions are left, in both the tables and the fake KVM.
    for (unsigned as_id = 0; as_id < 2; ++as_id) {
        INFO("address space " << as_id);
        auto slots = kvm.slots(as_id);
        REQUIRE(slots.size() == 1);
        CHECK(slots[0].start_addr == kBaseGpa);
        CHECK(slots[0].memory_size == kBaseSize);
        CHECK(slots[0].ram == spaces[as_id].base_block->host());
        CHECK(slots[0].flags == minivmm::kSlotLogDirty);
        CHECK(kvm.free_slots(as_id) == 32764 - 1);
        auto fake = backend.slots(as_id);
        REQUIRE(fake.size() == 1);
        CHECK(fake.begin()->first == slots[0].slot);
        CHECK(fake.begin()->second.gpa == kBaseGpa);
        CHECK(spaces[as_id].as->view()->sections().size() == 1);
        CHECK(spaces[as_id].root->subregions().size() == 1);
    }
    // Every iteration of the writer made and deleted at least one slot per
    // address space; the base slots and their log flags came first.
    CHECK(backend.set_calls() >= 2 + 2 + 4ull * kWriterIterations);
    const auto stats = kvm.lock_stats();
    if (stats.contended == 0) CHECK(stats.wait_ns == 0);
    CHECK(stats.wait_ns < 60'000'000'000ull); // far less than the whole run
}
