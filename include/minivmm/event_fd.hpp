// Move-only eventfd: a counter the kernel (ioeventfd) or another thread signals.
#pragma once

#include <cstdint>

#include "minivmm/unique_fd.hpp"

namespace minivmm {

class EventFd {
  public:
    // Non-blocking, close-on-exec, counter mode.
    EventFd();

    int fd() const noexcept { return fd_.get(); }
    void signal(std::uint64_t n = 1) const;
    // Returns the counter and resets it to zero; 0 if nothing was signalled.
    std::uint64_t consume() const;

  private:
    UniqueFd fd_;
};

} // namespace minivmm
