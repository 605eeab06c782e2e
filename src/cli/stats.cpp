#include "cli/stats.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace minivmm::cli {

namespace {

// Reasons printed by name besides the total; io and mmio come first anyway.
bool listed_reason(std::size_t reason) {
    return reason != KVM_EXIT_IO && reason != KVM_EXIT_MMIO;
}

} // namespace

std::string stats_line(const ExitCounts& c) {
    std::string line =
        fmt::format("minivmm-stats: exits={} io={} mmio={}", c.total(), c.io(), c.mmio());
    for (std::size_t r = 0; r < c.by_reason.size(); ++r)
        if (c.by_reason[r] != 0 && listed_reason(r))
            line += fmt::format(" {}={}", ExitCounts::reason_name(r), c.by_reason[r]);
    for (std::size_t nr = 0; nr < c.hypercalls.size(); ++nr)
        if (c.hypercalls[nr] != 0) line += fmt::format(" hypercall[{}]={}", nr, c.hypercalls[nr]);
    if (c.other_io != 0) line += fmt::format(" io_other={}", c.other_io);
    if (c.ioeventfd_signals != 0) line += fmt::format(" ioeventfd={}", c.ioeventfd_signals);
    if (c.ring_requests != 0) line += fmt::format(" ring_requests={}", c.ring_requests);
    return line;
}

std::string stats_json(const ExitCounts& c) {
    nlohmann::ordered_json j;
    j["exits"] = c.total();
    j["io"] = c.io();
    j["mmio"] = c.mmio();
    j["reasons"] = nlohmann::ordered_json::object();
    for (std::size_t r = 0; r < c.by_reason.size(); ++r)
        if (c.by_reason[r] != 0 && listed_reason(r))
            j["reasons"][ExitCounts::reason_name(r)] = c.by_reason[r];
    j["hypercalls"] = nlohmann::ordered_json::object();
    for (std::size_t nr = 0; nr < c.hypercalls.size(); ++nr)
        if (c.hypercalls[nr] != 0) j["hypercalls"][std::to_string(nr)] = c.hypercalls[nr];
    j["io_other"] = c.other_io;
    j["ioeventfd"] = c.ioeventfd_signals;
    j["ring_requests"] = c.ring_requests;
    return j.dump();
}

} // namespace minivmm::cli
