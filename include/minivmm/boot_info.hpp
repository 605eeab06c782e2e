/// \file
/// The boot info block of the guest ABI, as the guest sees it at RDI
/// (docs/guest-abi.md). Its layout is defined once, in minivmm/abi/boot_info.h.
#pragma once

#include <cstdint>

#include "minivmm/abi/boot_info.h"

namespace minivmm {

/// The boot info block, at layout::kBootInfo in guest RAM; the guest gets its
/// address in RDI. The C structure of the ABI header, shared with guests.
using BootInfo = ::mvg_boot_info;

inline constexpr std::uint64_t kBootMagic = MVG_BOOT_MAGIC;    ///< BootInfo::magic
inline constexpr std::uint64_t kAbiVersion = MVG_BOOT_VERSION; ///< BootInfo::version

} // namespace minivmm
