#include "minivmm/latency_histogram.hpp"

#include <bit>

namespace minivmm {

void LatencyHistogram::record(std::uint64_t ns) noexcept {
    std::size_t i = static_cast<std::size_t>(std::bit_width(ns));
    if (i >= LatencySnapshot::kBuckets) i = LatencySnapshot::kBuckets - 1;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
    std::uint64_t max = max_ns_.load(std::memory_order_relaxed);
    while (ns > max && !max_ns_.compare_exchange_weak(max, ns, std::memory_order_relaxed)) {
    }
}

LatencySnapshot LatencyHistogram::snapshot() const noexcept {
    LatencySnapshot s;
    s.count = count_.load(std::memory_order_relaxed);
    s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    s.max_ns = max_ns_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < s.buckets.size(); ++i)
        s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    return s;
}

std::uint64_t LatencySnapshot::quantile_upper_ns(double q) const noexcept {
    std::uint64_t total = 0;
    for (auto b : buckets)
        total += b;
    if (total == 0) return 0;
    auto want = static_cast<std::uint64_t>(q * static_cast<double>(total) + 0.999999);
    if (want == 0) want = 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
        seen += buckets[i];
        if (seen >= want) return i + 1 == buckets.size() ? max_ns : bucket_upper_ns(i);
    }
    return max_ns;
}

LatencySnapshot& LatencySnapshot::operator+=(const LatencySnapshot& other) noexcept {
    count += other.count;
    sum_ns += other.sum_ns;
    if (other.max_ns > max_ns) max_ns = other.max_ns;
    for (std::size_t i = 0; i < buckets.size(); ++i)
        buckets[i] += other.buckets[i];
    return *this;
}

} // namespace minivmm
