// A lock-free latency histogram for live statistics: power-of-two buckets of
// nanoseconds, safe to record into from any thread and to read while others
// record (every field is a relaxed atomic, so a snapshot taken during
// recording can be off by the records in flight, never torn).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace minivmm {

struct LatencySnapshot {
    // Bucket i counts latencies in [2^(i-1), 2^i) ns (bucket 0: 0 ns); the
    // last bucket also holds everything longer.
    static constexpr std::size_t kBuckets = 40; // up to ~550 s
    std::uint64_t count = 0;
    std::uint64_t sum_ns = 0;
    std::uint64_t max_ns = 0;
    std::array<std::uint64_t, kBuckets> buckets{};

    // The upper bound of the bucket holding quantile q (0 < q <= 1), 0 when empty.
    std::uint64_t quantile_upper_ns(double q) const noexcept;
    static constexpr std::uint64_t bucket_upper_ns(std::size_t i) noexcept {
        return i == 0 ? 0 : (std::uint64_t{1} << i) - 1;
    }
    LatencySnapshot& operator+=(const LatencySnapshot& other) noexcept;
};

class LatencyHistogram {
  public:
    void record(std::uint64_t ns) noexcept;
    LatencySnapshot snapshot() const noexcept;

  private:
    std::atomic<std::uint64_t> count_{0}, sum_ns_{0}, max_ns_{0};
    std::array<std::atomic<std::uint64_t>, LatencySnapshot::kBuckets> buckets_{};
};

} // namespace minivmm
