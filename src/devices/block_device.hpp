// The paravirtual block device: a host file exposed as a disk of 512-byte
// sectors through minivmm-defined hypercalls (include/minivmm/abi/block.h,
// README "Block device"):
//  - blk_info (17) and blk_io (18): one request per hypercall, served on the
//    vCPU thread (the baseline: one exit to user space per request);
//  - blk_ring_setup (20) and blk_kick (21): a request ring per queue in guest
//    memory and a doorbell. Depending on BlockIoMode the doorbell exits to
//    user space and the vCPU thread serves the queue (exit), or is bound to
//    an ioeventfd so that the exit ends in the kernel and a host I/O thread
//    serves the queue (ioeventfd), which may also keep polling the ring and
//    tell the guest that no doorbell is needed (poll), as virtio's
//    notification suppression does.
//
// Every request is validated (op, length, sector range, buffer inside guest
// RAM) and a bad one fails alone with a status; reads and writes are
// pread/pwrite straight between the file and guest RAM, and a flush is an
// fdatasync that has returned before the request completes (no write-back
// cache in the VMM). An argument block outside guest RAM stops the guest
// like any bad hypercall.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "minivmm/block_io_mode.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/event_fd.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/latency_histogram.hpp"
#include "minivmm/unique_fd.hpp"
#include "vcpu/vcpu_host.hpp"

namespace minivmm {

class KvmVm;

class BlockDevice final : public IoDevice {
  public:
    // Opens `path` (which must exist and be a regular file or a block device)
    // read-write, or read-only when `read_only`. The disk has size / 512
    // sectors (a partial last sector is not exposed). Up to `queues` rings
    // can be set up. `vm` binds doorbells to ioeventfds; without it (tests)
    // a doorbell reaches access() and wakes the queue's I/O thread from
    // there. Throws ConfigError.
    BlockDevice(const BootRam& mem, VcpuHost& host, const std::string& path, bool read_only,
                BlockIoOptions io = {}, unsigned queues = 1, const KvmVm* vm = nullptr);
    ~BlockDevice() override;
    BlockDevice(const BlockDevice&) = delete;
    BlockDevice& operator=(const BlockDevice&) = delete;

    // Offset = hypercall number - blk::kInfoNr: 0 blk_info, 1 blk_io,
    // 3 blk_ring_setup, 4 blk_kick (the router passes these four).
    ExitAction access(const IoAccess& access) override;

    std::uint64_t sectors() const noexcept { return sectors_; }
    bool read_only() const noexcept { return read_only_; }
    const BlockIoOptions& io_options() const noexcept { return io_; }

    // Requests served through rings, doorbells that reached user space
    // (an exit), doorbells signalled on the eventfds (ioeventfd: ended in
    // the kernel), I/O-thread wake-ups, summed over queues; and writes whose
    // write-back was started at once (eager_writeback), in every mode.
    struct Counters {
        std::uint64_t ring_requests = 0, user_kicks = 0, doorbell_signals = 0, wakeups = 0;
        std::uint64_t eager_writebacks = 0;
        // Every request (hypercall or ring): completed reads, writes and
        // flushes, failed ones, and the service time of each.
        std::uint64_t reads = 0, writes = 0, flushes = 0, errors = 0;
        LatencySnapshot latency;
    };
    Counters counters() const noexcept;

    // Stops the I/O threads (also done by the destructor). Idempotent.
    void stop() noexcept;
    // I/O threads started from now on confine themselves with the io
    // seccomp allowlist before serving anything.
    void set_seccomp(bool on) noexcept { seccomp_ = on; }

  private:
    struct Queue;
    struct Worker;
    ExitAction fail(const IoAccess& access, const std::string& why);
    std::uint64_t serve(std::uint64_t op, std::uint64_t sector, std::uint64_t buf,
                        std::uint64_t len) noexcept;
    std::uint64_t setup_ring(std::uint64_t ring, std::uint64_t entries, std::uint64_t queue);
    // Serves every request submitted to `q` so far; returns how many.
    std::uint64_t drain(Queue& q) noexcept;
    // Stores `v` into a field of q's ring header (release), then marks its
    // page dirty: every VMM store into guest RAM is marked once made.
    void publish(Queue& q, std::uint64_t* field, std::uint64_t v) noexcept;
    void io_thread(Worker& w) noexcept;
    // The worker that serves queue `index`, started on first use.
    Worker& worker_for(std::uint64_t index);

    const BootRam& mem_;
    VcpuHost& host_;
    UniqueFd fd_;
    std::uint64_t sectors_ = 0;
    bool read_only_;
    BlockIoOptions io_;
    const KvmVm* vm_;
    mutable std::mutex setup_mutex_; // ring set-up vs kicks from other vCPUs and counters()
    std::vector<std::unique_ptr<Queue>> queues_;
    // Each set-up ring's [start, end) in guest-physical memory, for the
    // request buffer check (read by every serving thread; 0, 0 = none yet).
    std::vector<std::atomic<std::uint64_t>> ring_start_, ring_end_;
    std::vector<std::unique_ptr<Worker>> workers_; // one per queue, or one shared
    std::atomic<bool> stopping_{false};
    bool seccomp_ = false;
    std::atomic<std::uint64_t> eager_writebacks_{0};
    std::atomic<std::uint64_t> reads_{0}, writes_{0}, flushes_{0}, errors_{0};
    LatencyHistogram latency_;
    std::uint64_t serve_io(std::uint64_t op, std::uint64_t sector, std::uint64_t buf,
                           std::uint64_t len) noexcept;
};

// Owns the whole hypercall port range when there is a disk: the block
// device's hypercalls (17, 18, 20, 21) go to it, the rest to the ABI's
// hypercall device, which reads the number from the offset. (The port bus
// needs every byte of an access inside one range, so the ranges cannot just
// be split around the disk's ports.)
class BlockHypercallRouter final : public IoDevice {
  public:
    BlockHypercallRouter(IoDevice& hypercalls, BlockDevice& disk) noexcept
        : hypercalls_(hypercalls), disk_(disk) {}
    ExitAction access(const IoAccess& access) override;

  private:
    IoDevice& hypercalls_;
    BlockDevice& disk_;
};

} // namespace minivmm
