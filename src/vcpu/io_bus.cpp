#include "minivmm/io_bus.hpp"

#include <fmt/format.h>

#include "minivmm/error.hpp"

namespace minivmm {

void IoBus::add(std::uint64_t base, std::uint64_t size, IoDevice& device) {
    if (size == 0 || base + size < base)
        throw ConfigError(fmt::format("{} bus: invalid range [{:#x}, +{:#x})", name_, base, size));
    std::uint64_t end = base + size;
    // The first range starting at or after `base`, and the one before it.
    auto next = ranges_.lower_bound(base);
    if (next != ranges_.end() && next->first < end)
        throw ConfigError(fmt::format("{} bus: [{:#x}, {:#x}) overlaps [{:#x}, {:#x})", name_, base,
                                      end, next->first, next->second.end));
    if (next != ranges_.begin()) {
        auto prev = std::prev(next);
        if (prev->second.end > base)
            throw ConfigError(fmt::format("{} bus: [{:#x}, {:#x}) overlaps [{:#x}, {:#x})", name_,
                                          base, end, prev->first, prev->second.end));
    }
    ranges_.emplace_hint(next, base, Range{end, &device});
}

bool IoBus::remove(std::uint64_t base) {
    return ranges_.erase(base) == 1;
}

IoBus::Hit IoBus::find(std::uint64_t address, std::uint64_t len) const noexcept {
    auto it = ranges_.upper_bound(address);
    if (it == ranges_.begin()) return {};
    --it;
    if (address >= it->second.end || len > it->second.end - address) return {};
    return {it->second.device, address - it->first};
}

} // namespace minivmm
