/// \file
/// A client of the control socket (README "Control socket"), as minivmm-ctl
/// and the control benchmark use it.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "minivmm/error.hpp"
#include "minivmm/unique_fd.hpp"

namespace minivmm {

/// The socket could not be reached, or the connection failed mid-request
/// (timeout, closed by the VMM, an over-long response).
class ControlError : public Error {
  public:
    using Error::Error;
};

/// One connection to a control socket: owns the socket fd and the bytes
/// read past the last line. One request at a time; not thread-safe (use
/// one client per thread). Move-only.
class ControlClient {
  public:
    /// Connects to the socket at `path`. Every later read or write gives up
    /// after `timeout`.
    /// \throws ControlError when the path is too long or nobody listens.
    explicit ControlClient(const std::string& path,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10));

    /// Sends `line` (a newline is added) and returns the response line
    /// without its newline.
    /// \throws ControlError on a timeout, a closed connection or a response
    /// longer than max_response bytes.
    std::string request(std::string_view line);
    /// Sends raw bytes (pipelining several requests, or a partial line).
    /// \throws ControlError as request().
    void send(std::string_view bytes);
    /// Reads one response line (without its newline).
    /// \throws ControlError as request().
    std::string read_line();

    /// The longest response line accepted, in bytes.
    std::size_t max_response = 64u << 20;

  private:
    UniqueFd fd_;
    std::string path_;
    std::string buffer_; // bytes read past the last line
};

} // namespace minivmm
