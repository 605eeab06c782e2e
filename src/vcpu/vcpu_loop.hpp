// The exit loop of one vCPU thread: KVM_RUN, dispatch the exit, repeat.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>
#include <memory>

#include "minivmm/address_space.hpp"
#include "minivmm/exit_counts.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/latency_histogram.hpp"
#include "minivmm/vm_exit.hpp"
#include "vcpu/vcpu_host.hpp"

namespace minivmm {

class VcpuLoop {
  public:
    // Port I/O goes to `pio`; MMIO exits to the sections of `memory`'s flat
    // view (MMIO regions, and writes to ROM).
    VcpuLoop(const KvmVcpu& vcpu, IoBus& pio, const AddressSpace& memory, VcpuHost& host) noexcept
        : vcpu_(vcpu), pio_(pio), memory_(memory), host_(host),
          latency_(std::make_unique<Latency>()) {}

    // Runs until the VM stops; never throws (errors become a VM stop).
    void run() noexcept;
    // Counters written only by this vCPU's thread (relaxed atomic stores, so
    // they can be read while it runs: a live snapshot).
    ExitCounts exit_counts() const noexcept;
    // How long the VMM took to handle each exit (from KVM_RUN's return to the
    // next entry), by KVM exit reason and by hypercall number.
    struct Latency {
        std::array<LatencyHistogram, ExitCounts::kReasons> by_reason;
        std::array<LatencyHistogram, ExitCounts::kHypercalls> hypercalls;
    };
    const Latency& latency() const noexcept { return *latency_; }

  private:
    ExitAction dispatch(kvm_run& run);
    ExitAction port_io(kvm_run& run);
    ExitAction mmio(kvm_run& run);
    ExitAction fault(std::string message);

    const KvmVcpu& vcpu_;
    IoBus& pio_;
    const AddressSpace& memory_;
    VcpuHost& host_;
    ExitCounts counts_;
    std::unique_ptr<Latency> latency_; // big: on the heap, so loops stay cheap to move
    unsigned last_hypercall_ = ExitCounts::kHypercalls; // of the exit being handled
};

// Installs the no-op handler for the signal that kicks vCPUs out of KVM_RUN
// (once per process) and returns its number.
int vcpu_kick_signal();

} // namespace minivmm
