// Runs a child process and measures it: wall time, peak RSS, exit status,
// captured stdout.
#pragma once

#include <string>
#include <vector>

namespace minivmm::bench {

struct ProcessResult {
    int status = -1; // exit status, or 128 + signal
    double wall_seconds = 0;
    long max_rss_kib = 0; // ru_maxrss of the child
    std::string out;      // its stdout
};

// Runs argv[0] with argv (no shell); stderr is passed through.
ProcessResult run_process(const std::vector<std::string>& argv);

} // namespace minivmm::bench
