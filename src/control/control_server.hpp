// The control socket (README "Control socket"): a UNIX stream socket served
// on the VM's Boost.Asio loop, one JSON request per line in, one response per
// line out, several clients at once.
//
// Each connection handles its lines one at a time and reads the next only
// once the previous response is written, so a client that floods requests
// or never reads its responses is slowed down by its own socket buffer and
// never makes the VMM buffer more than one response for it. A line over
// kControlMaxLine gets an error and is skipped up to its newline; the
// connection stays usable.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

namespace minivmm {

class ControlServer {
  public:
    static constexpr std::size_t kMaxClients = 16;
    using Handler = std::function<std::string(std::string_view line)>;

    // Creates and binds the socket at `path` (mode 0600) now, so that a bad
    // path fails before the guest starts; throws ConfigError. A stale socket
    // file (nobody accepting) is replaced; anything else at `path` is refused.
    ControlServer(boost::asio::io_context& io, std::string path, Handler handler);
    ~ControlServer(); // closes everything and removes the socket file
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // On the loop's thread: start accepting / stop accepting and close every
    // connection (each after the response it is writing, if any).
    void start();
    void shutdown();
    const std::string& path() const noexcept { return path_; }

  private:
    class Session;
    void accept();

    std::string path_;
    Handler handler_;
    boost::asio::local::stream_protocol::acceptor acceptor_;
    std::set<std::shared_ptr<Session>> sessions_;
    bool stopped_ = false;
};

} // namespace minivmm
