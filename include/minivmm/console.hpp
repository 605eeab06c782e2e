/// \file
/// Where the guest's console output (hypercall 0) goes.
#pragma once

#include <cstddef>
#include <mutex>
#include <span>
#include <string>

namespace minivmm {

/// Receives the guest's console output. write() is called from vCPU
/// threads, concurrently: implementations must be thread-safe.
class ConsoleSink {
  public:
    virtual ~ConsoleSink() = default;
    /// One write hypercall's bytes. Must not throw for output it cannot
    /// deliver: the guest goes on regardless.
    virtual void write(std::span<const std::byte> bytes) = 0;
};

/// Writes to a file descriptor (stdout by default) with one write(2) per call
/// when possible, so lines from different vCPUs do not interleave mid-call.
/// Does not own the descriptor. Thread-safe; a failed write drops the output.
class FdConsole final : public ConsoleSink {
  public:
    /// Writes to `fd`, which must stay open while the console is used.
    explicit FdConsole(int fd = 1) : fd_(fd) {}
    /// Writes all of `bytes` (retrying short writes and EINTR); on an error
    /// the rest is dropped.
    void write(std::span<const std::byte> bytes) override;

  private:
    int fd_;
};

/// Collects output in memory (tests, benchmarks, library users). Thread-safe.
class StringConsole final : public ConsoleSink {
  public:
    /// Appends `bytes` to the text.
    void write(std::span<const std::byte> bytes) override;
    /// A copy of everything written so far.
    std::string text() const;

  private:
    mutable std::mutex mutex_;
    std::string text_;
};

} // namespace minivmm
