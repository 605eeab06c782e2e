#include "minivmm/boot_ram.hpp"

#include <fmt/format.h>

#include "minivmm/address_space.hpp"
#include "minivmm/error.hpp"

namespace minivmm {

BootRam::BootRam(std::uint64_t size) : BootRam(std::make_shared<RamBlock>("ram", size)) {}

BootRam::BootRam(std::shared_ptr<RamBlock> block)
    : block_(std::move(block)), base_(block_->host()), size_(block_->size()) {}

bool BootRam::visible(std::uint64_t gpa, std::uint64_t len) const noexcept {
    // Every byte must lie in sections of the RAM region at their identity offset.
    if (len == 0) return true;
    return visible_->read_view([&](const FlatView& view) {
        std::uint64_t end = gpa + len;
        do {
            const MemorySection* s = view.find(gpa);
            if (s == nullptr || s->region != ram_ || s->offset_in_region != s->gpa) return false;
            gpa = s->end();
        } while (gpa < end);
        return true;
    });
}

void BootRam::write_bytes(std::uint64_t gpa, std::span<const std::byte> data) {
    auto r = writable_range(gpa, data.size());
    if (!r)
        throw ConfigError(fmt::format("write of {} bytes at guest address {:#x} is outside "
                                      "guest RAM ({} bytes)",
                                      data.size(), gpa, size_));
    // An empty span's data() may be null, which memcpy must not be given
    // even for 0 bytes (an ELF segment with no file bytes has empty data).
    if (!data.empty()) std::memcpy(r->data(), data.data(), data.size());
    mark_written(gpa, data.size());
}

void BootRam::fill(std::uint64_t gpa, std::uint64_t len, std::byte value) {
    auto r = writable_range(gpa, len);
    if (!r)
        throw ConfigError(
            fmt::format("fill of {} bytes at guest address {:#x} is outside guest RAM", len, gpa));
    std::memset(r->data(), static_cast<int>(value), r->size());
    mark_written(gpa, len);
}

} // namespace minivmm
