#include "testing/flat_user_memory.hpp"

#include <algorithm>
#include <stdexcept>

namespace minivmm::linux_abi {

FlatUserMemory::FlatUserMemory(std::uint64_t base, std::size_t size) : base_(base), bytes_(size) {}

void FlatUserMemory::set_hole(std::uint64_t va, std::size_t size, Access access) {
    hole_va_ = va;
    hole_size_ = size;
    hole_access_ = access;
}

bool FlatUserMemory::inside(std::uint64_t va, std::size_t size) const {
    return va >= base_ && va <= end() && size <= end() - va;
}

bool FlatUserMemory::touches_hole(std::uint64_t va, std::size_t size) const {
    return hole_size_ > 0 && size > 0 && va < hole_va_ + hole_size_ && hole_va_ < va + size;
}

bool FlatUserMemory::copy_in(std::uint64_t va, std::span<std::byte> out) const {
    if (!inside(va, out.size())) return false;
    if (hole_access_ == Access::unmapped && touches_hole(va, out.size())) return false;
    std::copy_n(bytes_.begin() + static_cast<std::ptrdiff_t>(va - base_), out.size(), out.begin());
    return true;
}

bool FlatUserMemory::copy_out(std::uint64_t va, std::span<const std::byte> in) {
    if (!inside(va, in.size()) || touches_hole(va, in.size())) return false;
    std::copy(in.begin(), in.end(), bytes_.begin() + static_cast<std::ptrdiff_t>(va - base_));
    return true;
}

std::uint32_t* FlatUserMemory::word(std::uint64_t va, bool write) {
    if (va % 4 != 0 || !inside(va, 4)) return nullptr;
    if (touches_hole(va, 4) && (write || hole_access_ == Access::unmapped)) return nullptr;
    std::byte* at = bytes_.data() + (va - base_);
    if (reinterpret_cast<std::uintptr_t>(at) % 4 != 0) return nullptr; // an odd base
    return reinterpret_cast<std::uint32_t*>(at);
}

std::span<std::byte> FlatUserMemory::bytes(std::uint64_t va, std::size_t size) {
    if (!inside(va, size)) throw std::out_of_range("FlatUserMemory: outside the memory");
    return std::span(bytes_).subspan(static_cast<std::size_t>(va - base_), size);
}

void FlatUserMemory::put(std::uint64_t va, std::span<const std::byte> data) {
    auto dst = bytes(va, data.size());
    std::copy(data.begin(), data.end(), dst.begin());
}

std::uint64_t FlatUserMemory::put_string(std::uint64_t va, std::string_view s) {
    put(va, std::as_bytes(std::span(s.data(), s.size())));
    put(va + s.size(), std::as_bytes(std::span("", 1)));
    return va;
}

std::string FlatUserMemory::string_at(std::uint64_t va, std::size_t size) {
    auto src = bytes(va, size);
    return std::string(reinterpret_cast<const char*>(src.data()), src.size());
}

} // namespace minivmm::linux_abi
