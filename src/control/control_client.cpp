#include "minivmm/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace minivmm {

ControlClient::ControlClient(const std::string& path, std::chrono::milliseconds timeout)
    : path_(path) {
    sockaddr_un addr{};
    if (path.empty() || path.size() >= sizeof addr.sun_path)
        throw ControlError(fmt::format("control socket '{}': a socket path is 1 to {} bytes", path,
                                       sizeof addr.sun_path - 1));
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd_) throw ControlError(fmt::format("socket: {}", std::strerror(errno)));
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
        throw ControlError(fmt::format("cannot connect to control socket {}: {}{}", path,
                                       std::strerror(errno),
                                       errno == ENOENT || errno == ECONNREFUSED
                                           ? " (is a VM serving its control socket there?)"
                                           : ""));
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void ControlClient::send(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            throw ControlError(fmt::format("control socket {}: send: {}", path_,
                                           errno == EAGAIN ? "timed out" : std::strerror(errno)));
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
}

std::string ControlClient::read_line() {
    for (;;) {
        auto nl = buffer_.find('\n');
        if (nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return line;
        }
        if (buffer_.size() > max_response)
            throw ControlError(fmt::format("control socket {}: response longer than {} bytes",
                                           path_, max_response));
        char chunk[65536];
        ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            throw ControlError(
                fmt::format("control socket {}: {}", path_,
                            errno == EAGAIN ? "no response (timed out)" : std::strerror(errno)));
        if (n == 0)
            throw ControlError(
                fmt::format("control socket {}: the VMM closed the connection", path_));
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
}

std::string ControlClient::request(std::string_view line) {
    std::string out(line);
    out += '\n';
    send(out);
    return read_line();
}

} // namespace minivmm
