#include "bench/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace minivmm::bench {

namespace {

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

} // namespace

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& cwd) {
    if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0)
        throw std::runtime_error(fmt::format("pipe2 failed: {}", std::strerror(errno)));
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    start_ = now_seconds();
    pid_ = ::fork();
    if (pid_ < 0) {
        int err = errno;
        ::close(pipefd[0]);
        ::close(pipefd[1]);
        throw std::runtime_error(fmt::format("fork failed: {}", std::strerror(err)));
    }
    if (pid_ == 0) { // only async-signal-safe calls from here on
        ::dup2(pipefd[1], 1);
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(127);
        ::execv(args[0], args.data());
        _exit(127);
    }
    ::close(pipefd[1]);
    out_fd_ = pipefd[0];
    try {
        reader_ = std::thread([this] {
            char buf[4096];
            for (;;) {
                ssize_t n = ::read(out_fd_, buf, sizeof buf);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                out_.append(buf, static_cast<std::size_t>(n));
            }
        });
    } catch (...) {
        ::close(out_fd_);
        out_fd_ = -1;
        kill(SIGKILL);
        wait();
        throw;
    }
}

ChildProcess::~ChildProcess() {
    kill(SIGKILL); // no-op once reaped
    wait();
}

bool ChildProcess::exited() const {
    std::lock_guard lock(mutex_);
    if (reaped_) return true;
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == pid_;
}

const ProcessResult& ChildProcess::wait() {
    {
        std::lock_guard lock(mutex_);
        if (reaped_) return result_;
    }
    // Wait without reaping, so that kill() from another thread can never hit
    // a reused pid, then reap under the lock.
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 &&
           errno == EINTR) {
    }
    int status = 0;
    struct rusage usage {};
    {
        std::lock_guard lock(mutex_);
        while (::wait4(pid_, &status, 0, &usage) < 0 && errno == EINTR) {
        }
        reaped_ = true;
    }
    result_.wall_seconds = now_seconds() - start_;
    result_.max_rss_kib = usage.ru_maxrss;
    result_.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    result_.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (reader_.joinable()) reader_.join(); // EOF: the child (and any child of it) is gone
    if (out_fd_ >= 0) ::close(out_fd_);
    out_fd_ = -1;
    result_.out = std::move(out_);
    return result_;
}

void ChildProcess::kill(int sig) {
    std::lock_guard lock(mutex_);
    if (!reaped_ && pid_ > 0) ::kill(pid_, sig);
}

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& cwd) {
    ChildProcess child(argv, cwd);
    return child.wait();
}

std::string describe_failure(const std::vector<std::string>& argv, const ProcessResult& r) {
    std::string cmd;
    for (const auto& a : argv)
        cmd += (cmd.empty() ? "" : " ") + a;
    if (r.signal) return fmt::format("'{}' was killed by signal {}", cmd, r.signal);
    if (r.status == 127)
        return fmt::format("'{}' exited with status 127 (could it be started?)", cmd);
    return fmt::format("'{}' exited with status {}", cmd, r.status);
}

ProcessResult run_checked(const std::vector<std::string>& argv, const std::string& cwd) {
    auto r = run_process(argv, cwd);
    if (r.status != 0) throw std::runtime_error(describe_failure(argv, r));
    return r;
}

double parse_number(const std::string& text, const char* tag, const char* format) {
    auto at = text.find(tag);
    double value = 0;
    if (at == std::string::npos || std::sscanf(text.c_str() + at, format, &value) != 1)
        throw std::runtime_error(fmt::format("no '{}' line in guest output: '{}'", tag, text));
    return value;
}

} // namespace minivmm::bench
