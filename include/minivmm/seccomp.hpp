// Seccomp allowlists for the VMM's threads (README "Sandbox"): once set-up is
// done, each thread may only make the system calls its role needs. A
// forbidden call raises SIGSYS, whose handler prints one line naming the
// call and the thread and ends the process with status 159 (128 + SIGSYS).
// Plain BPF (linux/seccomp.h, linux/filter.h), no library.
#pragma once

#include <span>

namespace minivmm {

enum class ThreadRole {
    vcpu, // KVM_RUN and exit handling, which may start block I/O threads
    io,   // a block device I/O thread: file I/O, eventfds, polling
    vmm,  // the thread running Vm::run's event loop: control socket, hotplug, teardown
};

const char* to_string(ThreadRole role) noexcept;

// The system call numbers a role may make (x86-64). ioctl is on every list
// but limited to KVM's ioctls (type 0xAE), plus FIONBIO for the vmm role.
std::span<const int> seccomp_allowlist(ThreadRole role) noexcept;

// Installs the role's filter on the calling thread (no_new_privs first), and
// the SIGSYS handler once per process. Filters stack: a thread created later
// by this one inherits it. Throws KvmError("seccomp", errno) on failure.
void install_seccomp(ThreadRole role);

} // namespace minivmm
