// Where the guest's console output (hypercall 0) goes.
#pragma once

#include <cstddef>
#include <mutex>
#include <span>
#include <string>

namespace minivmm {

// Called from vCPU threads; implementations must be thread-safe.
class ConsoleSink {
  public:
    virtual ~ConsoleSink() = default;
    virtual void write(std::span<const std::byte> bytes) = 0;
};

// Writes to a file descriptor (stdout by default) with one write(2) per call
// when possible, so lines from different vCPUs do not interleave mid-call.
class FdConsole final : public ConsoleSink {
  public:
    explicit FdConsole(int fd = 1) : fd_(fd) {}
    void write(std::span<const std::byte> bytes) override;

  private:
    int fd_;
};

// Collects output in memory (tests, benchmarks, library users).
class StringConsole final : public ConsoleSink {
  public:
    void write(std::span<const std::byte> bytes) override;
    std::string text() const;

  private:
    mutable std::mutex mutex_;
    std::string text_;
};

} // namespace minivmm
