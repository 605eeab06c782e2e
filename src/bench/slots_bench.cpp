#include "bench/slots_bench.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "bench/emulated.hpp"

namespace minivmm::bench {

const char* policy_name(LockPolicy policy) {
    return to_string(policy);
}

std::vector<LockPolicy> rotated(const std::vector<LockPolicy>& policies, std::size_t round) {
    std::vector<LockPolicy> out;
    for (std::size_t i = 0; i < policies.size(); ++i)
        out.push_back(policies[(i + round) % policies.size()]);
    return out;
}

void progress(const std::string& text) {
    // Pad over the previous, possibly longer, line.
    fmt::print(stderr, "\r{:<70}", text);
    std::fflush(stderr);
}

void progress_done() {
    fmt::print(stderr, "\r{:<70}\r", "");
    std::fflush(stderr);
}

void to_json(nlohmann::json& j, const Summary& s) {
    j = {{"median", s.median}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
}

int run_slots(const SlotsOptions& o) {
    using Clock = std::chrono::steady_clock;
    auto t0 = Clock::now();
    utsname u{};
    ::uname(&u);
    std::string policies;
    for (LockPolicy p : o.policies)
        policies += std::string(policies.empty() ? "" : ",") + policy_name(p);
    fmt::print("{}minivmm-bench slots: KVM memory-slot tables under lock policies {}\n",
               emulated_banner_line(o.emulated()), policies);
    fmt::print("host: {} {}, {} cores\n\n", u.sysname, u.release,
               std::thread::hardware_concurrency());

    nlohmann::json j{{"kernel", u.release},
                     {"cores", std::thread::hardware_concurrency()},
                     {"kvm_flavor", std::string(to_string(o.kvm_flavor))},
                     {"emulated", o.emulated()},
                     {"policies", nlohmann::json::array()}};
    for (LockPolicy p : o.policies)
        j["policies"].push_back(policy_name(p));
    auto timed = [&](const char* name, auto&& part) {
        auto p0 = Clock::now();
        j[name] = part(o);
        j[name]["elapsed_s"] = std::chrono::duration<double>(Clock::now() - p0).count();
        j[name]["emulated"] = o.emulated();
        std::fflush(stdout); // tables appear as each part ends
    };
    if (o.memslots) timed("memslots", memslot_part);
    if (o.contention) timed("contention", contention_part);
    if (o.guest) timed("guests", guest_part);

    double total = std::chrono::duration<double>(Clock::now() - t0).count();
    j["elapsed_s"] = total;
    fmt::print("elapsed: {:.1f} s{}\n", total, emulated_suffix(o.emulated()));
    if (!o.json_path.empty()) {
        std::ofstream f(o.json_path);
        f << j.dump(2) << "\n";
        if (!f) throw std::runtime_error("cannot write " + o.json_path);
        fmt::print(stderr, "wrote {}\n", o.json_path);
    }
    return 0;
}

} // namespace minivmm::bench
