// The VM as a vCPU thread and the devices see it: what they may ask of the
// VM that owns them (stop, park, pause, dirty rings). The vcpu layer owns
// this interface; Vm (the vm layer) implements it.
#pragma once

#include "minivmm/vm_exit.hpp"

namespace minivmm {

class KvmVcpu;

class VcpuHost {
  public:
    virtual ~VcpuHost() = default;
    virtual bool stopping() const noexcept = 0;
    virtual void request_stop(VmExit reason) noexcept = 0;
    // The calling vCPU is done (halt hypercall); returns once the VM stops.
    virtual void park(unsigned vcpu) noexcept = 0;
    // KVM_EXIT_DIRTY_RING_FULL: harvest the rings so the vCPU can go on.
    virtual void dirty_ring_full(unsigned vcpu) = 0;
    // Called by each vCPU thread before every KVM_RUN: blocks while the VM
    // is paused (and not stopping). The default never pauses.
    virtual void pause_point(const KvmVcpu& vcpu) noexcept { (void)vcpu; }
    // Called by each vCPU thread after every KVM_RUN, whatever it returned
    // (pause_point and left_guest bracket the time a vCPU may run guest code).
    virtual void left_guest(const KvmVcpu& vcpu) noexcept { (void)vcpu; }
    // Called by a vCPU thread whose KVM_RUN returned EINTR (a kick or a
    // signal): a kick no longer wanted must be taken back, or every later
    // KVM_RUN returns at once. The default kicks never.
    virtual void kicked(const KvmVcpu& vcpu) noexcept { (void)vcpu; }
};

} // namespace minivmm
