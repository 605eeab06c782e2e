// A virtual machine that runs one guest ABI v1 image: guest RAM, vCPU
// threads, the port/MMIO buses with the ABI's hypercalls, and an Asio event
// loop on the calling thread that handles the time limit and SIGINT/SIGTERM.
#pragma once

#include <linux/kvm.h>

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
#include "minivmm/console.hpp"
#include "minivmm/guest_image.hpp"
#include "minivmm/guest_memory.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/kvm_memory.hpp"
#include "minivmm/latency_histogram.hpp"
#include "minivmm/ram_block.hpp"
#include "minivmm/vm_exit.hpp"

namespace minivmm {

struct VmConfig {
    std::uint64_t mem_size = 256ull << 20;
    unsigned vcpus = 1;
    std::string cmdline;
    // Stop the guest with VmExit::Kind::timeout after this long.
    std::optional<std::chrono::nanoseconds> timeout;
    // Stop cleanly on SIGINT/SIGTERM while run() is running.
    bool handle_signals = true;
    // Console output; null means the process's stdout.
    std::shared_ptr<ConsoleSink> console;
    // How the KVM slot tables are guarded (see kvm_memory.hpp).
    LockPolicy lock_policy = LockPolicy::global;
    // Backing of guest RAM (anonymous by default).
    // Default: anonymous memory with transparent huge pages, the best
    // measured backing that needs no root and changes nothing on the host
    // (README "Knobs"); hugetlbfs measured better still but grows the host's
    // huge page pool.
    RamBlockOptions ram = guest_ram_defaults();
    // Dirty logging mode: 0 = bitmap (KVM_GET_DIRTY_LOG/KVM_CLEAR_DIRTY_LOG);
    // N > 0 = a dirty ring of N entries per vCPU (a power of two).
    std::uint32_t dirty_ring_entries = 0;
    // Paravirtual block device (README "Block device"): a host file that must
    // exist; empty = no disk. Opened read-only with disk_readonly.
    std::string disk_path;
    bool disk_readonly = false;
    // How its requests reach the VMM (block_io_mode.hpp): hypercall per
    // request, or rings with an exit, ioeventfd or polling doorbell.
    BlockIoOptions disk_io;
    // Host CPUs for the vCPU threads: vCPU i runs on vcpu_cpus[i % size()]
    // (pthread_setaffinity_np). Empty = no pinning. Every CPU must be in the
    // process's affinity mask (ConfigError otherwise).
    std::vector<int> vcpu_cpus;
    // Control socket (README "Control socket"): a UNIX stream socket created
    // at this path (mode 0600) by the constructor and served on run()'s
    // event loop; removed when the VM is destroyed. Empty = none. A stale
    // socket file nobody listens on is replaced; anything else there is a
    // ConfigError.
    std::string api_socket;
    // Seccomp allowlists (minivmm/seccomp.hpp, README "Sandbox"): the vCPU
    // threads and block I/O threads install theirs before they run guest
    // code or serve requests. seccomp_event_loop also confines the thread
    // that calls run(), for good: minivmm-run sets it; a library user whose
    // thread goes on to do other things would not.
    bool seccomp = true;
    bool seccomp_event_loop = false;
};

// One region of hot-added RAM (Vm::add_ram).
struct HotplugRam {
    std::uint64_t gpa = 0;
    std::uint64_t size = 0;
    bool claimed = false; // by the guest (hypercall 23): cannot be removed
};

// Exits counted by KVM exit reason (KVM_EXIT_*), summed over vCPUs, and the
// port I/O exits broken down by hypercall number.
struct ExitCounts {
    static constexpr std::size_t kReasons = 64;
    static constexpr std::size_t kHypercalls = 256; // ports 0x500 + nr
    std::array<std::uint64_t, kReasons> by_reason{};
    // KVM_EXIT_IO exits on hypercall port 0x500 + nr, by nr.
    std::array<std::uint64_t, kHypercalls> hypercalls{};
    // KVM_EXIT_IO exits on any other port (exception reports, devices).
    std::uint64_t other_io = 0;
    // Not exits to user space, but what replaced them on the block
    // device's ring path: doorbells that ended in the kernel (ioeventfd
    // signals, as the I/O threads read them) and requests served from rings.
    std::uint64_t ioeventfd_signals = 0;
    std::uint64_t ring_requests = 0;

