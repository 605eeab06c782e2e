// Seccomp filters built with libseccomp, for install_seccomp and the tests
// (which check the generated program without installing it).
#pragma once

#include <linux/filter.h>

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "minivmm/seccomp.hpp"

namespace minivmm::detail {

// Which ioctl requests pass when "ioctl" is allowed. The request is args[1];
// only its low 32 bits count, as the kernel takes it as an unsigned int.
enum class IoctlRequests {
    kvm,              // type 0xAE (KVMIO) only
    kvm_and_fionbio,  // and FIONBIO (Asio sets sockets non-blocking)
    kvm_and_terminal, // and the terminal requests a Linux program's fds 0-2 pass to the host
};

// An x86-64 filter: the named calls pass (ioctl as `ioctl` says), any other
// call traps (SIGSYS), and so does any call through another ABI (i386's
// int 0x80, x32's numbers with bit 30 set). Owns libseccomp's context.
class SeccompFilter {
  public:
    // Duplicate names are fine. Throws Error for a name libseccomp knows no
    // x86-64 call by, SystemError when libseccomp fails.
    SeccompFilter(std::span<const std::string_view> allowed, IoctlRequests ioctl);

    // The classic BPF program the kernel would get (seccomp_export_bpf).
    std::vector<sock_filter> bpf() const;

    // Sets PR_SET_NO_NEW_PRIVS and loads the filter onto the calling thread.
    void load() const;

  private:
    struct Release {
        void operator()(void* ctx) const noexcept;
    };
    std::unique_ptr<void, Release> ctx_; // scmp_filter_ctx
};

// `role`'s filter: its allowlist, plus in sanitizer builds the calls the
// sanitizer runtime makes on any thread.
SeccompFilter role_filter(ThreadRole role);

} // namespace minivmm::detail
