// The exit loop of one vCPU thread: KVM_RUN, dispatch the exit, repeat.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>

#include "minivmm/io_bus.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/vm.hpp"
#include "vcpu/vm_control.hpp"

namespace minivmm {

class VcpuLoop {
  public:
    VcpuLoop(const KvmVcpu& vcpu, IoBus& pio, IoBus& mmio, VmControl& control) noexcept
        : vcpu_(vcpu), pio_(pio), mmio_(mmio), control_(control) {}

    // Runs until the VM stops; never throws (errors become a VM stop).
    void run() noexcept;
    const std::array<std::uint64_t, ExitCounts::kReasons>& exit_counts() const noexcept {
        return counts_;
    }

  private:
    ExitAction dispatch(kvm_run& run);
    ExitAction port_io(kvm_run& run);
    ExitAction mmio(kvm_run& run);
    ExitAction fault(std::string message);

    const KvmVcpu& vcpu_;
    IoBus& pio_;
    IoBus& mmio_;
    VmControl& control_;
    std::array<std::uint64_t, ExitCounts::kReasons> counts_{};
};

// Installs the no-op handler for the signal that kicks vCPUs out of KVM_RUN
// (once per process) and returns its number.
int vcpu_kick_signal();

} // namespace minivmm
