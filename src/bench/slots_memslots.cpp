// Part 1 of minivmm-bench slots: the shapes of the kernel's
// tools/testing/selftests/kvm/memslot_perf_test.c (map, unmap, move, and
// guest-address lookups over many small slots), driven through
// MemoryTopology and KvmSlots, against the real KVM and against the
// recording fake (which tells our cost apart from the kernel's).
#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>

#include <fmt/format.h>

#include "bench/emulated.hpp"
#include "bench/slots_bench.hpp"
#include "bench/stats.hpp"
#include "memory/slot_table.hpp"
#include "minivmm/address_space.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/ram_block.hpp"
#include "minivmm/slot_backend.hpp"
#include "testing/recording_slot_backend.hpp"

namespace minivmm::bench {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr std::uint64_t kRegionSize = 4096;
// A page of gap after every region, so that the flat view never merges two.
constexpr std::uint64_t kStride = 8192;
// Where `move` puts region i: past the highest map address (32764 * 8 KiB).
constexpr std::uint64_t kMoveBase = 1ull << 30;
constexpr std::uint64_t kRootSize = 1ull << 36;
constexpr std::size_t kLookupBatch = 1000;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Forwards to a real backend and adds up the time spent in it, so that one
// run splits the cost into the kernel's (or the fake's) and ours.
class TimedBackend final : public SlotBackend {
  public:
    explicit TimedBackend(std::unique_ptr<SlotBackend> inner) : inner_(std::move(inner)) {}
    std::uint32_t max_slots() const override { return inner_->max_slots(); }
    unsigned address_spaces() const override { return inner_->address_spaces(); }
    void set_slot(unsigned as_id, std::uint32_t slot, std::uint32_t flags, std::uint64_t gpa,
                  std::uint64_t size, std::uint64_t hva) override {
        auto t0 = Clock::now();
        inner_->set_slot(as_id, slot, flags, gpa, size, hva);
        spent_ += Clock::now() - t0;
    }
    void get_dirty_log(unsigned as_id, std::uint32_t slot,
                       std::span<std::uint64_t> bitmap) override {
        inner_->get_dirty_log(as_id, slot, bitmap);
    }
    bool manual_protect() const override { return inner_->manual_protect(); }
    void clear_dirty_log(unsigned as_id, std::uint32_t slot, std::uint64_t first_page,
                         std::uint32_t num_pages, std::span<const std::uint64_t> bitmap) override {
        inner_->clear_dirty_log(as_id, slot, first_page, num_pages, bitmap);
    }
    std::uint64_t reset_dirty_rings() override { return inner_->reset_dirty_rings(); }

    // Seconds spent in set_slot since the last call.
    double take_seconds() {
        double s = std::chrono::duration<double>(spent_).count();
        spent_ = {};
        return s;
    }

