/// \file
/// A virtual machine that runs one guest ABI v1 image: guest RAM, vCPU
/// threads, the port/MMIO buses with the ABI's hypercalls, and an Asio event
/// loop on the calling thread that handles the time limit and SIGINT/SIGTERM.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "minivmm/address_space.hpp"
#include "minivmm/block_io_mode.hpp"
#include "minivmm/boot.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/console.hpp"
#include "minivmm/exit_counts.hpp"
#include "minivmm/guest_image.hpp"
#include "minivmm/hotplug_ram.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/kvm_slots.hpp"
#include "minivmm/latency_histogram.hpp"
#include "minivmm/ram_block.hpp"
#include "minivmm/vm_exit.hpp"

namespace minivmm {

/// What a Vm is made of (a value type, copied into the Vm).
struct VmConfig {
    std::uint64_t mem_size = 256ull << 20; ///< guest RAM bytes (a multiple of 4 KiB)
    unsigned vcpus = 1;                    ///< vCPU count, 1 .. layout::kMaxVcpus
    std::string cmdline;                   ///< the guest's command line (< 4 KiB, no NUL)
    /// Stop the guest with VmExit::Kind::timeout after this long.
    std::optional<std::chrono::nanoseconds> timeout;
    /// Stop cleanly on SIGINT/SIGTERM while run() is running (VmExit::Kind::signal).
    bool handle_signals = true;
    /// Console output; null means the process's stdout.
    std::shared_ptr<ConsoleSink> console;
    /// How the KVM slot tables are guarded (see kvm_slots.hpp).
    LockPolicy lock_policy = LockPolicy::global;
    /// Backing of guest RAM.
    /// Default: anonymous memory with transparent huge pages, the best
    /// measured backing that needs no root and changes nothing on the host
    /// (docs/benchmarks.md, "Knobs"); hugetlbfs measured better still but
    /// grows the host's huge page pool.
    RamBlockOptions ram = guest_ram_defaults();
    /// Dirty logging mode: 0 = bitmap (KVM_GET_DIRTY_LOG/KVM_CLEAR_DIRTY_LOG);
    /// N > 0 = a dirty ring of N entries per vCPU (a power of two).
    std::uint32_t dirty_ring_entries = 0;
    /// Paravirtual block device (README "Block device"): a host file that must
    /// exist; empty = no disk. Opened read-only with disk_readonly.
    std::string disk_path;
    bool disk_readonly = false; ///< open disk_path read-only; guest writes fail
    /// How its requests reach the VMM (block_io_mode.hpp): hypercall per
    /// request, or rings with an exit, ioeventfd or polling doorbell.
    BlockIoOptions disk_io;
    /// Host CPUs for the vCPU threads: vCPU i runs on vcpu_cpus[i % size()]
    /// (pthread_setaffinity_np). Empty = no pinning. Every CPU must be in the
    /// process's affinity mask (ConfigError otherwise).
    std::vector<int> vcpu_cpus;
    /// Seccomp allowlists (minivmm/seccomp.hpp, README "Sandbox"): the vCPU
    /// threads and block I/O threads install theirs before they run guest
    /// code or serve requests.
    bool seccomp = true;
    /// Also confine the thread that calls run(), for good: minivmm-run sets
    /// it; a library user whose thread goes on to do other things would not.
    bool seccomp_event_loop = false;
};

/// Live statistics (Vm::stats): totals and latency histograms, readable while
/// the guest runs. A plain value.
struct VmStats {
    ExitCounts exits; ///< exits by reason and hypercall, summed over vCPUs
    /// VMM handling time per exit (KVM_RUN return to the next entry), by exit
    /// reason, summed over vCPUs.
    std::array<LatencySnapshot, ExitCounts::kReasons> exit_latency{};
    /// The same by hypercall number (port I/O exits on 0x500 + nr).
    std::array<LatencySnapshot, ExitCounts::kHypercalls> hypercall_latency{};
    /// KVM_SET_USER_MEMORY_REGION calls and their duration.
    LatencySnapshot slot_updates;
    /// The slot tables' lock policy.
    LockPolicy lock_policy = LockPolicy::global;
    /// Slot-table lock acquisitions that had to wait, and the total wait.
    SlotLockStats lock;
    /// Those waits, one by one.
    LatencySnapshot lock_waits;
    LatencySnapshot ram_adds;       ///< Vm::add_ram calls (whole operations)
    LatencySnapshot ram_removes;    ///< Vm::remove_ram calls (whole operations)
    bool has_disk = false;          ///< the disk fields below are valid
    std::uint64_t disk_reads = 0;   ///< completed read requests
    std::uint64_t disk_writes = 0;  ///< completed write requests
    std::uint64_t disk_flushes = 0; ///< completed flushes
    std::uint64_t disk_errors = 0;  ///< requests that failed with a status
    /// Service time of every request (validation plus host I/O).
    LatencySnapshot disk_requests;
};

/// A virtual machine running one guest image. Owns everything it is made
/// of: the KVM VM and vCPU fds, guest RAM, the memory topology and slot
/// tables, the buses and devices, the vCPU threads (joined before it is
/// destroyed) and the disk; shares the console. Neither copyable nor movable.
///
/// Threads: run() blocks the calling thread, which runs the event loop;
/// request_stop() and the dirty_log_*() calls may come from any thread
/// meanwhile. The accessors return parts the VM owns (valid while it
/// lives); change them before run() or through their own thread-safe
/// members.
class Vm {
  public:
    /// Creates the VM, its RAM and vCPUs, loads `image` and builds the boot
    /// state. \throws ConfigError for an impossible configuration (RAM,
    /// vCPUs, CPUs to pin to, dirty ring, disk that cannot be opened),
    /// ImageError for an image that does not fit, KvmError when KVM or the
    /// host refuses (ioctls, mmap).
    Vm(const KvmSystem& kvm, VmConfig config, const GuestImage& image);
    /// Joins the vCPU threads if run() started them; releases everything.
    ~Vm();
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;

