#include "minivmm/memory_region.hpp"

#include <fmt/format.h>

#include "minivmm/boot_ram.hpp"
#include "minivmm/error.hpp"
#include "minivmm/ram_block.hpp"

namespace minivmm {

MemoryRegion::MemoryRegion(Kind kind, std::string name, std::uint64_t size)
    : kind_(kind), name_(std::move(name)), size_(size) {
    if (size == 0) throw ConfigError(fmt::format("memory region '{}' has size 0", name_));
}

std::shared_ptr<MemoryRegion> MemoryRegion::container(std::string name, std::uint64_t size) {
    return std::shared_ptr<MemoryRegion>(new MemoryRegion(Kind::container, std::move(name), size));
}

namespace {
std::shared_ptr<MemoryRegion> check_window(std::shared_ptr<MemoryRegion> r, const RamBlock* block,
                                           std::uint64_t offset) {
    if (block == nullptr) throw ConfigError(fmt::format("region '{}' has no RAM block", r->name()));
    if (!range_within(offset, r->size(), block->size()))
        throw ConfigError(fmt::format("region '{}': [{:#x}, +{:#x}) lies outside RAM block '{}' "
                                      "({:#x} bytes)",
                                      r->name(), offset, r->size(), block->name(), block->size()));
    return r;
}
} // namespace

std::shared_ptr<MemoryRegion> MemoryRegion::ram(std::string name, std::shared_ptr<RamBlock> block,
                                                std::uint64_t offset, std::uint64_t size) {
    std::shared_ptr<MemoryRegion> r(new MemoryRegion(Kind::ram, std::move(name), size));
    r->block_ = std::move(block);
    r->offset_ = offset;
    const RamBlock* b = r->block_.get(); // before r is moved from
    return check_window(std::move(r), b, offset);
}

std::shared_ptr<MemoryRegion> MemoryRegion::rom(std::string name, std::shared_ptr<RamBlock> block,
                                                std::uint64_t offset, std::uint64_t size) {
    auto r = ram(std::move(name), std::move(block), offset, size);
    r->kind_ = Kind::rom;
    return r;
}

std::shared_ptr<MemoryRegion> MemoryRegion::mmio(std::string name, std::uint64_t size,
                                                 IoDevice& device) {
    std::shared_ptr<MemoryRegion> r(new MemoryRegion(Kind::mmio, std::move(name), size));
    r->device_ = &device;
    return r;
}

std::shared_ptr<MemoryRegion> MemoryRegion::alias(std::string name,
                                                  std::shared_ptr<MemoryRegion> target,
                                                  std::uint64_t offset, std::uint64_t size) {
    if (!target) throw ConfigError(fmt::format("alias '{}' has no target", name));
    if (!range_within(offset, size, target->size()))
        throw ConfigError(fmt::format("alias '{}': [{:#x}, +{:#x}) lies outside '{}'", name, offset,
                                      size, target->name()));
    std::shared_ptr<MemoryRegion> r(new MemoryRegion(Kind::alias, std::move(name), size));
    r->target_ = std::move(target);
    r->offset_ = offset;
    return r;
}

} // namespace minivmm
