#include "bench/stats.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

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

double percentile(std::vector<double> samples, double p) {
    if (samples.empty()) throw std::invalid_argument("no samples");
    auto rank = static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(samples.size())));
    auto k = std::clamp<std::size_t>(rank, 1, samples.size()) - 1;
    std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(k),
                     samples.end());
    return samples[k];
}

std::string format_summary(const Summary& s, double scale, const char* unit, int prec) {
    std::string u = *unit ? fmt::format(" {}", unit) : ""; // no double space without a unit
    return fmt::format("{:.{}f}{} [{:.{}f}..{:.{}f}]", s.median * scale, prec, u, s.min * scale,
                       prec, s.max * scale, prec);
}

} // namespace minivmm::bench
