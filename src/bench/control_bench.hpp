// minivmm-bench control: control-plane figures (docs/benchmarks.md, "Control benchmark").
// For each lock policy and round, two runs of the sb_memory guest (2 vCPUs,
// each writing its own 8K block) under minivmm-run --api-sock: a baseline with
// no control traffic, and a loaded run during which one client loops
// memory-add + memory-remove of 64 MiB at 4 GiB and another sends query-stats
// every 10 ms, both until the guest exits. Reports round trips/s and their
// latency, the guest's events/s with and without the load (slowdown with a
// 95% CI), query-stats latency, and the VMM's own slot-lock and hotplug
// counters (bench/control_report.hpp).
#pragma once

#include <string>
#include <vector>

#include "minivmm/kvm_flavor.hpp"

namespace minivmm::bench {

struct ControlOptions {
    std::vector<std::string> policies{"per-listener", "global", "rcu"};
    unsigned repeat = 5; // rounds per policy
    unsigned time_s = 2; // the guest's --time
    std::string json_path;
    std::string run_path, guest_dir;
    KvmFlavor kvm_flavor = KvmFlavor::hardware; // detect_kvm_flavor(): emulated marks every figure
};

// Returns the process exit code; throws when a run fails (a child's
// non-zero exit, a refused memory-add while the guest runs, a check).
int run_control(const ControlOptions& options);

} // namespace minivmm::bench
