// Runs a child process and measures it: wall time, peak RSS, exit status,
// captured stdout. run_process waits for it; ChildProcess lets the caller
// work (e.g. drive its control socket) while it runs.
#pragma once

#include <sys/types.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace minivmm::bench {

struct ProcessResult {
    int status = -1; // exit status, or 128 + signal
    int signal = 0;  // the signal that ended it, 0 if it exited
    double wall_seconds = 0;
    long max_rss_kib = 0; // ru_maxrss of the child
    std::string out;      // its stdout
};

// A child process started now (fork/exec of argv[0] with argv, no shell):
// stdin and stderr are passed through, stdout goes to a pipe that a thread of
// ours reads to EOF. The destructor kills (SIGKILL) and reaps a child that is
// still running.
//
// wait() is for one thread; kill() may be called from any other thread at the
// same time: the child is only reaped once no kill() can reach a reused pid.
class ChildProcess {
  public:
    // Throws on fork/pipe failure. A non-empty `cwd` is the child's working
    // directory (status 127 when it cannot go there).
    explicit ChildProcess(const std::vector<std::string>& argv, const std::string& cwd = {});
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const noexcept { return pid_; }
    // Has it exited? Never blocks, never reaps.
    bool exited() const;
    // Waits for it to exit, reaps it and returns its result (stdout read to
    // EOF, wall time since the start). Later calls return the same result.
    const ProcessResult& wait();
    // Sends `sig` unless it has been reaped already.
    void kill(int sig);

  private:
    pid_t pid_ = -1;
    int out_fd_ = -1;
    double start_ = 0; // steady clock, seconds
    std::thread reader_;
    std::string out_; // written by reader_ until it ends
    mutable std::mutex mutex_;
    bool reaped_ = false;
    ProcessResult result_;
};

// Runs argv[0] with argv (no shell), in `cwd` when given; stderr is passed
// through.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& cwd = {});

// run_process, and throws unless the child exited 0, so that a broken run
// never becomes a number.
ProcessResult run_checked(const std::vector<std::string>& argv, const std::string& cwd = {});

// "'argv0 arg1 ...' exited with status N" (or "was killed by signal N", "could
// not be started"): the error of a failed run.
std::string describe_failure(const std::vector<std::string>& argv, const ProcessResult& r);

// Reads the number that `format` (a sscanf format with one %lf) extracts from
// the line of `text` that starts with `tag`; throws when there is none.
double parse_number(const std::string& text, const char* tag, const char* format);

} // namespace minivmm::bench