  private:
    std::unique_ptr<SlotBackend> inner_;
    Clock::duration spent_{};
};

enum class Backend { kvm, fake };
const char* backend_name(Backend b) {
    return b == Backend::kvm ? "kvm" : "fake";
}

// Runs fn(i) for every i in [begin, end), `batch` of them per transaction,
// and returns the seconds taken.
template <typename Fn>
double batched(MemoryTopology& topology, std::size_t begin, std::size_t end, std::size_t batch,
               Fn&& fn) {
    auto t0 = Clock::now();
    for (std::size_t i = begin; i < end; i += batch) {
        MemoryTopology::Transaction tx(topology);
        for (std::size_t j = i; j < std::min(end, i + batch); ++j)
            fn(j);
    }
    return seconds_since(t0);
}

// A VM without vCPUs (or the fake) whose one address space maps up to N
// one-page windows of one RAM block.
class Fixture {
  public:
    Fixture(Backend kind, const KvmSystem* kvm, LockPolicy policy, std::uint32_t n) : n_(n) {
        if (kind == Backend::kvm) {
            vm_ = std::make_unique<KvmVm>(kvm->create_vm());
            backend_ = std::make_unique<TimedBackend>(std::make_unique<KvmSlotBackend>(*vm_));
        } else {
            // record=false: a benchmark must not grow a call log.
            backend_ = std::make_unique<TimedBackend>(std::make_unique<RecordingSlotBackend>(
                1, std::max<std::uint32_t>(n, 32764), true, false));
        }
        if (n > backend_->max_slots())
            throw std::runtime_error(
                fmt::format("{} slots asked for; this KVM has {}", n, backend_->max_slots()));
        memory_ = std::make_unique<KvmSlots>(*backend_, KvmSlots::Options{.policy = policy});
        root_ = MemoryRegion::container("root", kRootSize);
        as_ = &topology_.add_address_space("memory", root_);
        topology_.add_listener(*as_, memory_->listener(0));
        block_ = std::make_shared<RamBlock>("slots", std::uint64_t{n} * kRegionSize);
        regions_.reserve(n);
        for (std::uint32_t i = 0; i < n; ++i)
            regions_.push_back(MemoryRegion::ram(fmt::format("slot{}", i), block_,
                                                 std::uint64_t{i} * kRegionSize, kRegionSize));
    }

    double map(std::size_t batch, std::size_t begin = 0, std::size_t end = SIZE_MAX) {
        return batched(topology_, begin, std::min<std::size_t>(end, n_), batch, [&](std::size_t i) {
            topology_.add_subregion(*root_, i * kStride, regions_[i]);
        });
    }
    double move(std::size_t batch) {
        return batched(topology_, 0, n_, batch, [&](std::size_t i) {
            topology_.remove_subregion(*root_, *regions_[i]);
            topology_.add_subregion(*root_, kMoveBase + i * kStride, regions_[i]);
        });
    }
    double unmap(std::size_t batch, std::size_t begin = 0, std::size_t end = SIZE_MAX) {
        return batched(topology_, begin, std::min<std::size_t>(end, n_), batch,
                       [&](std::size_t i) { topology_.remove_subregion(*root_, *regions_[i]); });
    }
    // One region added in a transaction of its own; returns the seconds.
    double map_one(std::size_t i) {
        auto t0 = Clock::now();
        topology_.add_subregion(*root_, i * kStride, regions_[i]);
        return seconds_since(t0);
    }

    // A Transaction swallows a listener's failure (its destructor must not
    // throw), so every step is checked against the slot table afterwards.
    void expect(std::size_t count, std::uint64_t base, const char* step) const {
        auto slots = memory_->slots(0);
        bool ok = slots.size() == count;
        if (ok && count > 0)
            ok = slots.front().start_addr == base &&
                 slots.back().start_addr == base + (count - 1) * kStride &&
                 slots.back().memory_size == kRegionSize;
        if (ok && count == 0) ok = memory_->free_slots(0) == backend_->max_slots();
        if (!ok)
            throw std::runtime_error(fmt::format("after {}: {} slots in the table, expected {} "
                                                 "from {:#x}",
                                                 step, slots.size(), count, base));
    }

    const KvmSlots& memory() const { return *memory_; }
    double take_backend_seconds() { return backend_->take_seconds(); }
    std::uint32_t size() const { return n_; }

