#include "control/control_server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "control/control_commands.hpp"
#include "minivmm/error.hpp"
#include "minivmm/log.hpp"
#include "minivmm/unique_fd.hpp"

namespace minivmm {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

namespace {

// Is something accepting connections on the socket at `path`?
bool socket_in_use(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
}

} // namespace

class ControlServer::Session : public std::enable_shared_from_this<Session> {
  public:
    Session(stream::socket socket, ControlServer& server)
        : socket_(std::move(socket)), server_(server), grace_(socket_.get_executor()) {}

    void start() { next(); }

    // Closes now, or after the response being written, but no later than
    // kCloseGrace: a client that stopped reading must not keep a stopping
    // VMM's loop alive.
    void close_soon() {
        closing_ = true;
        if (!writing_) return close();
        grace_.expires_after(kCloseGrace);
        grace_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
            if (!ec) self->close(); // cancels the write; its handler finds the socket closed
        });
    }

  private:
    // Handles the next complete line, or reads more.
    void next() {
        if (closing_) return close();
        for (;;) {
            auto nl = input_.find('\n');
            if (nl == std::string::npos) break;
            std::string line = input_.substr(0, nl);
            input_.erase(0, nl + 1);
            if (discarding_) { // the end of a line that was too long
                discarding_ = false;
                continue;
            }
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.find_first_not_of(" \t") == std::string::npos) continue; // blank line
            return respond(server_.handler_(line));
        }
        if (!discarding_ && input_.size() > kControlMaxLine) {
            // Refuse it now (its end may be far away) and skip up to its newline.
            discarding_ = true;
            input_.clear();
            return respond(control_error_line(
                "LineTooLong", fmt::format("a request line is at most {} bytes; this one was "
                                           "skipped up to its newline",
                                           kControlMaxLine)));
        }
        if (discarding_) input_.clear();
        read();
    }

    void read() {
        socket_.async_read_some(
            asio::buffer(chunk_),
            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                if (ec) return self->close(); // disconnected, or shut down
                self->input_.append(self->chunk_.data(), n);
                self->next();
            });
    }

    void respond(std::string line) {
        output_ = std::move(line);
        output_ += '\n';
        writing_ = true;
        asio::async_write(
            socket_, asio::buffer(output_),
            [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                self->writing_ = false;
                if (ec) return self->close();
                self->next();
            });
    }

    void close() {
        boost::system::error_code ignored;
        grace_.cancel();
        socket_.shutdown(stream::socket::shutdown_both, ignored);
        socket_.close(ignored);
        server_.sessions_.erase(shared_from_this());
    }

    static constexpr auto kCloseGrace = std::chrono::seconds(2);
    stream::socket socket_;
    ControlServer& server_;
    asio::steady_timer grace_;
    std::array<char, 4096> chunk_{};
    std::string input_, output_;
    bool discarding_ = false, writing_ = false, closing_ = false;
};

ControlServer::ControlServer(asio::io_context& io, std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)), acceptor_(io) {
    if (path_.empty() || path_.size() >= sizeof(sockaddr_un{}.sun_path))
        throw ConfigError(ConfigError::Subject::control_socket,
                          fmt::format("'{}': a socket path is 1 to {} bytes", path_,
                                      sizeof(sockaddr_un{}.sun_path) - 1));
    struct stat st {};
    if (::lstat(path_.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw ConfigError(
                ConfigError::Subject::control_socket,
                fmt::format("{}: exists and is not a socket; not replacing it", path_));
        if (socket_in_use(path_))
            throw ConfigError(ConfigError::Subject::control_socket,
                              fmt::format("{}: another process is serving it", path_));
        ::unlink(path_.c_str()); // stale: left by a VMM that died
    }
    boost::system::error_code ec;
    acceptor_.open(stream(), ec);
    if (!ec) {
        // Mode 0600 from the start: no window in which others could connect.
        mode_t old = ::umask(0177);
        acceptor_.bind(stream::endpoint(path_), ec);
        ::umask(old);
    }
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
        throw ConfigError(ConfigError::Subject::control_socket,
                          fmt::format("{}: cannot listen: {}", path_, ec.message()));
    ::fcntl(acceptor_.native_handle(), F_SETFD, FD_CLOEXEC);
}

ControlServer::~ControlServer() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    ::unlink(path_.c_str());
}

void ControlServer::start() {
    accept();
}

void ControlServer::accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, stream::socket socket) {
        if (ec) {
            if (ec == asio::error::operation_aborted || stopped_) return;
            logger().warn("control socket {}: accept failed: {}", path_, ec.message());
            return accept();
        }
        if (stopped_) return;
        if (sessions_.size() >= kMaxClients) {
            // Tell it why, best effort, then hang up.
            auto line = std::make_shared<std::string>(
                control_error_line("TooManyClients",
                                   fmt::format("at most {} clients at once", kMaxClients)) +
                "\n");
            auto sock = std::make_shared<stream::socket>(std::move(socket));
            asio::async_write(*sock, asio::buffer(*line),
                              [line, sock](const boost::system::error_code&, std::size_t) {
                                  boost::system::error_code ignored;
                                  sock->close(ignored);
                              });
        } else {
            auto session = std::make_shared<Session>(std::move(socket), *this);
            sessions_.insert(session);
            session->start();
        }
        accept();
    });
}

void ControlServer::shutdown() {
    stopped_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    auto sessions = sessions_; // close_soon may erase
    for (const auto& s : sessions)
        s->close_soon();
}

} // namespace minivmm
