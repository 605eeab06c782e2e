// Part 2 of minivmm-bench slots: readers of the slot tables (find_slot,
// gpa_of_host) racing a writer that keeps changing the topology and a
// syncer that keeps pulling the dirty log of both address spaces, the way
// vCPU threads, a device hot-plug and a migration thread would.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "bench/emulated.hpp"
#include "bench/slots_bench.hpp"
#include "bench/stats.hpp"
#include "minivmm/address_space.hpp"
#include "minivmm/ram_block.hpp"
#include "testing/recording_slot_backend.hpp"

namespace minivmm::bench {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr unsigned kSpaces = 2;
constexpr std::uint64_t kSlotSize = 1ull << 20;     // max_slot_size: the base splits
constexpr std::uint64_t kBaseSize = 64 * kSlotSize; // 64 slots per address space
constexpr std::uint64_t kExtraSize = 1ull << 20;    // the writer's region: one slot
constexpr std::uint64_t kExtraGpa = 1ull << 30;
constexpr unsigned kSampleEvery = 64; // one reader op in 64 is timed

struct RunResult {
    double reader_ops_s = 0, reader_p50_ns = 0, reader_p99_ns = 0;
    double writer_ops_s = 0, syncer_ops_s = 0;
    std::uint64_t contended = 0;
    double wait_ms = 0;
};

// xorshift64: cheap enough not to show in the reader loop.
std::uint64_t next_random(std::uint64_t& x) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

RunResult run_once(LockPolicy policy, unsigned readers, double seconds) {
    RecordingSlotBackend backend(kSpaces, 32764, true, /*record=*/false);
    KvmSlots memory(backend, {.policy = policy, .max_slot_size = kSlotSize});
    MemoryTopology topology;
    std::shared_ptr<MemoryRegion> roots[kSpaces], extra[kSpaces];
    std::shared_ptr<RamBlock> blocks[kSpaces];
    for (unsigned as = 0; as < kSpaces; ++as) {
        roots[as] = MemoryRegion::container(fmt::format("root{}", as), 1ull << 36);
        auto& space = topology.add_address_space(fmt::format("as{}", as), roots[as]);
        topology.add_listener(space, memory.listener(as));
        blocks[as] = std::make_shared<RamBlock>(fmt::format("base{}", as), kBaseSize);
        auto base = MemoryRegion::ram(fmt::format("base{}", as), blocks[as], 0, kBaseSize);
        topology.set_dirty_logging(*base, true);
        topology.add_subregion(*roots[as], 0, base);
        extra[as] =
            MemoryRegion::ram(fmt::format("extra{}", as),
                              std::make_shared<RamBlock>("extra", kExtraSize), 0, kExtraSize);
        if (memory.slots(as).size() != kBaseSize / kSlotSize)
            throw std::runtime_error("contention: the base did not split into 64 slots");
    }

    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> errors{0};
    std::latch ready(readers + 3); // every worker and this thread
    std::vector<std::uint64_t> reader_ops(readers);
    std::vector<std::vector<double>> samples(readers);
    std::uint64_t writer_ops = 0, syncer_ops = 0;
    std::vector<std::jthread> threads;

    for (unsigned r = 0; r < readers; ++r)
        threads.emplace_back([&, r] {
            std::uint64_t x = 0x9e3779b97f4a7c15ull * (r + 1), ops = 0, bad = 0;
            auto& mine = samples[r];
            mine.reserve(1 << 20);
            // The base stays mapped throughout: every lookup must succeed.
            auto op = [&](unsigned k) {
                std::uint64_t off = next_random(x) % kBaseSize;
                unsigned as = k & 1;
                if (k % 3 != 2) {
                    auto s = memory.find_slot(as, off);
                    bad += !s || off - s->start_addr >= s->memory_size;
                } else {
                    auto g = memory.gpa_of_host(as, blocks[as]->host() + off);
                    bad += !g || *g != off;
                }
            };
            ready.arrive_and_wait();
            while (!stop.load(std::memory_order_relaxed)) {
                auto t0 = Clock::now();
                op(0);
                mine.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
                for (unsigned k = 1; k < kSampleEvery; ++k)
                    op(k);
                ops += kSampleEvery;
            }
            reader_ops[r] = ops;
            errors += bad;
        });
    threads.emplace_back([&] {
        ready.arrive_and_wait();
        while (!stop.load(std::memory_order_relaxed))
            for (unsigned as = 0; as < kSpaces; ++as) {
                topology.add_subregion(*roots[as], kExtraGpa, extra[as]);
                topology.remove_subregion(*roots[as], *extra[as]);
                writer_ops += 2;
            }
    });
    threads.emplace_back([&] {
        std::uint64_t x = 0x2545f4914f6cdd1dull;
        ready.arrive_and_wait();
        while (!stop.load(std::memory_order_relaxed)) {
            for (unsigned k = 0; k < 4; ++k)
                backend.guest_write(k % kSpaces, next_random(x) % kBaseSize);
            memory.sync_dirty_all();
            ++syncer_ops;
        }
    });

    ready.arrive_and_wait();
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    threads.clear(); // joins

    if (errors != 0)
        throw std::runtime_error(fmt::format("contention ({}): {} reader lookups went wrong",
                                             policy_name(policy), errors.load()));
    std::uint64_t dirty = blocks[0]->dirty().count() + blocks[1]->dirty().count();
    if (syncer_ops > 0 && dirty == 0)
        throw std::runtime_error("contention: the syncer collected no dirty page");

    RunResult res;
    std::uint64_t total = 0;
    std::vector<double> all;
    for (unsigned r = 0; r < readers; ++r) {
        total += reader_ops[r];
        all.insert(all.end(), samples[r].begin(), samples[r].end());
    }
    res.reader_ops_s = static_cast<double>(total) / elapsed;
    if (!all.empty()) {
        res.reader_p50_ns = percentile(all, 50);
        res.reader_p99_ns = percentile(all, 99);
    }
    res.writer_ops_s = static_cast<double>(writer_ops) / elapsed;
    res.syncer_ops_s = static_cast<double>(syncer_ops) / elapsed;
    auto stats = memory.lock_stats();
    res.contended = stats.contended;
    res.wait_ms = static_cast<double>(stats.wait_ns) / 1e6;
    return res;
}

} // namespace