    /// Starts every vCPU at the entry point and blocks until the VM stops.
    /// Call once. Never throws for guest behaviour: that is in the VmExit
    /// (so is a VMM failure while running: VmExit::Kind::vmm_error).
    /// \throws ConfigError when called a second time.
    VmExit run();
    /// Thread-safe; the first reason wins. Kicks every vCPU out of KVM_RUN.
    void request_stop(VmExit reason) noexcept;

    /// Pause: kicks every vCPU out of KVM_RUN and holds it before the next
    /// entry; returns once all of them are held (or halted), or false if that
    /// took longer than `wait` (they stay asked to pause) or the VM is
    /// stopping. Before run(), the vCPUs start paused. Thread-safe;
    /// idempotent. resume lets them go on.
    bool pause(std::chrono::milliseconds wait = std::chrono::milliseconds(1000));
    /// Lets paused vCPUs go on. Thread-safe; a no-op when not paused.
    void resume() noexcept;
    /// Asked to pause (the vCPUs may still be on their way to being held).
    bool paused() const noexcept;
    /// A stop was requested (or the VM ended).
    bool stopping() const noexcept;

    /// RAM hot-add and removal while the guest runs (README "Memory
    /// hotplug"): [gpa, gpa + size) 2 MiB aligned, above boot RAM, below
    /// 64 GiB, overlapping nothing; mapped into the guest's page tables and
    /// announced to it through hypercall 22. remove_ram takes the start of a
    /// region and refuses one the guest has claimed. Both throw ConfigError
    /// with a one-line reason and then change nothing. Thread-safe.
    void add_ram(std::uint64_t gpa, std::uint64_t size);
    /// Removes the hot-added region that starts at `gpa` (see add_ram).
    /// \throws ConfigError for no such region, or one the guest has claimed.
    void remove_ram(std::uint64_t gpa);
    /// The hot-added regions, by address. Thread-safe.
    std::vector<HotplugRam> hotplug_ram() const;
    /// Dirty logging is on (between dirty_log_start and dirty_log_stop).
    bool dirty_logging() const noexcept;
    /// VmConfig::dirty_ring_entries: 0 when dirty logging uses the bitmap.
    std::uint32_t dirty_ring_entries() const noexcept;

    /// Live statistics; thread-safe, any time.
    VmStats stats() const;

    /// Boot RAM (bounds-checked access; see BootRam for threads).
    BootRam& boot_ram() noexcept;
    /// The port I/O bus (hypercall ports and the exception port are taken).
    /// Add devices before run() only: the bus is not synchronized.
    IoBus& port_bus() noexcept;
    /// Guest-physical space: the root container holds "ram" at 0 (priority 0);
    /// add ROM, MMIO or more RAM through topology(). MMIO and ROM writes are
    /// dispatched through this address space's flat view.
    MemoryTopology& topology() noexcept;
    /// The guest-physical address space ("memory").
    AddressSpace& address_space() noexcept;
    /// Its root container ("system").
    MemoryRegion& root_region() noexcept;
    /// The region of guest RAM ("ram") in the root container.
    MemoryRegion& ram_region() noexcept;
    /// The KVM slot manager.
    KvmSlots& kvm_slots() noexcept;

    /// Dirty logging of every RAM region (thread-safe; callable while the
    /// guest runs and after run() returned). start clears the RAM blocks'
    /// bitmaps first; sync returns the guest-physical addresses of the pages
    /// written since start or the previous sync (by the guest or the VMM), in
    /// ascending order, and re-arms tracking for them; stop turns it off.
    /// They throw what KVM's dirty-log ioctls throw (KvmError).
    void dirty_log_start();
    /// \copydoc dirty_log_start()
    std::vector<std::uint64_t> dirty_log_sync();
    /// \copydoc dirty_log_start()
    void dirty_log_stop();
    /// Where image, heap and stacks are.
    const BootPlan& plan() const noexcept;
    /// The KVM VM fd.
    const KvmVm& kvm_vm() const noexcept;
    /// The TSC rate KVM reported (0 if unknown), as in the boot info.
    std::uint32_t tsc_khz() const noexcept;
    /// Exit counts summed over the vCPUs: live while the guest runs (a
    /// snapshot of relaxed counters), the totals after run() returned.
    ExitCounts exit_counts() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    friend struct VmLoopAccess; // the event-loop hooks for the layers above (src/vm)
};

/// Reads an image file sized for `config` (RAM minus the vCPU stacks).
/// \throws ImageError as GuestImage::load_file(), ConfigError for an
/// impossible RAM size or vCPU count.
GuestImage load_image_for(const std::string& path, const VmConfig& config);

} // namespace minivmm
