/// \file
/// How block requests reach the VMM (README "Block device", "Request
/// rings"): the knob behind `minivmm-run --blk-io=...` and
/// VmConfig::disk_io.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace minivmm {

/// How block requests reach the VMM.
enum class BlockIoMode {
    hypercall, ///< no rings: one blk_io hypercall, one exit to user space, per request
    exit,      ///< rings; the doorbell exits to user space and the vCPU thread serves the queue
    ioeventfd, ///< rings; the doorbell is an ioeventfd (the exit ends in the kernel) and a host
               ///< I/O thread per queue serves it
    poll,      ///< as ioeventfd, and the I/O thread keeps polling the ring for a while after
               ///< each request, telling the guest (need_kick = 0) that it needs no doorbell
};

/// The block device's request path: mode and I/O threads (a value type).
struct BlockIoOptions {
    BlockIoMode mode = BlockIoMode::poll; ///< how requests reach the VMM
    /// poll: how long an I/O thread watches an idle ring before it sleeps.
    std::chrono::microseconds poll_time{200};
    /// ioeventfd/poll: run the I/O threads SCHED_FIFO (priority 1), so that a
    /// doorbell preempts a vCPU thread spinning on its completion at once
    /// instead of after the scheduler's slice. Needs CAP_SYS_NICE: `fifo`
    /// warns when it cannot have it, `automatic` quietly stays SCHED_OTHER.
    enum class Priority {
        automatic, ///< SCHED_FIFO when permitted, else SCHED_OTHER without a warning
        fifo,      ///< SCHED_FIFO; a warning (and SCHED_OTHER) when not permitted
        normal     ///< SCHED_OTHER
    };
    Priority priority = Priority::automatic; ///< scheduling of the I/O threads
    /// ioeventfd/poll: one I/O thread for every queue (the default: measured
    /// steadier and faster on 2 cores, where every extra spinning thread
    /// competes with the vCPUs), or one per queue.
    bool shared_thread = true;
    /// Every mode: start write-back of each written range at once
    /// (sync_file_range SYNC_FILE_RANGE_WRITE, which does not wait), so that
    /// a later flush finds the data already on its way to the disk instead of
    /// writing back everything since the last flush while the guest waits.
    /// The flush itself is unchanged (fdatasync), so is durability; the cost
    /// is an earlier, unmerged disk write per request, which a page rewritten
    /// before the next flush pays more than once. Off by default: on fileio
    /// flushes got cheaper, writes dearer, and the guest slower overall
    /// (docs/benchmarks.md, "Knobs").
    bool eager_writeback = false;
};

/// "hypercall", "exit", "ioeventfd", "poll"; nullopt for anything else.
std::optional<BlockIoMode> parse_block_io_mode(std::string_view name) noexcept;
/// The name parse_block_io_mode() accepts for `mode`.
const char* to_string(BlockIoMode mode) noexcept;

} // namespace minivmm
