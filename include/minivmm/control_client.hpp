// A client of the control socket (README "Control socket"): what minivmm-ctl
// and the control benchmark use. One connection, one request at a time.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "minivmm/error.hpp"
#include "minivmm/unique_fd.hpp"

namespace minivmm {

// The socket could not be reached, or the connection failed mid-request.
class ControlError : public Error {
  public:
    using Error::Error;
};

class ControlClient {
  public:
    // Connects to the socket at `path`; throws ControlError. Every later
    // read or write gives up after `timeout`.
    explicit ControlClient(const std::string& path,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

    // Sends `line` (a newline is added) and returns the response line without
    // its newline. Throws ControlError on a timeout, a closed connection or a
    // response line longer than max_response bytes.
    std::string request(std::string_view line);
    // Only sends / only reads one line (pipelining, tests of partial lines).
    void send(std::string_view bytes);
    std::string read_line();

    std::size_t max_response = 64u << 20;

  private:
    UniqueFd fd_;
    std::string path_;
    std::string buffer_; // bytes read past the last line
};

} // namespace minivmm
