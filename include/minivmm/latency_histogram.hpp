/// \file
/// A lock-free latency histogram for live statistics.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace minivmm {

/// A copy of a LatencyHistogram at one moment: plain values, freely copied
/// and summed (query-stats adds up the vCPUs' histograms this way).
struct LatencySnapshot {
    /// Bucket i counts latencies in [2^(i-1), 2^i) ns (bucket 0: 0 ns); the
    /// last bucket also holds everything longer (up to ~550 s and beyond).
    static constexpr std::size_t kBuckets = 40;
    std::uint64_t count = 0;                       ///< recorded latencies
    std::uint64_t sum_ns = 0;                      ///< their sum
    std::uint64_t max_ns = 0;                      ///< the longest
    std::array<std::uint64_t, kBuckets> buckets{}; ///< counts per power-of-two bucket

    /// The upper bound (ns) of the bucket that holds quantile `q` (0 < q <=
    /// 1): an estimate within a factor of two; max_ns for the last bucket,
    /// 0 when empty.
    std::uint64_t quantile_upper_ns(double q) const noexcept;
    /// The largest latency bucket `i` holds (ns).
    static constexpr std::uint64_t bucket_upper_ns(std::size_t i) noexcept {
        return i == 0 ? 0 : (std::uint64_t{1} << i) - 1;
    }
    /// Adds `other`'s counts (max of the maxima).
    LatencySnapshot& operator+=(const LatencySnapshot& other) noexcept;
};

/// Power-of-two buckets of nanoseconds. Thread-safe: any thread may record
/// while others record or read; every field is a relaxed atomic, so a
/// snapshot taken during recording may miss records in flight, never tears
/// a value. Neither copyable nor movable (atomics).
class LatencyHistogram {
  public:
    /// Counts one latency of `ns` nanoseconds.
    void record(std::uint64_t ns) noexcept;
    /// The current counts.
    LatencySnapshot snapshot() const noexcept;

  private:
    std::atomic<std::uint64_t> count_{0}, sum_ns_{0}, max_ns_{0};
    std::array<std::atomic<std::uint64_t>, LatencySnapshot::kBuckets> buckets_{};
};

} // namespace minivmm
