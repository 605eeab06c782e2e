/// \file
/// The paravirtual block device's ABI (minivmm-defined hypercalls 17, 18, 20
/// and 21, and the request rings; docs/guest-abi.md, "Block device"): C++
/// names for what the C header minivmm/abi/block.h defines once, for guests
/// and the VMM alike.
#pragma once

#include <cstdint>

#include "minivmm/abi/block.h"

/// The paravirtual block device's guest ABI: hypercall numbers and layouts.
namespace minivmm::blk {

inline constexpr std::uint16_t kInfoNr = BLK_HC_INFO;            ///< blk_info
inline constexpr std::uint16_t kIoNr = BLK_HC_IO;                ///< blk_io
inline constexpr std::uint16_t kRingSetupNr = BLK_HC_RING_SETUP; ///< blk_ring_setup
inline constexpr std::uint16_t kKickNr = BLK_HC_KICK;            ///< blk_kick: the doorbell
inline constexpr std::uint64_t kSectorSize = BLK_SECTOR_SIZE;    ///< bytes per sector

using Info = ::blk_info;                                          ///< nr 17: the VMM fills it in
inline constexpr std::uint64_t kFlagReadOnly = BLK_FLAG_READONLY; ///< Info::flags: read-only disk
inline constexpr std::uint64_t kFlagRing = BLK_FLAG_RING;         ///< rings (20, 21) are served

using Io = ::blk_io; ///< nr 18: the guest fills op..len, the VMM writes status

/// Io::op and RingEntry::op.
enum Op : std::uint64_t {
    kRead = BLK_OP_READ,   ///< disk to guest RAM
    kWrite = BLK_OP_WRITE, ///< guest RAM to disk
    kFlush = BLK_OP_FLUSH  ///< fdatasync of the backing file
};

/// Io::status and RingEntry::status (and RingSetup::status).
enum Status : std::uint64_t {
    kOk = BLK_OK,                ///< done
    kBadOp = BLK_E_BAD_OP,       ///< op is not read, write or flush
    kOutOfRange = BLK_E_RANGE,   ///< [sector, sector + len/512) is not inside the disk
    kBadBuffer = BLK_E_BUFFER,   ///< [buf, buf + len) is not guest RAM (or a read into 1 MiB)
    kIoError = BLK_E_IO,         ///< the host read/write/fdatasync failed
    kReadOnly = BLK_E_READONLY,  ///< a write to a read-only disk
    kBadLength = BLK_E_LENGTH,   ///< len is 0 or not a multiple of 512
    kBadRing = BLK_E_BAD_RING,   ///< blk_ring_setup: bad address, size or alignment
    kBadQueue = BLK_E_BAD_QUEUE, ///< blk_ring_setup: queue out of range or already set up
};

using RingSetup = ::blk_ring_setup; ///< nr 20: the guest fills ring..queue, the VMM writes status
inline constexpr std::uint64_t kMaxRingEntries =
    BLK_RING_MAX_ENTRIES;                              ///< largest RingSetup::entries
using RingHeader = ::blk_ring_header;                  ///< a ring's first 128 bytes
using RingEntry = ::blk_ring_entry;                    ///< one request slot of a ring (64 bytes)
inline constexpr std::uint64_t kPending = BLK_PENDING; ///< RingEntry::status in flight

// nr 21 (blk_kick): an outl of the ring's address: "queue has new requests".
// Served on the vCPU thread (exit mode) or bound to an ioeventfd, so that the
// exit ends in the kernel and a host I/O thread serves the queue.

} // namespace minivmm::blk
