#include "devices/block_device.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "minivmm/block_abi.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/error.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/log.hpp"
#include "minivmm/seccomp.hpp"

namespace minivmm {

std::optional<BlockIoMode> parse_block_io_mode(std::string_view name) noexcept {
    for (auto m :
         {BlockIoMode::hypercall, BlockIoMode::exit, BlockIoMode::ioeventfd, BlockIoMode::poll})
        if (name == to_string(m)) return m;
    return std::nullopt;
}

const char* to_string(BlockIoMode mode) noexcept {
    switch (mode) {
    case BlockIoMode::hypercall:
        return "hypercall";
    case BlockIoMode::exit:
        return "exit";
    case BlockIoMode::ioeventfd:
        return "ioeventfd";
    case BlockIoMode::poll:
        return "poll";
    }
    return "?";
}

// One request ring. The header and entries are guest RAM, which the guest
// writes concurrently: every field is read once, with an atomic load, into
// a local copy before it is checked (no double fetch).
struct BlockDevice::Queue {
    std::uint64_t gpa = 0, entries = 0, index = 0;
    std::uint64_t head = 0; // requests taken: the VMM's own copy of sq_head
    std::uint64_t* sq_tail = nullptr;
    std::uint64_t* sq_head = nullptr;
    std::uint64_t* need_kick = nullptr;
    std::byte* ring = nullptr; // the first entry
    std::mutex drain_mutex;    // exit mode: two vCPUs may kick one queue
    Worker* worker = nullptr;  // ioeventfd/poll: the I/O thread serving it
    bool bound = false;        // doorbell registered with KVM_IOEVENTFD
    std::atomic<std::uint64_t> served{0}, user_kicks{0};
};

// An I/O thread and its doorbell eventfd (the ioeventfd of every queue it
// serves). Queues join while it runs: `queues` is fixed-size, its slots
// published with release order once a queue is fully set up.
struct BlockDevice::Worker {
    explicit Worker(std::size_t slots) : queues(slots) {}
    EventFd doorbell;
    EventFd stop; // wakes the thread to end it
    std::thread thread;
    std::vector<std::atomic<Queue*>> queues;
    std::atomic<std::uint64_t> signals{0}, own_signals{0}, wakeups{0};
};

namespace {

std::uint64_t load(const std::uint64_t* p) noexcept {
    return std::atomic_ref<const std::uint64_t>(*p).load(std::memory_order_acquire);
}
void store(std::uint64_t* p, std::uint64_t v) noexcept {
    std::atomic_ref<std::uint64_t>(*p).store(v, std::memory_order_release);
}

} // namespace

BlockDevice::BlockDevice(const BootRam& mem, VcpuHost& host, const std::string& path,
                         bool read_only, BlockIoOptions io, unsigned queues, const KvmVm* vm)
    : mem_(mem), host_(host), read_only_(read_only), io_(io), vm_(vm) {
    queues_.resize(io.mode == BlockIoMode::hypercall ? 0 : queues);
    ring_start_ = std::vector<std::atomic<std::uint64_t>>(queues_.size());
    ring_end_ = std::vector<std::atomic<std::uint64_t>>(queues_.size());
    // No O_CREAT: the disk must exist. O_CLOEXEC: not inherited by children.
    fd_.reset(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!fd_)
        throw ConfigError(ConfigError::Subject::disk,
                          fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0)
        throw ConfigError(ConfigError::Subject::disk,
                          fmt::format("{}: cannot stat: {}", path, std::strerror(errno)));
    std::uint64_t bytes = 0;
    if (S_ISREG(st.st_mode)) {
        bytes = static_cast<std::uint64_t>(st.st_size);
    } else if (S_ISBLK(st.st_mode)) {
        off_t end = ::lseek(fd_.get(), 0, SEEK_END);
        if (end < 0)
            throw ConfigError(
                ConfigError::Subject::disk,
                fmt::format("{}: cannot find its size: {}", path, std::strerror(errno)));
        bytes = static_cast<std::uint64_t>(end);
    } else {
        throw ConfigError(ConfigError::Subject::disk,
                          fmt::format("{}: not a regular file or block device", path));
    }
    sectors_ = bytes / blk::kSectorSize;
}

BlockDevice::~BlockDevice() {
    stop();
}

void BlockDevice::stop() noexcept {
    if (stopping_.exchange(true)) return;
    std::lock_guard lock(setup_mutex_);
    for (auto& w : workers_) {
        if (!w || !w->thread.joinable()) continue;
        try {
            w->stop.signal();
        } catch (...) {
        }
        w->thread.join();
    }
    for (auto& q : queues_) {
        if (!q || !q->bound || !vm_) continue;
        try {
            vm_->remove_pio_eventfd(layout::kHypercallPortBase + blk::kKickNr, 4,
                                    q->worker->doorbell.fd(), static_cast<std::uint32_t>(q->gpa));
        } catch (const std::exception& e) {
            logger().warn("block device: {}", e.what());
        }
    }
}

BlockDevice::Worker& BlockDevice::worker_for(std::uint64_t index) {
    const std::size_t slot = io_.shared_thread ? 0 : index;
    if (workers_.empty()) workers_.resize(io_.shared_thread ? 1 : queues_.size());
    if (!workers_[slot]) {
        workers_[slot] = std::make_unique<Worker>(queues_.size());
        Worker& w = *workers_[slot];
        w.thread = std::thread([this, &w] { io_thread(w); });
    }
    return *workers_[slot];
}

BlockDevice::Counters BlockDevice::counters() const noexcept {
    Counters c;
    c.eager_writebacks = eager_writebacks_.load(std::memory_order_relaxed);
    c.reads = reads_.load(std::memory_order_relaxed);
    c.writes = writes_.load(std::memory_order_relaxed);
    c.flushes = flushes_.load(std::memory_order_relaxed);
    c.errors = errors_.load(std::memory_order_relaxed);
    c.latency = latency_.snapshot();
    // Ring set-up (a vCPU) grows workers_ and fills queues_ under this lock;
    // this runs on the control thread.
    std::lock_guard lock(setup_mutex_);
    for (const auto& q : queues_) {
        if (!q) continue;
        c.ring_requests += q->served.load(std::memory_order_relaxed);
        c.user_kicks += q->user_kicks.load(std::memory_order_relaxed);
    }
    for (const auto& w : workers_) {
        if (!w) continue;
        c.wakeups += w->wakeups.load(std::memory_order_relaxed);
        c.doorbell_signals += w->signals.load(std::memory_order_relaxed) -
                              w->own_signals.load(std::memory_order_relaxed);
    }
    return c;
}

std::uint64_t BlockDevice::setup_ring(std::uint64_t ring, std::uint64_t entries,
                                      std::uint64_t queue) {
    if (queue >= queues_.size()) return blk::kBadQueue;
    if (entries == 0 || entries > blk::kMaxRingEntries || (entries & (entries - 1)) != 0 ||
        ring % 64 != 0 || ring < layout::kReservedEnd || ring > 0xffffffffull)
        return blk::kBadRing;
    const std::uint64_t bytes = sizeof(blk::RingHeader) + entries * sizeof(blk::RingEntry);
    // The VMM writes the header and the entries' status: the whole ring is
    // writable guest RAM (and stays so: guest RAM is never unplugged under
    // a running VM's rings). Every store the VMM makes into it marks its
    // page dirty once made (publish).
    auto span = mem_.writable_range(ring, bytes);
    if (!span) return blk::kBadRing;
    std::lock_guard lock(setup_mutex_);
    if (queues_[queue]) return blk::kBadQueue;
    for (const auto& q : queues_) // one ring, one queue; rings never overlap
        if (q && q->gpa < ring + bytes &&
            ring < q->gpa + sizeof(blk::RingHeader) + q->entries * sizeof(blk::RingEntry))
            return blk::kBadRing;
    auto q = std::make_unique<Queue>();
    q->gpa = ring;
    q->entries = entries;
    q->index = queue;
    auto* hdr = span->data();
    q->sq_tail = reinterpret_cast<std::uint64_t*>(hdr + offsetof(blk::RingHeader, sq_tail));
    q->sq_head = reinterpret_cast<std::uint64_t*>(hdr + offsetof(blk::RingHeader, sq_head));
    q->need_kick = reinterpret_cast<std::uint64_t*>(hdr + offsetof(blk::RingHeader, need_kick));
    q->ring = hdr + sizeof(blk::RingHeader);
    // Requests submitted before the set-up are not ours: start at the
    // guest's current tail.
    q->head = load(q->sq_tail);
    publish(*q, q->sq_head, q->head);
    publish(*q, q->need_kick, 1);
    if (io_.mode == BlockIoMode::ioeventfd || io_.mode == BlockIoMode::poll) {
        q->worker = &worker_for(queue);
        if (vm_) {
            try {
                // The doorbell's data is the ring's address: one ioeventfd
                // per queue on the one kick port (a shared worker's eventfd
                // under several addresses).
                vm_->add_pio_eventfd(layout::kHypercallPortBase + blk::kKickNr, 4,
                                     q->worker->doorbell.fd(), static_cast<std::uint32_t>(ring));
                q->bound = true;
            } catch (const std::exception& e) {
                // Still correct: the doorbell reaches access(), which wakes
                // the thread; only slower.
                logger().warn("block device: doorbell of queue {} stays a user-space exit: {}",
                              queue, e.what());
            }
        }
        q->worker->queues[queue].store(q.get(), std::memory_order_release);
    }
    // From now on no request may use the ring as its buffer. (A reader that
    // sees the new end before the new start refuses a little more, once.)
    ring_end_[queue].store(ring + bytes, std::memory_order_release);
    ring_start_[queue].store(ring, std::memory_order_release);
    queues_[queue] = std::move(q);
    return blk::kOk;
}

void BlockDevice::publish(Queue& q, std::uint64_t* field, std::uint64_t v) noexcept {
    store(field, v);
    const auto* header = q.ring - sizeof(blk::RingHeader);
    mem_.mark_written(
        q.gpa + static_cast<std::uint64_t>(reinterpret_cast<const std::byte*>(field) - header),
        sizeof v);
}

std::uint64_t BlockDevice::drain(Queue& q) noexcept {
    std::uint64_t n = 0;
    // A guest on other vCPUs can keep submitting for ever: a stopping VM
    // must still get this thread back.
    while (!host_.stopping()) {
        const std::uint64_t tail = load(q.sq_tail);
        if (tail == q.head) break;
        // A tail more than a ring ahead is the guest's bug: serve one ring's
        // worth (each slot once) and skip the rest, which no slot can hold;
        // trusting it would mean up to 2^64 requests for one doorbell.
        const bool overrun = tail - q.head > q.entries;
        const std::uint64_t end = overrun ? q.head + q.entries : tail;
        for (; q.head != end; ++q.head, ++n) {
            const std::uint64_t slot_gpa = q.gpa + sizeof(blk::RingHeader) +
                                           (q.head & (q.entries - 1)) * sizeof(blk::RingEntry);
            auto* e = reinterpret_cast<std::uint64_t*>(q.ring + (q.head & (q.entries - 1)) *
                                                                    sizeof(blk::RingEntry));
            const std::uint64_t op = load(e + 0), sector = load(e + 1), buf = load(e + 2),
                                len = load(e + 3);
            std::uint64_t status = serve(op, sector, buf, len);
            store(e + offsetof(blk::RingEntry, status) / 8, status);
            mem_.mark_written(slot_gpa + offsetof(blk::RingEntry, status), 8);
        }
        if (overrun) q.head = tail;
        publish(q, q.sq_head, q.head);
    }
    q.served.fetch_add(n, std::memory_order_relaxed);
    return n;
}

void BlockDevice::io_thread(Worker& w) noexcept {
    using clock = std::chrono::steady_clock;
    const bool polling = io_.mode == BlockIoMode::poll;
    if (io_.priority != BlockIoOptions::Priority::normal) {
        sched_param sp{};
        sp.sched_priority = 1;
        int rc = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
        if (rc != 0)
            logger().log(io_.priority == BlockIoOptions::Priority::fifo ? spdlog::level::warn
                                                                        : spdlog::level::info,
                         "block device: I/O thread stays SCHED_OTHER: SCHED_FIFO: {}",
                         std::strerror(rc));
    }
    if (seccomp_) {
        try {
            install_seccomp(ThreadRole::io);
        } catch (const std::exception& e) {
            host_.request_stop(
                {VmExit::Kind::vmm_error, 0, -1, fmt::format("block I/O thread: {}", e.what())});
            return;
        }
    }
    // Every queue this worker serves, as published so far.
    auto each = [&w](auto&& fn) {
        for (auto& slot : w.queues)
            if (Queue* q = slot.load(std::memory_order_acquire)) fn(*q);
    };
    auto drain_all = [&] {
        std::uint64_t n = 0;
        each([&](Queue& q) { n += drain(q); });
        return n;
    };
    pollfd fds[2] = {{w.doorbell.fd(), POLLIN, 0}, {w.stop.fd(), POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
        if (fds[1].revents != 0 || stopping_.load(std::memory_order_relaxed)) break;
        w.signals.fetch_add(w.doorbell.consume(), std::memory_order_relaxed);
        w.wakeups.fetch_add(1, std::memory_order_relaxed);
        if (!polling) {
            drain_all();
            continue;
        }
        // Poll: tell the guest not to ring, serve, and keep watching the
        // rings until they have been idle for poll_time; then ask for
        // doorbells again, and look once more (a request may have been
        // submitted between our last look and need_kick = 1: the guest's
        // side of this handshake is store tail, full fence, load need_kick).
        each([this](Queue& q) { publish(q, q.need_kick, 0); });
        auto idle_since = clock::now();
        for (;;) {
            if (drain_all() != 0) {
                idle_since = clock::now();
                continue;
            }
            // drain() serves nothing once the VM is stopping: requests left
            // in a ring would look pending for ever. Sleep until stop().
            if (stopping_.load(std::memory_order_relaxed) || host_.stopping()) break;
            if (clock::now() - idle_since < io_.poll_time) {
                __builtin_ia32_pause();
                continue;
            }
            each([this](Queue& q) { publish(q, q.need_kick, 1); });
            std::atomic_thread_fence(std::memory_order_seq_cst);
            bool pending = false;
            each([&](Queue& q) { pending = pending || load(q.sq_tail) != q.head; });
            if (!pending) break;
            each([this](Queue& q) { publish(q, q.need_kick, 0); });
        }
    }
}

ExitAction BlockDevice::fail(const IoAccess& access, const std::string& why) {
    static constexpr const char* kNames[] = {"blk_info", "blk_io", "?", "blk_ring_setup",
                                             "blk_kick"};
    host_.request_stop(
        {VmExit::Kind::guest_fault, 0, static_cast<int>(access.vcpu_index),
         fmt::format("bad hypercall {} ({}) on vcpu {}: {}", blk::kInfoNr + access.offset,
                     access.offset < 5 ? kNames[access.offset] : "?", access.vcpu_index, why)});
    return ExitAction::stop;
}

std::uint64_t BlockDevice::serve(std::uint64_t op, std::uint64_t sector, std::uint64_t buf,
                                 std::uint64_t len) noexcept {
    const auto t0 = std::chrono::steady_clock::now();
    std::uint64_t status = serve_io(op, sector, buf, len);
    latency_.record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count()));
    auto& counter = status != blk::kOk  ? errors_
                    : op == blk::kRead  ? reads_
                    : op == blk::kWrite ? writes_
                                        : flushes_;
    counter.fetch_add(1, std::memory_order_relaxed);
    return status;
}

