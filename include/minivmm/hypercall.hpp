/// \file
/// Hypercall numbers of the guest ABI (docs/guest-abi.md, "Hypercalls"),
/// from the C header minivmm/abi/hypercall.h that guests include too.
#pragma once

#include <cstdint>

#include "minivmm/abi/hypercall.h"

namespace minivmm {

/// Hypercall numbers (port = layout::kHypercallPortBase + number). The
/// argument blocks are the mvg_hc_* structures of minivmm/abi/hypercall.h.
enum class Hypercall : std::uint16_t {
    write = MVG_HC_WRITE, ///< console output
    exit = MVG_HC_EXIT,   ///< stop the VM with a code
    halt = MVG_HC_HALT,   ///< park this vCPU; all parked = exit(0)
    // 17, 18: the block device (minivmm/block_abi.hpp)
    yield = MVG_HC_YIELD, ///< give the host CPU back (sched_yield)
    // 20, 21: block request rings (minivmm/block_abi.hpp)
    mem_map = MVG_HC_MEM_MAP,     ///< list hot-added RAM
    mem_claim = MVG_HC_MEM_CLAIM, ///< mark hot-added RAM in use or not
};

} // namespace minivmm
