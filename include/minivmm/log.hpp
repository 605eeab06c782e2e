/// \file
/// The library's logger: spdlog, named "minivmm", writing to stderr (never to
/// stdout, which belongs to the guest console). Default level: warn.
#pragma once

#include <spdlog/logger.h>

namespace minivmm {

/// The library's logger, created on first use (thread-safe); it lives until
/// the program ends. Set its level or pattern as you like.
spdlog::logger& logger();

} // namespace minivmm
