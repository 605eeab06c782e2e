// Small statistics over repeated measurements.
#pragma once

#include <vector>

namespace minivmm::bench {

struct Summary {
    double median = 0, min = 0, max = 0;
    std::size_t n = 0;
};

Summary summarize(std::vector<double> samples);

} // namespace minivmm::bench
