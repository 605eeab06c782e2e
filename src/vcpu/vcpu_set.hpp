// A VM's vCPUs and their threads, and the one state machine that starts,
// pauses, parks and stops them (Cloud Hypervisor's CpuManager, Firecracker's
// vstate/vcpu split: the threads and their protocol, apart from memory and
// devices). The set is the VcpuHost of its exit loops and of the devices.
//
//   created --start--> running --pause--> paused --resume--> running
//      |                  |                  |
//      +--pause--> paused (threads start held when started)
//   any state --request_stop, or the last vCPU parks--> stopped (final)
//
// One mutex orders every transition against the kicks it sends; the vCPU
// threads' hot path (one check before each KVM_RUN) reads an atomic mirror.
#pragma once

#include <pthread.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "minivmm/address_space.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/exit_counts.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/seccomp.hpp"
#include "minivmm/vm_exit.hpp"
#include "vcpu/vcpu_host.hpp"
#include "vcpu/vcpu_loop.hpp"

namespace minivmm {

class VcpuSet final : public VcpuHost {
  public:
    enum class State { created, running, paused, stopped };

    struct Options {
        // vCPU i's thread runs on cpus[i % size()]; empty = no pinning.
        std::vector<int> cpus;
        // Each thread installs `role`'s seccomp allowlist before guest code.
        bool seccomp = true;
        ThreadRole role = ThreadRole::vcpu;
    };
    struct Hooks {
        // Once, when the stop wins, after every vCPU was kicked (with the
        // set's mutex held: it must not call back into the set).
        std::function<void()> stopped;
        // KVM_EXIT_DIRTY_RING_FULL on some vCPU: harvest the rings.
        std::function<void()> dirty_ring_full;
        // On vCPU `index`'s own thread, out of KVM_RUN after interrupt(index)
        // (a Linux program's signal: its registers are the thread's to
        // change). An exception it throws stops the set.
        std::function<void(unsigned index, const KvmVcpu& vcpu)> interrupted;
    };

    VcpuSet(Options options, Hooks hooks);
    // Joins every thread (they must be stopping or never started).
    ~VcpuSet();
    VcpuSet(const VcpuSet&) = delete;
    VcpuSet& operator=(const VcpuSet&) = delete;

    // Adds a vCPU whose port I/O goes to `pio` and MMIO to `memory`'s view;
    // returns its index. While the set runs (or is paused), its thread
    // starts at once (held until resume when paused). \throws ConfigError
    // once the set is stopped.
    unsigned add(KvmVcpu vcpu, IoBus& pio, const AddressSpace& memory);
    // vCPU `i` (stable while the set lives).
    const KvmVcpu& vcpu(unsigned i) const;
    std::size_t size() const;

    // Starts a thread per vCPU. Call once. A stop that races with it still
    // reaches every thread; a thread that cannot be created stops the set.
    void start();
    // Waits until every started thread has returned (after a stop).
    void join();
    // The reason the set stopped (valid once stopping()).
    VmExit result() const;

    // Runs `fn` on the calling thread while no vCPU runs guest code: the
    // others are kicked out of KVM_RUN and held before their next one (a
    // vCPU busy in an exit handler goes on until it would re-enter). For a
    // vCPU thread's exit handler (a Linux program's TLB shootdown, which
    // takes its page tables' slot away for a moment); one section at a
    // time, a second caller waits its turn. False, without running `fn`,
    // once the set is stopping.
    bool exclusive(const std::function<void()>& fn);
    // Brings vCPU `index` out of guest code (or stops it entering) and runs
    // Hooks::interrupted on its thread before it enters again. Any thread.
    void interrupt(unsigned index);
    bool pause(std::chrono::milliseconds wait);
    void resume() noexcept;
    bool paused() const noexcept { return pause_flag_.load(std::memory_order_acquire); }

    // VcpuHost
    bool stopping() const noexcept override { return stop_flag_.load(std::memory_order_acquire); }
    void request_stop(VmExit reason) noexcept override;
    void park(unsigned vcpu) noexcept override;
    void dirty_ring_full(unsigned vcpu) override;
    void pause_point(const KvmVcpu& vcpu) noexcept override;
    void left_guest(const KvmVcpu& vcpu) noexcept override;
    void kicked(const KvmVcpu& vcpu) noexcept override;

    // Exit counts summed over the vCPUs (a live snapshot while they run).
    ExitCounts exit_counts() const;
    // Calls fn(loop) for every vCPU's exit loop (for latency snapshots).
    void for_each_loop(const std::function<void(const VcpuLoop&)>& fn) const;

  private:
    struct Member {
        Member(KvmVcpu v, IoBus& pio, const AddressSpace& memory, VcpuHost& host)
            : vcpu(std::move(v)), loop(vcpu, pio, memory, host) {}
        KvmVcpu vcpu;
        VcpuLoop loop;
        std::thread thread;
        pthread_t handle{};
        bool started = false;
        std::atomic<bool> interrupt{false}; // interrupt() asked; taken in kicked()
    };

    void start_locked(unsigned index);
    void thread_main(Member& member, unsigned index) noexcept;
    void stop_locked(VmExit reason) noexcept;
    void kick_all_locked() noexcept;

    const Options options_;
    const Hooks hooks_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Member>> members_; // guarded by mutex_; Members never move
    State state_ = State::created;                 // guarded by mutex_
    bool started_ = false;                         // start() ran; guarded by mutex_
    unsigned running_threads_ = 0;                 // threads started; guarded by mutex_
    unsigned held_ = 0;                            // threads waiting in pause_point; mutex_
    unsigned parked_ = 0;                          // threads parked for good; mutex_
    VmExit result_;                                // the winning reason; mutex_
    std::atomic<bool> pause_flag_{false};          // state_ == paused, for the hot path
    std::atomic<bool> stop_flag_{false};           // state_ == stopped
    bool exclusive_ = false;                       // a section runs; mutex_
    std::atomic<bool> exclusive_flag_{false};      // exclusive_, for the hot path
    std::atomic<int> in_guest_{0};                 // threads between pause_point and left_guest
    // The same per vCPU id, so that exclusive() signals only the vCPUs that
    // may be in the guest: a signal would also end a host call of one busy
    // in an exit handler with EINTR (a program's read of its terminal).
    std::array<std::atomic<bool>, layout::kMaxVcpus> in_guest_by_id_{};
    std::atomic<bool>* in_guest_flag(const KvmVcpu& vcpu) noexcept;
};

} // namespace minivmm
