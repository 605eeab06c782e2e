// minivmm-bench slots: the cost of KVM memory-slot bookkeeping under each
// slot-table lock policy (see minivmm/kvm_slots.hpp).
//   1. memslot_perf_test shapes: map / move / unmap N one-page regions and
//      look up guest addresses, against the real KVM and against a fake
//      backend (our cost without the kernel's)
//   2. contention: readers, a topology writer and a dirty-log syncer on
//      shared slot tables
//   3. guest workloads (regloop, hcloop) under each policy
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/stats.hpp"
#include "minivmm/kvm_flavor.hpp"
#include "minivmm/kvm_slots.hpp"

namespace minivmm::bench {

struct SlotsOptions {
    std::vector<std::uint32_t> slots{16, 512, 32764};
    std::vector<LockPolicy> policies{LockPolicy::per_listener, LockPolicy::global, LockPolicy::rcu};
    std::uint32_t batch = 0;         // regions per transaction; 0: 1 up to 512 slots, else 256
    std::uint32_t tail_sample = 512; // single-region transactions timed when batch > 1
    // The fake backend runs only up to this many slots (its set_slot is O(n)).
    std::uint32_t fake_max_slots = 4096;
    unsigned readers = 2;
    double seconds = 2;  // per policy and round of the contention part
    unsigned repeat = 3; // contention rounds
    unsigned guest_repeat = 5;
    bool memslots = true, contention = true, guest = true; // which parts run
    std::string json_path;
    // Paths of minivmm-run and of the guest images.
    std::string run_path, guest_dir;
    // detect_kvm_flavor(): on an emulated KVM every table row and JSON object
    // with figures is marked (bench/emulated.hpp).
    KvmFlavor kvm_flavor = KvmFlavor::hardware;
    bool emulated() const { return kvm_flavor == KvmFlavor::emulated; }
};

// Runs the selected parts, prints their tables on stdout (progress on
// stderr) and writes the JSON file if asked. Returns the process exit code.
int run_slots(const SlotsOptions& options);

// The parts; each prints its table and returns its numbers.
nlohmann::json memslot_part(const SlotsOptions& options);
nlohmann::json contention_part(const SlotsOptions& options);
nlohmann::json guest_part(const SlotsOptions& options);

// Helpers shared by the parts.
const char* policy_name(LockPolicy policy);
// Policies in the order of round `round`: rotated, so that no policy always
// runs first (drift on a shared machine would favour it).
std::vector<LockPolicy> rotated(const std::vector<LockPolicy>& policies, std::size_t round);
void progress(const std::string& text); // one overwritten line on stderr
void progress_done();
// Summaries go into the JSON as {median, min, max, n}.
void to_json(nlohmann::json& j, const Summary& s);

} // namespace minivmm::bench