  private:
    std::uint32_t n_;
    std::unique_ptr<KvmVm> vm_; // before the backend, which refers to it
    std::unique_ptr<TimedBackend> backend_;
    std::unique_ptr<KvmSlots> memory_;
    MemoryTopology topology_; // destroyed before the listener it calls
    std::shared_ptr<MemoryRegion> root_;
    AddressSpace* as_ = nullptr;
    std::shared_ptr<RamBlock> block_;
    std::vector<std::shared_ptr<MemoryRegion>> regions_;
};

struct LookupResult {
    double median_ns = 0, p99_ns = 0, min_ns = 0;
    std::size_t batches = 0;
    double table_ns = 0; // SlotTable::find alone (median): no lock, no copy
};

// Times `one(gpa)` over batches of kLookupBatch random addresses inside the
// slots (a clock read per lookup would cost as much as the lookup); returns
// ns per lookup, one value per batch.
template <typename Lookup>
std::vector<double> time_lookups(const std::vector<std::uint64_t>& gpas, double budget_s,
                                 Lookup&& one) {
    std::size_t next = 0;
    const std::size_t mask = gpas.size() - 1; // a power of two: no division in the loop
    auto batch = [&] {
        for (std::size_t k = 0; k < kLookupBatch; ++k)
            one(gpas[next++ & mask]);
    };
    for (int i = 0; i < 20; ++i)
        batch(); // warm the caches and the branch predictors
    std::vector<double> ns;
    auto start = Clock::now();
    while (ns.size() < 100 || (ns.size() < 5000 && seconds_since(start) < budget_s)) {
        auto t0 = Clock::now();
        batch();
        ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() /
                     kLookupBatch);
    }
    return ns;
}

LookupResult measure_lookups(const Fixture& f, std::mt19937_64& rng) {
    std::vector<std::uint64_t> gpas(1 << 16); // drawn up front: no RNG in the timed loop
    for (auto& g : gpas)
        g = (rng() % f.size()) * kStride + rng() % kRegionSize;
    const KvmSlots& m = f.memory();
    std::uint64_t sink = 0, misses = 0;
    auto check = [&](std::uint64_t gpa, const KvmSlot* s) {
        if (s && gpa - s->start_addr < s->memory_size)
            sink += s->slot;
        else
            ++misses;
    };
    auto ns = time_lookups(gpas, 0.25, [&](std::uint64_t gpa) {
        auto slot = m.find_slot(0, gpa);
        check(gpa, slot ? &*slot : nullptr);
    });
    // The same search on a private copy of the table: what the policy's
    // locking (or RCU read section) and the result copy add on top.
    SlotTable table;
    for (const auto& s : m.slots(0))
        table.insert(s);
    auto bare = time_lookups(gpas, 0.05, [&](std::uint64_t gpa) { check(gpa, table.find(gpa)); });
    if (misses != 0)
        throw std::runtime_error(fmt::format("{} of the lookups found no slot", misses));
    asm volatile("" : : "r"(sink)); // keep the lookups
    auto s = summarize(ns);
    return {s.median, percentile(ns, 99), s.min, ns.size(), summarize(bare).median};
}

struct Op {
    std::vector<double> total_s, backend_s; // per repetition
};

struct Cell {
    Backend backend;
    std::uint32_t slots;
    LockPolicy policy;
    std::uint32_t batch;
    Op map, move, unmap;
    std::optional<LookupResult> lookup;
    std::vector<double> tail_s; // single-region transactions at the end of a map
};

// Repetitions per cell: small tables are cheap and noisy, so repeat them.
unsigned reps_for(std::uint32_t n) {
    return std::clamp<unsigned>(4096 / n, 1, 32);
}

std::uint32_t batch_for(const SlotsOptions& o, std::uint32_t n) {
    if (o.batch != 0) return o.batch;
    return n <= 512 ? 1 : 256;
}

