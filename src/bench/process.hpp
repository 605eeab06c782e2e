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

// run_process, and throws unless the child exited 0, so that a broken run
// never becomes a number.
ProcessResult run_checked(const std::vector<std::string>& argv);

// Reads the number that `format` (a sscanf format with one %lf) extracts from
// the line of `text` that starts with `tag`; throws when there is none.
double parse_number(const std::string& text, const char* tag, const char* format);

} // namespace minivmm::bench
