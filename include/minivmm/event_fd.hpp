/// \file
/// Move-only eventfd: a counter the kernel (ioeventfd) or another thread signals.
#pragma once

#include <cstdint>

#include "minivmm/unique_fd.hpp"

namespace minivmm {

/// Owns an eventfd(2) in counter mode. Move-only. signal() and consume() may
/// be called from any threads at once (each is one system call).
class EventFd {
  public:
    /// Creates a non-blocking, close-on-exec eventfd with a count of 0.
    /// \throws KvmError if eventfd(2) fails.
    EventFd();

    /// The descriptor (still owned), e.g. for KVM_IOEVENTFD or poll(2).
    int fd() const noexcept { return fd_.get(); }
    /// Adds `n` to the counter. \throws KvmError if the write fails.
    void signal(std::uint64_t n = 1) const;
    /// Returns the counter and resets it to zero; 0 if nothing was signalled.
    /// \throws KvmError if the read fails for another reason than EAGAIN.
    std::uint64_t consume() const;

  private:
    UniqueFd fd_;
};

} // namespace minivmm
