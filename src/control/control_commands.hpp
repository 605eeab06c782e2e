// The control protocol's commands (README "Control socket"): one JSON
// request object in, one JSON response object out, over the public Vm API.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace minivmm {

// Requests longer than this (bytes, without the newline) are refused.
inline constexpr std::size_t kControlMaxLine = 64 * 1024;
// Requests whose JSON nests arrays/objects deeper than this are refused.
inline constexpr int kControlMaxDepth = 64;

// One request line is handled by control_request (minivmm/control_socket.hpp).

// The error response for a request that never reached a command (a line
// over the limit, a connection refused): {"id":null,"error":{...}}.
std::string control_error_line(std::string_view error_class, std::string_view desc);

} // namespace minivmm
