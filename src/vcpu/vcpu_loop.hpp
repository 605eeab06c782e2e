// The exit loop of one vCPU thread: KVM_RUN, dispatch the exit, repeat.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>

#include "minivmm/address_space.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/vm.hpp"
#include "vcpu/vm_control.hpp"

namespace minivmm {

class VcpuLoop {
  public:
    // Port I/O goes to `pio`; MMIO exits to the sections of `memory`'s flat
    // view (MMIO regions, and writes to ROM).
    VcpuLoop(const KvmVcpu& vcpu, IoBus& pio, const AddressSpace& memory,
             VmControl& control) noexcept
        : vcpu_(vcpu), pio_(pio), memory_(memory), control_(control) {}

    // Runs until the VM stops; never throws (errors become a VM stop).
    void run() noexcept;
    // Plain counters, written only by this vCPU's thread: read them after it ended.
    const ExitCounts& exit_counts() const noexcept { return counts_; }

  private:
    ExitAction dispatch(kvm_run& run);
    ExitAction port_io(kvm_run& run);
    ExitAction mmio(kvm_run& run);
    ExitAction fault(std::string message);

    const KvmVcpu& vcpu_;
    IoBus& pio_;
    const AddressSpace& memory_;
    VmControl& control_;
    ExitCounts counts_;
};

// Installs the no-op handler for the signal that kicks vCPUs out of KVM_RUN
// (once per process) and returns its number.
int vcpu_kick_signal();

} // namespace minivmm
