// The seccomp allowlists: a forbidden system call ends the process with one
// clear line and status 159; allowed ones (and KVM ioctls) go through. Each
// case runs in a forked child, since a filter cannot be removed.
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "minivmm/seccomp.hpp"

using Catch::Matchers::Contains;

namespace {

struct ChildResult {
    int status = -1; // exit status, or -signal
    std::string err;
};

// Runs body() in a child whose stderr is captured; body's return value is
// the child's exit status.
template <typename Body>
ChildResult in_child(Body body) {
    int pipefd[2];
    REQUIRE(::pipe(pipefd) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(pipefd[1], 2);
        ::close(pipefd[0]);
        ::_exit(body());
    }
    ::close(pipefd[1]);
    ChildResult r;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0)
        r.err.append(buf, static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    int ws = 0;
    ::waitpid(pid, &ws, 0);
    r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -WTERMSIG(ws);
    return r;
}

} // namespace

TEST_CASE("seccomp: a forbidden system call stops the process with a clear line", "[seccomp]") {
    std::vector<minivmm::ThreadRole> roles{minivmm::ThreadRole::vcpu, minivmm::ThreadRole::io};
#if !defined(__SANITIZE_ADDRESS__)
    roles.push_back(minivmm::ThreadRole::vmm); // not installed in ASan builds (LeakSanitizer)
#endif
    for (auto role : roles) {
        CAPTURE(minivmm::to_string(role));
        auto r = in_child([role] {
            minivmm::install_seccomp(role);
            if (::getpid() <= 0) return 3; // allowed
            // socket(2) is on no list: the VMM never opens sockets after set-up
            // (the control socket listens before the filters go on).
            ::socket(AF_INET, SOCK_STREAM, 0);
            return 0; // not reached
        });
        CHECK(r.status == 159);
        CHECK_THAT(r.err, Contains(std::string("the ") + minivmm::to_string(role) + " thread") &&
                              Contains("system call 41") && Contains("--no-seccomp"));
    }
}

TEST_CASE("seccomp: ioctl is limited to KVM's requests", "[seccomp]") {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    // A KVM request (type 0xAE) goes through to the kernel, which refuses it
    // on /dev/null: the filter did not.
    auto kvm = in_child([fd] {
        minivmm::install_seccomp(minivmm::ThreadRole::vcpu);
        return ::ioctl(fd, KVM_GET_API_VERSION, 0) < 0 ? 0 : 4;
    });
    CHECK(kvm.status == 0);
    CHECK(kvm.err.empty());
    // A terminal request is not KVM's: stopped.
    auto tty = in_child([fd] {
        minivmm::install_seccomp(minivmm::ThreadRole::vcpu);
        termios t{};
        ::ioctl(fd, TCGETS, &t);
        return 0;
    });
    CHECK(tty.status == 159);
    CHECK_THAT(tty.err, Contains("system call 16")); // ioctl
    // FIONBIO only on the event loop's list (Asio sets sockets non-blocking).
    auto vmm = in_child([fd] {
        minivmm::install_seccomp(minivmm::ThreadRole::vmm);
        int on = 1;
        ::ioctl(fd, FIONBIO, &on);
        return 0;
    });
    CHECK(vmm.status == 0);
    ::close(fd);
}

TEST_CASE("seccomp: the allowlists are small and nested roles only narrow", "[seccomp]") {
    auto vcpu = minivmm::seccomp_allowlist(minivmm::ThreadRole::vcpu);
    auto io = minivmm::seccomp_allowlist(minivmm::ThreadRole::io);
    auto vmm = minivmm::seccomp_allowlist(minivmm::ThreadRole::vmm);
    CHECK(vcpu.size() < 60);
    CHECK(io.size() < vcpu.size());
    CHECK(vmm.size() < 80);
    // An I/O thread is started by a vCPU thread and inherits its filter: all
    // it needs must be on the vCPU list too.
    for (int nr : io) {
        CAPTURE(nr);
        CHECK(std::find(vcpu.begin(), vcpu.end(), nr) != vcpu.end());
    }
    // An I/O thread under both filters still works.
    auto r = in_child([] {
        minivmm::install_seccomp(minivmm::ThreadRole::vcpu);
        minivmm::install_seccomp(minivmm::ThreadRole::io);
        char b = 'x';
        return ::write(2, &b, 0) == 0 ? 0 : 5;
    });
    CHECK(r.status == 0);
}