Cell run_cell(Backend backend, const KvmSystem* kvm, LockPolicy policy, std::uint32_t n,
              const SlotsOptions& o, std::mt19937_64& rng) {
    Cell c{backend, n, policy, batch_for(o, n), {}, {}, {}, {}, {}};
    Fixture f(backend, kvm, policy, n);
    auto record = [&](Op& op, double seconds) {
        op.total_s.push_back(seconds);
        op.backend_s.push_back(f.take_backend_seconds());
    };
    const unsigned reps = reps_for(n);
    progress(fmt::format("memslots: {} {} slots {}, {} rep(s)", backend_name(backend), n,
                         policy_name(policy), reps));
    for (unsigned r = 0; r < reps; ++r) {

        f.take_backend_seconds();
        record(c.map, f.map(c.batch));
        f.expect(n, 0, "map");
        if (r == 0) {
            // The table does not depend on the backend: one lookup run per policy.
            if (backend == Backend::kvm) c.lookup = measure_lookups(f, rng);
            // What B=1 would cost with the table this full: take the last
            // regions out and put them back one transaction each.
            std::size_t k = std::min<std::size_t>(o.tail_sample, n / 2);
            if (c.batch > 1 && k > 0) {
                progress(fmt::format("memslots: {} {} slots {}: {} single-region transactions",
                                     backend_name(backend), n, policy_name(policy), k));
                f.unmap(c.batch, n - k, n);
                f.expect(n - k, 0, "unmapping the sample");
                for (std::size_t i = n - k; i < n; ++i)
                    c.tail_s.push_back(f.map_one(i));
                f.expect(n, 0, "the single-region sample");
            }
            f.take_backend_seconds();
        }
        record(c.move, f.move(c.batch));
        f.expect(n, kMoveBase, "move");
        record(c.unmap, f.unmap(c.batch));
        f.expect(0, 0, "unmap");
    }
    return c;
}

std::vector<double> scaled(const std::vector<double>& v, double k) {
    std::vector<double> out;
    for (double x : v)
        out.push_back(x * k);
    return out;
}

// "12.3 [11.9..13.0]" (µs per region); one run: just the value.
std::string per_region(const std::vector<double>& s, std::uint32_t n) {
    auto sum = summarize(scaled(s, 1e6 / n));
    if (sum.n == 1) return fmt::format("{:.2f}", sum.median);
    return format_summary(sum, 1, "", 2);
}

json op_json(const Op& op, std::uint32_t n) {
    return {{"total_s", summarize(op.total_s)},
            {"in_backend_s", summarize(op.backend_s)},
            {"us_per_region", summarize(scaled(op.total_s, 1e6 / n))},
            {"in_backend_us_per_region", summarize(scaled(op.backend_s, 1e6 / n))}};
}

} // namespace

