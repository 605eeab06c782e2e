// The paravirtual block device's hypercall ABI (minivmm-defined hypercalls
// 17 and 18; see README.md, "Block device"). Shared by the VMM and tests;
// guests use the C mirror in guest/workloads/blk.h.
#pragma once

#include <cstdint>

namespace minivmm::blk {

inline constexpr std::uint16_t kInfoNr = 17; // blk_info
inline constexpr std::uint16_t kIoNr = 18;   // blk_io
inline constexpr std::uint64_t kSectorSize = 512;

// nr 17: the VMM fills it in.
struct Info {
    std::uint64_t sectors; // disk size in 512-byte sectors
    std::uint64_t flags;   // kFlagReadOnly
};
inline constexpr std::uint64_t kFlagReadOnly = 1;

// nr 18: the guest fills op..len, the VMM writes status.
struct Io {
    std::uint64_t op;     // Op
    std::uint64_t sector; // first sector (read/write)
    std::uint64_t buf;    // guest-physical address of the buffer (read/write)
    std::uint64_t len;    // bytes: a multiple of 512, > 0 (read/write)
    std::uint64_t status; // Status, written by the VMM
};

enum Op : std::uint64_t { kRead = 0, kWrite = 1, kFlush = 2 };

enum Status : std::uint64_t {
    kOk = 0,
    kBadOp = 1,      // op is not read, write or flush
    kOutOfRange = 2, // [sector, sector + len/512) is not inside the disk
    kBadBuffer = 3,  // [buf, buf + len) is not guest RAM (or, for a read, in the reserved 1 MiB)
    kIoError = 4,    // the host read/write/fdatasync failed
    kReadOnly = 5,   // a write to a read-only disk
    kBadLength = 6,  // len is 0 or not a multiple of 512
};

static_assert(sizeof(Info) == 16 && sizeof(Io) == 40);

} // namespace minivmm::blk
