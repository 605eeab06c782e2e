// Native runner for the fileio workload core (guest/workloads/sb_fileio.h):
// the same core the sb_fileio guest runs on the block device, here on real
// files with pread/pwrite/fdatasync and std::thread threads; the overhead
// benchmark's native side of the fileio row.
#pragma once

#include <string>
#include <string_view>

namespace minivmm::workloads {

struct FileioNativeRun {
    int status = 0; // 0 ok, 4 verification failure, 5 I/O error (as the guest)
    // What the guest prints: sysbench's report, then the "sb-result
    // test=fileio ..." and "sb-fileio ..." lines.
    std::string output;
};

// prepare: creates `dir`/test_file.0 .. N-1 (file_size bytes each, written
// fully once by the core; O_CREAT|O_TRUNC), run: the timed events on
// `threads` threads (0: --threads from the options, else 1), cleanup: the
// files are removed (also on error). Options as the guest's ("--file-num=8
// --file-total-size=64M --events=2000 --time=0"). Throws
// std::invalid_argument on bad options and std::runtime_error when a file
// cannot be created.
FileioNativeRun run_fileio_native(const std::string& dir, std::string_view options,
                                  unsigned threads = 0);

} // namespace minivmm::workloads
