#include "minivmm/guest_memory.hpp"

#include <fmt/format.h>

#include "minivmm/error.hpp"

namespace minivmm {

GuestMemory::GuestMemory(std::uint64_t size)
    : mapping_(HostMapping::anonymous(static_cast<std::size_t>(size))),
      base_(static_cast<std::byte*>(mapping_.data())), size_(size) {}

void GuestMemory::write_bytes(std::uint64_t gpa, std::span<const std::byte> data) {
    auto r = range(gpa, data.size());
    if (!r)
        throw ConfigError(fmt::format("write of {} bytes at guest address {:#x} is outside "
                                      "guest RAM ({} bytes)",
                                      data.size(), gpa, size_));
    std::memcpy(r->data(), data.data(), data.size());
}

void GuestMemory::fill(std::uint64_t gpa, std::uint64_t len, std::byte value) {
    auto r = range(gpa, len);
    if (!r)
        throw ConfigError(
            fmt::format("fill of {} bytes at guest address {:#x} is outside guest RAM", len, gpa));
    std::memset(r->data(), static_cast<int>(value), r->size());
}

} // namespace minivmm
