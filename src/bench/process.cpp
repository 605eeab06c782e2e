#include "bench/process.hpp"

#include <fcntl.h>
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

ProcessResult run_process(const std::vector<std::string>& argv) {
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    auto start = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    if (pid == 0) {
        ::dup2(pipefd[1], 1);
        ::execv(args[0], args.data());
        _exit(127);
    }
    ::close(pipefd[1]);
    ProcessResult result;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        result.out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(pipefd[0]);
    int status = 0;
    struct rusage usage {};
    while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    result.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.max_rss_kib = usage.ru_maxrss;
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

ProcessResult run_checked(const std::vector<std::string>& argv) {
    auto r = run_process(argv);
    if (r.status != 0) {
        std::string cmd;
        for (const auto& a : argv)
            cmd += a + " ";
        throw std::runtime_error(fmt::format("'{}' exited with status {}", cmd, r.status));
    }
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
