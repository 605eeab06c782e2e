/// \file
/// The library's version.
#pragma once

/// libminivmm: a C++20 virtual machine monitor library over Linux /dev/kvm.
namespace minivmm {
/// The library version (the CMake project version, e.g. "0.1.0"). Thread-safe.
const char* version() noexcept;
} // namespace minivmm