json contention_part(const SlotsOptions& o) {
    std::map<LockPolicy, std::vector<RunResult>> runs;
    for (unsigned round = 0; round < o.repeat; ++round)
        for (LockPolicy p : rotated(o.policies, round)) {
            progress(
                fmt::format("contention: round {}/{} {}", round + 1, o.repeat, policy_name(p)));
            runs[p].push_back(run_once(p, o.readers, o.seconds));
        }
    progress_done();
    const auto mark = emulated_suffix(o.emulated());

    fmt::print("2. contention: RecordingSlotBackend(2 address spaces, record=false), each with a "
               "64 MiB base RAM\n"
               "   region split into 64 slots (max_slot_size 1 MiB), dirty logging on. {} reader "
               "thread(s)\n"
               "   (find_slot in both address spaces and gpa_of_host, random addresses in the "
               "base), 1 writer\n"
               "   (adds and removes a 1 MiB region in each address space in turn, through "
               "MemoryTopology), 1 syncer\n"
               "   (4 guest_write calls, then sync_dirty_all). {} threads on {} cores; {:.1f} s "
               "per policy, {} round(s),\n"
               "   policy order rotated per round; median [min..max] over rounds. Reader latency: "
               "every {}th op timed\n"
               "   with steady_clock (the two clock reads are included). contended / wait ms: "
               "KvmSlots::lock_stats(),\n"
               "   acquisitions that had to wait and their waiting time summed over threads.\n\n",
               o.readers, o.readers + 2, std::thread::hardware_concurrency(), o.seconds, o.repeat,
               kSampleEvery);
    fmt::print("   {:<13}{:<24} {:<18} {:<24} {:<22} {:<24} {}\n", "policy",
               "reader Mops/s (total)", "reader p99 ns", "writer ops/s", "syncer ops/s",
               "contended", "wait ms");
    json per_policy = json::object();
    auto col = [](const std::vector<RunResult>& v, auto field) {
        std::vector<double> xs;
        for (const auto& r : v)
            xs.push_back(static_cast<double>(r.*field));
        return summarize(xs);
    };
    for (LockPolicy p : o.policies) {
        const auto& v = runs[p];
        auto ops = col(v, &RunResult::reader_ops_s), p99 = col(v, &RunResult::reader_p99_ns),
             p50 = col(v, &RunResult::reader_p50_ns), wr = col(v, &RunResult::writer_ops_s),
             sy = col(v, &RunResult::syncer_ops_s), ct = col(v, &RunResult::contended),
             wt = col(v, &RunResult::wait_ms);
        fmt::print("   {:<13}{:<24} {:<18} {:<24} {:<22} {:<24} {}{}\n", policy_name(p),
                   format_summary(ops, 1e-6, "", 2), format_summary(p99, 1, "", 0),
                   format_summary(wr, 1, "", 0), format_summary(sy, 1, "", 0),
                   format_summary(ct, 1, "", 0), format_summary(wt, 1, "", 1), mark);
        json rounds = json::array();
        for (const auto& r : v)
            rounds.push_back({{"reader_ops_per_s", r.reader_ops_s},
                              {"reader_p50_ns", r.reader_p50_ns},
                              {"reader_p99_ns", r.reader_p99_ns},
                              {"writer_ops_per_s", r.writer_ops_s},
                              {"syncer_ops_per_s", r.syncer_ops_s},
                              {"lock_contended", r.contended},
                              {"lock_wait_ms", r.wait_ms},
                              {"emulated", o.emulated()}});
        per_policy[policy_name(p)] = {
            {"reader_ops_per_s", ops}, {"reader_p50_ns", p50},   {"reader_p99_ns", p99},
            {"writer_ops_per_s", wr},  {"syncer_ops_per_s", sy}, {"lock_contended", ct},
            {"lock_wait_ms", wt},      {"rounds", rounds},       {"emulated", o.emulated()}};
    }

    json ratios = json::object();
    auto ratio = [&](LockPolicy a, LockPolicy b) -> std::optional<std::pair<double, Summary>> {
        if (!runs.count(a) || !runs.count(b)) return std::nullopt;
        // Per round as well: the two ran next to each other there.
        std::vector<double> per_round;
        for (std::size_t i = 0; i < runs[a].size(); ++i)
            per_round.push_back(runs[a][i].reader_ops_s / runs[b][i].reader_ops_s);
        double of_medians = col(runs[a], &RunResult::reader_ops_s).median /
                            col(runs[b], &RunResult::reader_ops_s).median;
        return std::pair(of_medians, summarize(per_round));
    };
    fmt::print("\n");
    if (auto r = ratio(LockPolicy::rcu, LockPolicy::global)) {
        bool met = r->first >= 5;
        fmt::print("   reader throughput rcu/global          {:.2f}x  (per round {:.2f}x "
                   "[{:.2f}..{:.2f}]); target >= 5x: {}{}\n",
                   r->first, r->second.median, r->second.min, r->second.max,
                   met ? "met" : "NOT MET", mark);
        ratios["rcu_over_global"] = {{"of_medians", r->first},
                                     {"per_round", r->second},
                                     {"target", 5},
                                     {"met", met},
                                     {"emulated", o.emulated()}};
    }
    if (auto r = ratio(LockPolicy::per_listener, LockPolicy::global)) {
        fmt::print("   reader throughput per-listener/global {:.2f}x  (per round {:.2f}x "
                   "[{:.2f}..{:.2f}]){}\n",
                   r->first, r->second.median, r->second.min, r->second.max, mark);
        ratios["per_listener_over_global"] = {
            {"of_medians", r->first}, {"per_round", r->second}, {"emulated", o.emulated()}};
    }
    fmt::print("\n");
    return {{"readers", o.readers},
            {"seconds", o.seconds},
            {"rounds", o.repeat},
            {"policies", per_policy},
            {"ratios", ratios}};
}

} // namespace minivmm::bench