json memslot_part(const SlotsOptions& o) {
    KvmSystem kvm;
    std::mt19937_64 rng(42);
    std::vector<Cell> cells;
    std::vector<std::uint32_t> fake_skipped;
    for (std::size_t si = 0; si < o.slots.size(); ++si) {
        const std::uint32_t n = o.slots[si];
        const bool fake = n <= o.fake_max_slots;
        if (!fake) fake_skipped.push_back(n);
        auto order = rotated(o.policies, si);
        for (std::size_t pi = 0; pi < order.size(); ++pi) {
            // Alternate which backend goes first.
            std::vector<Backend> backends{Backend::kvm};
            if (fake)
                backends.insert((si + pi) % 2 ? backends.begin() : backends.end(), Backend::fake);
            for (Backend b : backends)
                cells.push_back(run_cell(b, &kvm, order[pi], n, o, rng));
        }
    }
    progress_done();
    auto rank = [&](const Cell& c) {
        auto p = std::find(o.policies.begin(), o.policies.end(), c.policy) - o.policies.begin();
        auto s = std::find(o.slots.begin(), o.slots.end(), c.slots) - o.slots.begin();
        return std::tuple(c.backend != Backend::kvm, s, p);
    };
    std::sort(cells.begin(), cells.end(),
              [&](const Cell& a, const Cell& b) { return rank(a) < rank(b); });
    const auto mark = emulated_suffix(o.emulated());

    fmt::print("1. memslot_perf_test shapes: N one-page (4 KiB) RAM regions at gpa i*8 KiB, one "
               "KVM slot each,\n"
               "   changed through MemoryTopology in transactions of B regions: map = add all N, "
               "move = remove and\n"
               "   re-add each at 1 GiB + i*8 KiB, unmap = remove all N. backend kvm = the real "
               "VM fd (no vCPUs);\n"
               "   fake = RecordingSlotBackend(record=false). us/region = total / N, median "
               "[min..max] over reps\n"
               "   (a single value: one run). 'backend' = time inside SlotBackend::set_slot (the "
               "KVM ioctl, or the\n"
               "   fake's bookkeeping); 'ours' = the rest: MemoryTopology, KvmSlots and its lock "
               "policy.\n");
    bool auto_batched = false;
    for (const auto& c : cells)
        auto_batched = auto_batched || (c.batch > 1 && o.batch == 0);
    if (auto_batched)
        fmt::print("   B = 256 above 512 slots, for EVERY policy: rcu copies the whole table once "
                   "per transaction,\n"
                   "   so one region per transaction would be quadratic there (sampled below).\n");
    if (!fake_skipped.empty())
        fmt::print("   fake skipped above {} slots (--fake-max-slots): its set_slot checks a new "
                   "slot against every\n"
                   "   slot (O(n)), which costs more than KVM itself there; the kvm rows split "
                   "ours from the kernel's.\n",
                   o.fake_max_slots);
    fmt::print("\n   {:<7}{:>6}  {:<13}{:>4}{:>5}  {:<24}{:<24}{:<24}\n", "backend", "slots",
               "policy", "B", "reps", "map us/region", "move us/region", "unmap us/region");
    json cells_json = json::array();
    for (const auto& c : cells)
        fmt::print("   {:<7}{:>6}  {:<13}{:>4}{:>5}  {:<24}{:<24}{:<24}{}\n",
                   backend_name(c.backend), c.slots, policy_name(c.policy), c.batch,
                   c.map.total_s.size(), per_region(c.map.total_s, c.slots),
                   per_region(c.move.total_s, c.slots), per_region(c.unmap.total_s, c.slots), mark);

    fmt::print("\n   where the time goes (medians): total ms = backend ms + ours ms; ours in "
               "us/region\n\n");
    fmt::print("   {:<7}{:>6}  {:<13}{:<26}{:<26}{:<26}{}\n", "backend", "slots", "policy",
               "map ms (backend)", "move ms (backend)", "unmap ms (backend)",
               "ours us/region map/move/unmap");
    for (const auto& c : cells) {
        auto ms = [](const Op& op) {
            return fmt::format("{:.2f} ({:.2f})", summarize(op.total_s).median * 1e3,
                               summarize(op.backend_s).median * 1e3);
        };
        auto ours = [&](const Op& op) {
            std::vector<double> v;
            for (std::size_t i = 0; i < op.total_s.size(); ++i)
                v.push_back((op.total_s[i] - op.backend_s[i]) * 1e6 / c.slots);
            return summarize(v).median;
        };
        fmt::print("   {:<7}{:>6}  {:<13}{:<26}{:<26}{:<26}{:.2f} / {:.2f} / {:.2f}{}\n",
                   backend_name(c.backend), c.slots, policy_name(c.policy), ms(c.map), ms(c.move),
                   ms(c.unmap), ours(c.map), ours(c.move), ours(c.unmap), mark);
    }
    for (const auto& c : cells) {
        json j{{"backend", backend_name(c.backend)},
               {"slots", c.slots},
               {"policy", policy_name(c.policy)},
               {"batch", c.batch},
               {"repetitions", c.map.total_s.size()},
               {"map", op_json(c.map, c.slots)},
               {"move", op_json(c.move, c.slots)},
               {"unmap", op_json(c.unmap, c.slots)},
               {"emulated", o.emulated()}};
        if (c.lookup)
            j["lookup_ns"] = {{"median", c.lookup->median_ns},
                              {"p99", c.lookup->p99_ns},
                              {"min", c.lookup->min_ns},
                              {"batches", c.lookup->batches},
                              {"lookups_per_batch", kLookupBatch},
                              {"slot_table_find_median", c.lookup->table_ns}};
        if (!c.tail_s.empty()) {
            double sum = 0;
            for (double s : c.tail_s)
                sum += s;
            j["single_region_sample"] = {
                {"transactions", c.tail_s.size()},
                {"us_per_transaction", summarize(scaled(c.tail_s, 1e6))},
                {"total_s", sum},
                {"extrapolated_b1_map_s",
                 sum / static_cast<double>(c.tail_s.size()) * c.slots / 2}};
        }
        cells_json.push_back(std::move(j));
    }

    fmt::print("\n   GPA lookup: KvmSlots::find_slot(0, gpa) at random gpas inside the slots, "
               "ns per lookup timed\n"
               "   over batches of {} (p99 is over batches). 'table' = SlotTable::find on a "
               "private copy of the\n"
               "   same table (no lock, no copy of the result): the search alone.\n\n",
               kLookupBatch);
    fmt::print("   {:>6}  {:<13}{:>10}{:>10}{:>10}{:>10}{:>9}\n", "slots", "policy", "median",
               "p99", "min", "table", "batches");
    for (const auto& c : cells)
        if (c.lookup)
            fmt::print("   {:>6}  {:<13}{:>10.1f}{:>10.1f}{:>10.1f}{:>10.1f}{:>9}{}\n", c.slots,
                       policy_name(c.policy), c.lookup->median_ns, c.lookup->p99_ns,
                       c.lookup->min_ns, c.lookup->table_ns, c.lookup->batches, mark);

    bool any_tail = false;
    for (const auto& c : cells)
        any_tail = any_tail || !c.tail_s.empty();
    if (any_tail) {
        fmt::print("\n   What B = 1 would cost: after the batched map, the last K regions were "
                   "taken out and put back\n"
                   "   one transaction each (the table holding N-K..N-1 slots). A whole B = 1 map "
                   "is extrapolated as\n"
                   "   N/2 x their mean (assumes the cost grows linearly with the table).\n\n");
        fmt::print("   {:<7}{:>6}  {:<13}{:>5}  {:<32}{:>13}{:>16}\n", "backend", "slots", "policy",
                   "K", "us/transaction", "B=1 map ~s", "batched map s");
        for (const auto& c : cells) {
            if (c.tail_s.empty()) continue;
            double mean = 0;
            for (double s : c.tail_s)
                mean += s / static_cast<double>(c.tail_s.size());
            fmt::print("   {:<7}{:>6}  {:<13}{:>5}  {:<32}{:>13.1f}{:>16.3f}{}\n",
                       backend_name(c.backend), c.slots, policy_name(c.policy), c.tail_s.size(),
                       format_summary(summarize(scaled(c.tail_s, 1e6)), 1, "", 1),
                       mean * c.slots / 2, summarize(c.map.total_s).median, mark);
        }
    }

    constexpr std::uint32_t kTargetSlots = 32764;
    constexpr double kTargetNs = 100;
    fmt::print("\n   target: GPA lookup at {} slots, median under {:.0f} ns: ", kTargetSlots,
               kTargetNs);
    json target{
        {"slots", kTargetSlots}, {"median_ns_below", kTargetNs}, {"emulated", o.emulated()}};
    bool checked = false, all_ok = true;
    std::string detail;
    for (const auto& c : cells) {
        if (!c.lookup || c.slots != kTargetSlots) continue;
        bool ok = c.lookup->median_ns < kTargetNs;
        detail += fmt::format("{}{} {:.1f} ns {}", checked ? ", " : "", policy_name(c.policy),
                              c.lookup->median_ns, ok ? "ok" : "MISSED");
        target["median_ns"][policy_name(c.policy)] = c.lookup->median_ns;
        checked = true;
        all_ok = all_ok && ok;
    }
    if (checked) {
        fmt::print("{} ({}){}\n\n", all_ok ? "met" : "NOT MET", detail, mark);
        target["met"] = all_ok;
    } else {
        fmt::print("not checked ({} is not in --slots)\n\n", kTargetSlots);
        target["met"] = nullptr;
    }
    return {{"cells", cells_json}, {"lookup_target", target}, {"fake_max_slots", o.fake_max_slots}};
}

} // namespace minivmm::bench
