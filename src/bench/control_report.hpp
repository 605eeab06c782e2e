// minivmm-bench control: the data, statistics and renderings (terminal table,
// JSON) of the control-plane benchmark: memory-add + memory-remove round
// trips on the control socket while a memory-writing guest runs, per lock
// policy, the guest's throughput with and without that load, and query-stats
// latency under it. No KVM and no processes here (library minivmm_report), so
// tests can feed it fixed samples; the runs are in control_bench.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace minivmm::bench {

// One guest run's sb-result line.
struct GuestRate {
    std::uint64_t events = 0, time_ns = 0, check = 0;
    // events per second of the guest's own clock (0 when it took no time)
    double rate() const {
        return time_ns ? static_cast<double>(events) * 1e9 / static_cast<double>(time_ns) : 0;
    }
};

// The VMM's own counters, from the last successful query-stats of a loaded
// run (taken while the guest still ran).
struct VmmStats {
    std::uint64_t lock_contended = 0, lock_wait_ns = 0; // slot_lock
    std::uint64_t adds = 0, removes = 0;                // memory_hotplug counts
    // memory_hotplug latency inside the VMM: histogram bucket upper bounds
    std::uint64_t add_p50_ns = 0, add_p99_ns = 0, remove_p50_ns = 0, remove_p99_ns = 0;
    nlohmann::json raw; // slot_lock, memory_hotplug and slot_updates as returned
};

// The guest under control-socket load.
struct LoadedRun {
    GuestRate guest;
    std::uint64_t round_trips = 0; // completed memory-add + memory-remove pairs
    double hotplug_seconds = 0;    // first request to the last completed round trip
    std::vector<double> round_trip_ns, add_ns, remove_ns; // one per completed round trip
    std::vector<double> query_stats_ns;                   // every answered query-stats
    std::string ended_by; // how the clients learnt that the guest had ended
    VmmStats vmm;
    double round_trips_per_s() const {
        return hotplug_seconds > 0 ? static_cast<double>(round_trips) / hotplug_seconds : 0;
    }
};

struct ControlRound {
    unsigned round = 0;
    bool loaded_first = false;
    GuestRate baseline;
    LoadedRun loaded;
};

struct ControlSeries {
    std::string policy;
    std::vector<ControlRound> rounds;
};

struct ControlReport {
    unsigned repeat = 0;
    unsigned time_s = 0;
    std::string guest;         // image file name
    std::string guest_options; // the workload's options
    unsigned vcpus = 2;
    std::string mem;                // minivmm-run --mem
    std::uint64_t hotplug_gpa = 0;  // memory-add gpa
    std::uint64_t hotplug_size = 0; // memory-add size
    unsigned stats_period_ms = 10;  // query-stats period
    std::string host;               // free text: kernel, CPU
    std::string load;               // free text: the host's load average before and after
    double wall_seconds = 0;
    // The KVM measured, as to_string(KvmFlavor) names it: "hardware", "pvm"
    // or "emulated", where every figure is marked (bench/emulated.hpp).
    std::string kvm_flavor = "hardware";
    bool emulated() const { return kvm_flavor == "emulated"; }
    std::vector<ControlSeries> policies;
};

// Per-policy summary lines and the comparison of the policies' round-trip
// rates; throws on a policy without rounds or with no round trip / no
// query-stats sample at all.
std::string render_control_table(const ControlReport& report);
// Every sample and the summaries; "kvm_flavor" at the top and an "emulated"
// boolean on every policy, round and summary.
nlohmann::json control_report_json(const ControlReport& report);
// "rcu 1.04x global (the slowest) ...": the policies' round-trip rates
// compared, "" with fewer than two policies.
std::string compare_policies(const ControlReport& report);

} // namespace minivmm::bench
