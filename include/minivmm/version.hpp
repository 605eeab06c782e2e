#pragma once

namespace minivmm {
// The library version (CMake project version).
const char* version() noexcept;
} // namespace minivmm
