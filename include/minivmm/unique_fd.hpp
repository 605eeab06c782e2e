/// \file
/// Move-only owner of a file descriptor.
#pragma once

#include <utility>

namespace minivmm {

/// Owns one file descriptor and closes it when destroyed or reset. Move-only;
/// an object is not thread-safe.
class UniqueFd {
  public:
    /// Owns nothing (-1).
    UniqueFd() noexcept = default;
    /// Takes ownership of `fd` (may be -1: owns nothing).
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    /// Takes `other`'s descriptor; `other` owns nothing afterwards.
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    /// Closes the owned descriptor, then takes `other`'s.
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    /// Closes the owned descriptor, if any.
    ~UniqueFd() { reset(); }

    /// The descriptor, still owned; -1 if none.
    int get() const noexcept { return fd_; }
    /// True when a descriptor (>= 0) is owned.
    explicit operator bool() const noexcept { return fd_ >= 0; }
    /// Gives the descriptor up without closing it; returns it.
    int release() noexcept { return std::exchange(fd_, -1); }
    /// Closes the owned descriptor (errors from close(2) are ignored), then
    /// owns `fd`.
    void reset(int fd = -1) noexcept;

  private:
    int fd_ = -1;
};

} // namespace minivmm