std::uint64_t BlockDevice::serve_io(std::uint64_t op, std::uint64_t sector, std::uint64_t buf,
                                    std::uint64_t len) noexcept {
    if (op == blk::kFlush) {
        // Durability: the request completes only once the data is on stable
        // storage (nothing is cached in the VMM).
        int rc;
        do
            rc = ::fdatasync(fd_.get());
        while (rc != 0 && errno == EINTR);
        return rc == 0 ? blk::kOk : blk::kIoError;
    }
    if (op != blk::kRead && op != blk::kWrite) return blk::kBadOp;
    if (op == blk::kWrite && read_only_) return blk::kReadOnly;
    if (len == 0 || len % blk::kSectorSize != 0) return blk::kBadLength;
    // [sector, sector + count) within [0, sectors_), without overflow.
    if (!range_within(sector, len / blk::kSectorSize, sectors_)) return blk::kOutOfRange;
    // Never into or out of a ring: a read would overwrite the entries being
    // served, and either way it is the guest confusing its own structures.
    for (std::size_t i = 0; i < ring_start_.size(); ++i) {
        const std::uint64_t lo = ring_start_[i].load(std::memory_order_acquire),
                            hi = ring_end_[i].load(std::memory_order_acquire);
        if (lo < hi && buf < hi && (lo <= buf || lo - buf < len)) return blk::kBadBuffer;
    }
    std::optional<std::span<std::byte>> span;
    if (op == blk::kRead) {
        // A read writes guest memory: never into the VMM's reserved first
        // MiB (the guest's own page tables and descriptor tables, which it
        // may not write either). Marked dirty below, once written.
        if (buf < layout::kReservedEnd) return blk::kBadBuffer;
        span = mem_.writable_range(buf, len);
    } else {
        span = mem_.range(buf, len);
    }
    if (!span) return blk::kBadBuffer;
    // sector * 512 + len <= sectors_ * 512 <= file size, which fits off_t.
    const auto start = static_cast<off_t>(sector * blk::kSectorSize);
    off_t offset = start;
    std::byte* p = span->data();
    std::size_t left = span->size();
    while (left != 0) {
        ssize_t n = op == blk::kRead ? ::pread(fd_.get(), p, left, offset)
                                     : ::pwrite(fd_.get(), p, left, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; // error, or the file shrank under us
        p += n;
        left -= static_cast<std::size_t>(n);
        offset += n;
    }
    // What a read stored, once stored (also the part of a failed one).
    if (op == blk::kRead) mem_.mark_written(buf, len - left);
    if (left != 0) return blk::kIoError;
    if (op == blk::kWrite && io_.eager_writeback) {
        // Only starts write-back (see BlockIoOptions::eager_writeback); an
        // error here is not the request's: the disk's write errors reach the
        // guest through its next flush (fdatasync reports them).
        if (::sync_file_range(fd_.get(), start, static_cast<off_t>(len), SYNC_FILE_RANGE_WRITE) ==
            0)
            eager_writebacks_.fetch_add(1, std::memory_order_relaxed);
    }
    return blk::kOk;
}

ExitAction BlockDevice::access(const IoAccess& access) {
    if (!access.is_write || access.data.size() != 4)
        return fail(access, "a hypercall is a 32-bit OUT (outl) of the argument block's address");
    std::uint32_t block_gpa = 0;
    std::memcpy(&block_gpa, access.data.data(), sizeof block_gpa);
    if (access.offset == blk::kKickNr - blk::kInfoNr) {
        // The doorbell: its data is a ring's address (no argument block).
        Queue* q = nullptr;
        {
            std::lock_guard lock(setup_mutex_);
            for (auto& c : queues_)
                if (c && c->gpa == block_gpa) q = c.get();
        }
        if (!q) return fail(access, fmt::format("no ring is set up at {:#x}", block_gpa));
        q->user_kicks.fetch_add(1, std::memory_order_relaxed);
        if (q->worker) {
            q->worker->own_signals.fetch_add(1, std::memory_order_relaxed);
            q->worker->doorbell.signal(); // ioeventfd not bound: wake the I/O thread ourselves
        } else {
            std::lock_guard lock(q->drain_mutex);
            drain(*q);
        }
        return ExitAction::resume;
    }
    auto outside = [&](std::uint64_t len) {
        return fmt::format("argument block [{:#x}, +{:#x}) is outside guest RAM ({:#x} bytes)",
                           block_gpa, len, mem_.size());
    };
    // The VMM writes into these blocks: never into the reserved first MiB,
    // which the guest itself may not write (its descriptor and page tables).
    if (block_gpa < layout::kReservedEnd)
        return fail(access, fmt::format("argument block {:#x} lies in the VMM-reserved first MiB",
                                        block_gpa));
    if (access.offset == 0) {
        auto out = mem_.writable_range(block_gpa, sizeof(blk::Info));
        if (!out) return fail(access, outside(sizeof(blk::Info)));
        blk::Info info{sectors_, (read_only_ ? blk::kFlagReadOnly : 0) |
                                     (queues_.empty() ? 0 : blk::kFlagRing)};
        std::memcpy(out->data(), &info, sizeof info);
        mem_.mark_written(block_gpa, sizeof info);
        return ExitAction::resume;
    }
    if (access.offset == blk::kRingSetupNr - blk::kInfoNr) {
        auto req = mem_.read<blk::RingSetup>(block_gpa);
        auto status_field = mem_.writable_range(block_gpa + offsetof(blk::RingSetup, status),
                                                sizeof(std::uint64_t));
        if (!req || !status_field) return fail(access, outside(sizeof(blk::RingSetup)));
        std::uint64_t status = queues_.empty() ? blk::kBadQueue // hypercall mode: no rings
                                               : setup_ring(req->ring, req->entries, req->queue);
        std::memcpy(status_field->data(), &status, sizeof status);
        mem_.mark_written(block_gpa + offsetof(blk::RingSetup, status), sizeof status);
        return ExitAction::resume;
    }
    if (access.offset != blk::kIoNr - blk::kInfoNr)
        return fail(access, "not a block-device hypercall");
    auto req = mem_.read<blk::Io>(block_gpa);
    if (!req) return fail(access, outside(sizeof(blk::Io)));
    auto status_field =
        mem_.writable_range(block_gpa + offsetof(blk::Io, status), sizeof(std::uint64_t));
    if (!status_field) return fail(access, outside(sizeof(blk::Io)));
    std::uint64_t status = serve(req->op, req->sector, req->buf, req->len);
    std::memcpy(status_field->data(), &status, sizeof status);
    mem_.mark_written(block_gpa + offsetof(blk::Io, status), sizeof status);
    return ExitAction::resume;
}

ExitAction BlockHypercallRouter::access(const IoAccess& access) {
    if (access.offset != blk::kInfoNr && access.offset != blk::kIoNr &&
        access.offset != blk::kRingSetupNr && access.offset != blk::kKickNr)
        return hypercalls_.access(access);
    IoAccess a = access;
    a.offset -= blk::kInfoNr;
    return disk_.access(a);
}

} // namespace minivmm
