#include "kvm_support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "minivmm/console.hpp"
#include "minivmm/guest_image.hpp"

extern char** environ;

namespace minivmm::test {

std::string kvm_device() {
    const char* dev = std::getenv("MINIVMM_KVM_DEVICE");
    return dev && *dev ? dev : "/dev/kvm";
}

std::optional<int> kvm_gate() {
    const std::string device = kvm_device();
    int fd = ::open(device.c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        ::close(fd);
        return std::nullopt;
    }
    const char* why = std::strerror(errno);
    if (required("MINIVMM_REQUIRE_KVM")) {
        std::fprintf(stderr,
                     "FAILED: MINIVMM_REQUIRE_KVM=1 but %s is not usable (%s): KVM integration "
                     "tests did not run\n",
                     device.c_str(), why);
        return 1;
    }
    std::fprintf(stderr, "SKIPPED: %s is not usable (%s): KVM integration tests did not run\n",
                 device.c_str(), why);
    return kSkipStatus;
}

const KvmSystem& kvm() {
    static const KvmSystem system(kvm_device());
    return system;
}

Watchdog::Watchdog(std::chrono::seconds limit, std::string what) {
    thread_ = std::thread([this, limit, what = std::move(what)] {
        std::unique_lock lock(mutex_);
        if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
        std::fprintf(stderr,
                     "\nFAILED: %s did not finish within %lld s (hung?); aborting the tests\n",
                     what.c_str(), static_cast<long long>(limit.count()));
        std::fflush(stderr);
        std::_Exit(1);
    });
}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(mutex_);
        done_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

GuestRun run_guest(const GuestOptions& options) {
    VmConfig config;
    config.mem_size = options.mem_size;
    config.vcpus = options.vcpus;
    config.cmdline = options.cmdline;
    config.timeout = options.timeout;
    config.handle_signals = false;
    config.ram = options.ram;
    config.vcpu_cpus = options.vcpu_cpus;
    auto console = std::make_shared<StringConsole>();
    config.console = console;

    Watchdog watchdog(60s, "guest " + options.image + " -- " + options.cmdline);
    auto image = load_image_for(guest_path(options.image), config);
    GuestRun result;
    {
        Vm vm(kvm(), config, image);
        result.exit = vm.run();
        result.counts = vm.exit_counts();
        result.mem_size = vm.boot_ram().size();
        result.backing = vm.boot_ram().block()->backing();
        result.ram_host = reinterpret_cast<std::uintptr_t>(vm.boot_ram().block()->host());
    }
    result.console = console->text();
    return result;
}

std::string describe(const VmExit& exit) {
    return fmt::format("{} (code {}, vcpu {}): {}", to_string(exit.kind), exit.code, exit.vcpu,
                       exit.message.empty() ? "<no message>" : exit.message);
}

std::size_t thread_count() {
    // A runtime may start a helper thread of its own with the first
    // pthread_create (TSan does) and keep it: have it start before the first
    // count, so that a count taken before a test's threads matches one after.
    static const bool runtime_threads_started = [] {
        pid_t tid = 0;
        std::thread([&tid] { tid = static_cast<pid_t>(::syscall(SYS_gettid)); }).join();
        // join returns when the kernel clears the thread's tid, which is
        // before it leaves /proc/self/task: counted now, the finished thread
        // could still be there (a count of 2 before a test, 1 after, seen in
        // CI). Wait until it is gone.
        const auto path = "/proc/self/task/" + std::to_string(tid);
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (::access(path.c_str(), F_OK) == 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(100us);
        return true;
    }();
    (void)runtime_threads_started;
    std::size_t n = 0;
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/proc/self/task"), ::closedir);
    if (!dir) throw std::runtime_error("cannot open /proc/self/task");
    while (dirent* e = ::readdir(dir.get()))
        if (e->d_name[0] != '.') ++n;
    return n;
}

std::size_t thread_count_after_exits(std::size_t expected) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    std::size_t n = thread_count();
    while (n != expected && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
        n = thread_count();
    }
    return n;
}

// ---- Child ----------------------------------------------------------------

namespace {

void check(int rc, const char* what) {
    if (rc != 0) throw std::runtime_error(fmt::format("{}: {}", what, std::strerror(rc)));
}

} // namespace

Child::Child(const std::vector<std::string>& argv) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    if (::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]);
        ::close(out[1]);
        throw std::runtime_error("pipe2 failed");
    }

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    check(posix_spawn_file_actions_init(&actions), "posix_spawn_file_actions_init");
    check(posix_spawnattr_init(&attr), "posix_spawnattr_init");
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    // A clean signal state: nothing blocked, the signals under test at default.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGINT, SIGTERM, SIGUSR1, SIGPIPE, SIGCHLD})
        sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    if (rc != 0) {
        ::close(out_fd_);
        ::close(err_fd_);
        throw std::runtime_error(fmt::format("posix_spawn {}: {}", argv.at(0), std::strerror(rc)));
    }
}

