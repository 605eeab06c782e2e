#include "bench/stats.hpp"

#include <algorithm>
#include <stdexcept>

namespace minivmm::bench {

Summary summarize(std::vector<double> samples) {
    if (samples.empty()) throw std::invalid_argument("no samples");
    std::sort(samples.begin(), samples.end());
    Summary s;
    s.n = samples.size();
    s.min = samples.front();
    s.max = samples.back();
    std::size_t mid = s.n / 2;
    s.median = s.n % 2 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2;
    return s;
}

} // namespace minivmm::bench
