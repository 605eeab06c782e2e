#include <cstring>

#include <fmt/format.h>

#include "minivmm/error.hpp"

namespace minivmm {

namespace {
std::string describe(const std::string& call, int err, const std::string& hint) {
    auto text = fmt::format("{} failed: {}", call, std::strerror(err));
    if (!hint.empty()) text += fmt::format(" ({})", hint);
    return text;
}
} // namespace

SystemError::SystemError(std::string call, int err, std::string hint)
    : Error(describe(call, err, hint)), call_(std::move(call)), err_(err), hint_(std::move(hint)) {}

namespace {
const char* subject_name(ConfigError::Subject subject) noexcept {
    switch (subject) {
    case ConfigError::Subject::general:
        break;
    case ConfigError::Subject::disk:
        return "disk ";
    case ConfigError::Subject::control_socket:
        return "control socket ";
    }
    return "";
}
} // namespace

ConfigError::ConfigError(Subject subject, std::string detail)
    : Error(subject_name(subject) + detail), subject_(subject), detail_(std::move(detail)) {}

} // namespace minivmm
