/// \file
/// The paravirtual block device's ABI (minivmm-defined hypercalls 17, 18, 20
/// and 21, and the request rings; see README.md, "Block device"). Shared by
/// the VMM and tests; guests use the C mirror in guest/workloads/blk.h.
#pragma once

#include <cstdint>

/// The paravirtual block device's guest ABI: hypercall numbers and layouts.
namespace minivmm::blk {

inline constexpr std::uint16_t kInfoNr = 17;      ///< blk_info
inline constexpr std::uint16_t kIoNr = 18;        ///< blk_io
inline constexpr std::uint16_t kRingSetupNr = 20; ///< blk_ring_setup
inline constexpr std::uint16_t kKickNr = 21;      ///< blk_kick: the doorbell
inline constexpr std::uint64_t kSectorSize = 512; ///< bytes per sector

/// nr 17: the VMM fills it in.
struct Info {
    std::uint64_t sectors; ///< disk size in 512-byte sectors
    std::uint64_t flags;   ///< kFlagReadOnly, kFlagRing
};
inline constexpr std::uint64_t kFlagReadOnly = 1; ///< Info::flags: the disk is read-only
inline constexpr std::uint64_t kFlagRing = 2;     ///< request rings (20, 21) are served

/// nr 18: the guest fills op..len, the VMM writes status.
struct Io {
    std::uint64_t op;     ///< Op
    std::uint64_t sector; ///< first sector (read/write)
    std::uint64_t buf;    ///< guest-physical address of the buffer (read/write)
    std::uint64_t len;    ///< bytes: a multiple of 512, > 0 (read/write)
    std::uint64_t status; ///< Status, written by the VMM
};

/// Io::op and RingEntry::op.
enum Op : std::uint64_t {
    kRead = 0,  ///< disk to guest RAM
    kWrite = 1, ///< guest RAM to disk
    kFlush = 2  ///< fdatasync of the backing file
};

/// Io::status and RingEntry::status (and RingSetup::status).
enum Status : std::uint64_t {
    kOk = 0,         ///< done
    kBadOp = 1,      ///< op is not read, write or flush
    kOutOfRange = 2, ///< [sector, sector + len/512) is not inside the disk
    kBadBuffer = 3,  ///< [buf, buf + len) is not guest RAM (or, for a read, in the reserved 1 MiB)
    kIoError = 4,    ///< the host read/write/fdatasync failed
    kReadOnly = 5,   ///< a write to a read-only disk
    kBadLength = 6,  ///< len is 0 or not a multiple of 512
    kBadRing = 7,    ///< blk_ring_setup: bad address, size or alignment
    kBadQueue = 8,   ///< blk_ring_setup: queue out of range or already set up
};

/// nr 20: the guest fills ring..queue, the VMM writes status. The ring must
/// be 64-byte aligned, below 4 GiB (the doorbell carries its address in 32
/// bits), outside the reserved first MiB, and entries a power of two up to
/// kMaxRingEntries; queue < the number of vCPUs, each set up once.
struct RingSetup {
    std::uint64_t ring;    ///< guest-physical address of the RingHeader
    std::uint64_t entries; ///< RingEntry slots after the header
    std::uint64_t queue;   ///< 0 .. vCPUs - 1
    std::uint64_t status;  ///< kOk, kBadRing or kBadQueue
};
inline constexpr std::uint64_t kMaxRingEntries = 1024; ///< largest RingSetup::entries

/// A request ring: this header, then `entries` RingEntry. Counters are
/// free-running; request k lives in slot k % entries. The guest owns
/// sq_tail and the entries' request fields, the VMM sq_head, need_kick and
/// the entries' status (written last, with release order: the completion).
struct RingHeader {
    std::uint64_t entries;   ///< as set up (informational; the VMM keeps its own copy)
    std::uint64_t queue;     ///< as set up (informational)
    std::uint64_t sq_tail;   ///< guest: requests submitted
    std::uint64_t pad0[5];   ///< sq_head on a cache line of its own
    std::uint64_t sq_head;   ///< VMM: requests taken
    std::uint64_t need_kick; ///< VMM: 1 = not polling, the guest must ring the doorbell
    std::uint64_t pad1[6];   ///< to 128 bytes
};
/// One request slot of a ring (64 bytes).
struct RingEntry {
    /// As in Io.
    ///@{
    std::uint64_t op, sector, buf, len;
    ///@}
    std::uint64_t status; ///< kPending until the VMM completes it
    std::uint64_t tag;    ///< the guest's, untouched
    std::uint64_t pad[2]; ///< to 64 bytes
};
inline constexpr std::uint64_t kPending = ~std::uint64_t{0}; ///< RingEntry::status in flight

// nr 21 (blk_kick): an outl of the ring's address: "queue has new requests".
// Served on the vCPU thread (exit mode) or bound to an ioeventfd, so that the
// exit ends in the kernel and a host I/O thread serves the queue.

static_assert(sizeof(RingSetup) == 32 && sizeof(RingHeader) == 128 && sizeof(RingEntry) == 64);

static_assert(sizeof(Info) == 16 && sizeof(Io) == 40);

} // namespace minivmm::blk
