#include "minivmm/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>

namespace minivmm {

spdlog::logger& logger() {
    static auto instance = [] {
        auto l = std::make_shared<spdlog::logger>(
            "minivmm", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        l->set_level(spdlog::level::warn);
        l->set_pattern("minivmm: [%l] %v");
        return l;
    }();
    return *instance;
}

} // namespace minivmm