    std::uint64_t total() const noexcept;
    std::uint64_t io() const noexcept { return by_reason[KVM_EXIT_IO]; }
    std::uint64_t mmio() const noexcept { return by_reason[KVM_EXIT_MMIO]; }
    ExitCounts& operator+=(const ExitCounts& other) noexcept;
    // "hlt", "io", "mmio", ... for KVM_EXIT_* values; "reason<N>" for others.
    static std::string reason_name(std::size_t reason);
};

// Live statistics (Vm::stats): totals and latency histograms, readable while
// the guest runs.
struct VmStats {
    ExitCounts exits;
    // VMM handling time per exit (KVM_RUN return to the next entry), by exit
    // reason and by hypercall number, summed over vCPUs.
    std::array<LatencySnapshot, ExitCounts::kReasons> exit_latency{};
    std::array<LatencySnapshot, ExitCounts::kHypercalls> hypercall_latency{};
    // KVM_SET_USER_MEMORY_REGION calls and their duration.
    LatencySnapshot slot_updates;
    // Slot-table lock: acquisitions that waited, and how long (lock_policy).
    LockPolicy lock_policy = LockPolicy::global;
    SlotLockStats lock;
    LatencySnapshot lock_waits;
    // Hot-add and remove operations (whole operations, including the slots).
    LatencySnapshot ram_adds, ram_removes;
    // Block device requests: completed reads, writes, flushes, failed ones,
    // and the service time of each (validation plus host I/O), with a disk.
    bool has_disk = false;
    std::uint64_t disk_reads = 0, disk_writes = 0, disk_flushes = 0, disk_errors = 0;
    LatencySnapshot disk_requests;
};

class Vm {
  public:
    // Creates the VM, its RAM and vCPUs, loads `image` and builds the boot
    // state. Throws ConfigError, ImageError or KvmError.
    Vm(const KvmSystem& kvm, VmConfig config, const GuestImage& image);
    ~Vm();
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;

    // Starts every vCPU at the entry point and blocks until the VM stops.
    // Call once. Never throws for guest behaviour: that is in the VmExit.
    VmExit run();
    // Thread-safe; the first reason wins. Kicks every vCPU out of KVM_RUN.
    void request_stop(VmExit reason) noexcept;

    // Pause: kicks every vCPU out of KVM_RUN and holds it before the next
    // entry; returns once all of them are held (or halted), or false if that
    // took longer than `wait` (they stay asked to pause) or the VM is
    // stopping. Before run(), the vCPUs start paused. Thread-safe;
    // idempotent. resume lets them go on.
    bool pause(std::chrono::milliseconds wait = std::chrono::milliseconds(1000));
    void resume() noexcept;
    bool paused() const noexcept;
    bool stopping() const noexcept;

    // RAM hot-add and removal while the guest runs (README "Memory
    // hotplug"): [gpa, gpa + size) 2 MiB aligned, above boot RAM, below
    // 64 GiB, overlapping nothing; mapped into the guest's page tables and
    // announced to it through hypercall 22. remove_ram takes the start of a
    // region and refuses one the guest has claimed. Both throw ConfigError
    // with a one-line reason and then change nothing. Thread-safe.
    void add_ram(std::uint64_t gpa, std::uint64_t size);
    void remove_ram(std::uint64_t gpa);
    std::vector<HotplugRam> hotplug_ram() const;
    bool dirty_logging() const noexcept;
    // VmConfig::dirty_ring_entries: 0 when dirty logging uses the bitmap.
    std::uint32_t dirty_ring_entries() const noexcept;

    // Live statistics; thread-safe, any time.
    VmStats stats() const;

    // Handles one control-socket request line (a JSON object, README
    // "Control socket") and returns the response line (no newline): what the
    // socket does for each line, usable without one. Bad input gives an
    // error object, never an exception. Thread-safe.
    std::string control(std::string_view request);

    GuestMemory& memory() noexcept;
    IoBus& port_bus() noexcept;
    // Guest-physical space: the root container holds "ram" at 0 (priority 0);
    // add ROM, MMIO or more RAM through topology(). MMIO and ROM writes are
    // dispatched through this address space's flat view.
    MemoryTopology& topology() noexcept;
    AddressSpace& address_space() noexcept;
    MemoryRegion& root_region() noexcept;
    MemoryRegion& ram_region() noexcept;
    KvmMemory& kvm_memory() noexcept;

    // Dirty logging of every RAM region (thread-safe; callable while the
    // guest runs and after run() returned). start clears the RAM blocks'
    // bitmaps first; sync returns the guest-physical addresses of the pages
    // written since start or the previous sync (by the guest or the VMM), in
    // ascending order, and re-arms tracking for them.
    void dirty_log_start();
    std::vector<std::uint64_t> dirty_log_sync();
    void dirty_log_stop();
    const BootPlan& plan() const noexcept;
    const KvmVm& kvm_vm() const noexcept;
    std::uint32_t tsc_khz() const noexcept;
    // Live: a snapshot while the guest runs, the totals after run() returned.
    ExitCounts exit_counts() const noexcept;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Reads an image file sized for `config` (RAM minus the vCPU stacks).
GuestImage load_image_for(const std::string& path, const VmConfig& config);

} // namespace minivmm