Child::~Child() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        int st;
        while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
        }
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
}

bool Child::pump(int timeout_ms) {
    pollfd fds[2];
    int n = 0;
    int* owners[2];
    std::string* sinks[2];
    if (out_fd_ >= 0) {
        fds[n] = {out_fd_, POLLIN, 0};
        owners[n] = &out_fd_;
        sinks[n++] = &out_;
    }
    if (err_fd_ >= 0) {
        fds[n] = {err_fd_, POLLIN, 0};
        owners[n] = &err_fd_;
        sinks[n++] = &err_;
    }
    if (n == 0) return false;
    int r = ::poll(fds, static_cast<nfds_t>(n), timeout_ms);
    if (r < 0 && errno != EINTR) throw std::runtime_error("poll failed");
    for (int i = 0; i < n && r > 0; ++i) {
        if (fds[i].revents == 0) continue;
        char buf[4096];
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        if (got > 0) {
            sinks[i]->append(buf, static_cast<std::size_t>(got));
        } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
            ::close(*owners[i]);
            *owners[i] = -1;
        }
    }
    return out_fd_ >= 0 || err_fd_ >= 0;
}

bool Child::wait_for_stdout(const std::string& needle, std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (out_.find(needle) == std::string::npos) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || out_fd_ < 0) return false;
        pump(static_cast<int>(std::min<long long>(left.count(), 100)));
    }
    return true;
}

void Child::send(int sig) const {
    if (!reaped_) ::kill(pid_, sig);
}

ProcessResult Child::finish(std::chrono::milliseconds limit) {
    ProcessResult result;
    auto deadline = std::chrono::steady_clock::now() + limit;
    auto left_ms = [&] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   deadline - std::chrono::steady_clock::now())
            .count();
    };
    int st = 0;
    bool exited = false;
    while (!exited) {
        if (left_ms() <= 0) {
            ::kill(pid_, SIGKILL);
            result.hung = true;
            while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
            break;
        }
        if (out_fd_ >= 0 || err_fd_ >= 0) {
            pump(static_cast<int>(std::min<long long>(left_ms(), 50)));
        } else {
            ::usleep(2000);
        }
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_)
            exited = true;
        else if (r < 0 && errno != EINTR)
            throw std::runtime_error("waitpid failed");
    }
    reaped_ = true;
    // Whatever is still buffered in the pipes (the child is gone, so EOF comes).
    auto drain_until = std::chrono::steady_clock::now() + 2s;
    while (pump(10) && std::chrono::steady_clock::now() < drain_until) {
    }
    if (WIFEXITED(st))
        result.status = WEXITSTATUS(st);
    else if (WIFSIGNALED(st))
        result.signal = WTERMSIG(st);
    result.out = out_;
    result.err = err_;
    return result;
}

ProcessResult run_minivmm(const std::vector<std::string>& args, std::chrono::milliseconds limit) {
    std::vector<std::string> argv = {MINIVMM_RUN_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    Child child(argv);
    return child.finish(limit);
}

std::string describe(const ProcessResult& r) {
    std::string how = r.hung     ? "HUNG (killed with SIGKILL)"
                      : r.signal ? fmt::format("killed by signal {}", r.signal)
                                 : fmt::format("exit status {}", r.status);
    return fmt::format("{}\n--- stdout ---\n{}\n--- stderr ---\n{}", how, r.out, r.err);
}

std::size_t line_count(const std::string& text) {
    std::size_t n = 0;
    for (char c : text)
        n += c == '\n';
    if (!text.empty() && text.back() != '\n') ++n;
    return n;
}

} // namespace minivmm::test
