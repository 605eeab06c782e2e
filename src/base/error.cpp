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

KvmError::KvmError(std::string call, int err, std::string hint)
    : Error(describe(call, err, hint)), call_(std::move(call)), err_(err), hint_(std::move(hint)) {}

} // namespace minivmm
