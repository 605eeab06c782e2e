// minivmm-ctl's request building (kept apart from main so tests can drive it).
#pragma once

#include <string>
#include <variant>
#include <vector>

namespace minivmm::cli {

// {"id":1,"command":COMMAND,"arguments":{...}} from KEY=VALUE words. A VALUE
// is a size or number ("64M", "0x40000000", "4096"), true/false, any JSON
// value, or else a string. Returns the request line, or an error message.
struct CtlUsageError {
    std::string message;
};
std::variant<std::string, CtlUsageError> build_ctl_request(const std::string& command,
                                                           const std::vector<std::string>& args);

} // namespace minivmm::cli
