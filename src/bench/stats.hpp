// Small statistics over repeated measurements.
#pragma once

#include <string>
#include <vector>

namespace minivmm::bench {

struct Summary {
    double median = 0, min = 0, max = 0;
    std::size_t n = 0;
};

Summary summarize(std::vector<double> samples);

// The p-th percentile (0..100) by nearest rank; throws on no samples.
double percentile(std::vector<double> samples, double p);

// "median unit [min..max]", every value multiplied by `scale`.
std::string format_summary(const Summary& s, double scale, const char* unit, int prec = 3);

} // namespace minivmm::bench
