/// \file
/// How a VM run ended.
#pragma once

#include <string>

namespace minivmm {

/// How a VM run ended: what Vm::run() returns (a value type).
struct VmExit {
    /// Why the VM stopped.
    enum class Kind {
        guest_exit,  ///< hypercall exit (or every vCPU halted): `code` is the guest's code
        guest_fault, ///< exception, triple fault, bad hypercall, failed entry, KVM internal error
        timeout,     ///< the run's time limit expired
        signal,      ///< SIGINT/SIGTERM: `code` is the signal number
        vmm_error,   ///< the VMM itself failed (an ioctl error while running)
        quit,        ///< the control socket's quit command (or Vm::request_stop by a user)
    };
    Kind kind = Kind::guest_exit; ///< why it stopped
    int code = 0;                 ///< guest exit code (guest_exit) or signal number (signal)
    int vcpu = -1;                ///< the vCPU that caused it, -1 if none
    std::string message;          ///< one line, for guest_fault / vmm_error / timeout
};

/// "guest exit", "guest fault", ...
const char* to_string(VmExit::Kind kind) noexcept;

} // namespace minivmm
