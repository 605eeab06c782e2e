/// \file
/// The control socket of a VM (README "Control socket"): JSON commands, one
/// per line, over a UNIX stream socket served on the VM's event loop.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace minivmm {

class Vm;

/// Serves `vm`'s control socket while Vm::run() runs: created before run()
/// and destroyed after it returned (or before it started), and before the
/// Vm. Move-only.
class ControlSocket {
  public:
    /// Creates the socket at `path` (mode 0600) now, so that a bad path fails
    /// before the guest starts. A stale socket file nobody listens on is
    /// replaced; anything else there is refused.
    /// \throws ConfigError naming the path and the reason.
    ControlSocket(Vm& vm, std::string path);
    /// Closes every connection and removes the socket file.
    ~ControlSocket();
    /// Takes over the socket; `other` serves nothing afterwards.
    ControlSocket(ControlSocket&& other) noexcept;
    /// Takes over the socket of `other`, closing this one's first.
    ControlSocket& operator=(ControlSocket&& other) noexcept;
    /// The socket's path.
    const std::string& path() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// Handles one control request line (a JSON object) for `vm` and returns the
/// response line (no newline): what the socket does for each line, usable
/// without one. Bad input gives an error object, never an exception.
/// Thread-safe.
std::string control_request(Vm& vm, std::string_view request);

} // namespace minivmm
