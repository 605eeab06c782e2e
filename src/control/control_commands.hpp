// The control protocol's commands (README "Control socket"): one JSON
// request object in, one JSON response object out, over the public Vm API.
#pragma once

#include <string>
#include <string_view>

namespace minivmm {

class Vm;

// Requests longer than this (bytes, without the newline) are refused.
inline constexpr std::size_t kControlMaxLine = 64 * 1024;
// Requests whose JSON nests arrays/objects deeper than this are refused.
inline constexpr int kControlMaxDepth = 64;

// Handles one request line; never throws (bad input gives an error object).
std::string handle_control_request(Vm& vm, std::string_view line);

// The error response for a request that never reached a command (a line
// over the limit, a connection refused): {"id":null,"error":{...}}.
std::string control_error_line(std::string_view error_class, std::string_view desc);

} // namespace minivmm
