/// \file
/// Seccomp allowlists for the VMM's threads (README "Sandbox"). Once set-up
/// is done, each thread may only make the system calls its role needs. A
/// forbidden call raises SIGSYS, whose handler prints one line naming the
/// call and the thread's role and ends the process with status 159
/// (128 + SIGSYS); so does a call through another ABI (i386's int 0x80, x32).
/// The filters are built with libseccomp from the calls' names.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace minivmm {

/// What a thread does, which decides its allowlist.
enum class ThreadRole {
    vcpu,    ///< KVM_RUN and exit handling, which may start block I/O threads
    io,      ///< a block device I/O thread: file I/O, eventfds, polling
    vmm,     ///< the thread running Vm::run's event loop: control socket, hotplug, teardown
    program, ///< a Linux program's vCPU: KVM_RUN and the program's system calls, served on the host
};

/// "vcpu", "io", "vmm", "program".
const char* to_string(ThreadRole role) noexcept;

/// The names of the system calls `role` may make (x86-64), in a static array.
/// ioctl is on every list but limited to KVM's requests (type 0xAE), plus
/// FIONBIO for the vmm role and the terminal requests of a program's fds 0-2
/// (TCGETS, TCSETS*, TIOCGWINSZ, TIOCGPGRP, FIONREAD) for the program role.
std::span<const std::string_view> seccomp_allowlist(ThreadRole role) noexcept;

/// `role`'s allowlist as `minivmm-run --print-seccomp=ROLE` prints it: one
/// name per line, ioctl followed by the requests it is limited to, and in
/// sanitizer builds the sanitizer runtime's extra calls, marked as such.
std::string seccomp_listing(ThreadRole role);

/// Installs `role`'s filter on the calling thread (after PR_SET_NO_NEW_PRIVS),
/// and the SIGSYS handler once per process. Filters stack and cannot be
/// removed: a thread created later by this one inherits it. In AddressSanitizer
/// builds the vmm role installs nothing: LeakSanitizer's exit check runs on
/// that thread and cannot work under a filter.
/// \throws SystemError naming the failed call (sigaction, a libseccomp function
/// such as seccomp_load, which sets PR_SET_NO_NEW_PRIVS and loads the filter);
/// Error if the libseccomp in use knows a name on the list by no x86-64 call.
void install_seccomp(ThreadRole role);

} // namespace minivmm
