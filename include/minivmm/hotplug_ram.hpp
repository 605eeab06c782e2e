/// \file
/// A region of RAM added while the VM runs.
#pragma once

#include <cstdint>

namespace minivmm {

/// One region of hot-added RAM (Vm::add_ram).
struct HotplugRam {
    std::uint64_t gpa = 0;  ///< guest-physical start
    std::uint64_t size = 0; ///< bytes
    bool claimed = false;   ///< by the guest (hypercall 23): cannot be removed
};

} // namespace minivmm
