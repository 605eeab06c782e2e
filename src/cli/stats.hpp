// minivmm-run --stats / --stats-json: the VM's exit counters as one text
// line and as JSON (format in README "minivmm-run").
#pragma once

#include <string>

#include "minivmm/vm.hpp"

namespace minivmm::cli {

// "minivmm-stats: exits=N io=N mmio=N [REASON=N ...] [hypercall[NR]=N ...]
// [io_other=N] [ioeventfd=N] [ring_requests=N]", without a newline; zero
// counts other than exits, io and mmio are left out.
std::string stats_line(const ExitCounts& counts);

// The same counts as a JSON object (no trailing newline).
std::string stats_json(const ExitCounts& counts);

} // namespace minivmm::cli
