// A test fake of a guest program's memory (linux_abi::UserMemory): one flat
// run of bytes at a guest-virtual base, with an optional hole that is
// unmapped or read-only, so that system call handlers can be driven without
// a VM and their -EFAULT paths reached.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "program/user_memory.hpp"

namespace minivmm::linux_abi {

class FlatUserMemory final : public UserMemory {
  public:
    enum class Access {
        unmapped,  // neither readable nor writable
        read_only, // readable, not writable
    };

    // `size` zeroed bytes at guest-virtual [base, base + size).
    FlatUserMemory(std::uint64_t base, std::size_t size);

    // Makes [va, va + size) a hole with `access` (one hole; a new call
    // replaces it, size 0 removes it).
    void set_hole(std::uint64_t va, std::size_t size, Access access);

    bool copy_in(std::uint64_t va, std::span<std::byte> out) const override;
    bool copy_out(std::uint64_t va, std::span<const std::byte> in) override;
    std::uint32_t* word(std::uint64_t va, bool write) override;

    std::uint64_t base() const { return base_; }
    std::uint64_t end() const { return base_ + bytes_.size(); }

    // The test's own view, past any hole; throws std::out_of_range outside
    // the memory.
    std::span<std::byte> bytes(std::uint64_t va, std::size_t size);
    void put(std::uint64_t va, std::span<const std::byte> data);
    // Writes `s` and a NUL at `va`; returns va (for use as an argument).
    std::uint64_t put_string(std::uint64_t va, std::string_view s);
    std::string string_at(std::uint64_t va, std::size_t size);
    template <class T>
    void put_value(std::uint64_t va, const T& value) {
        put(va, std::as_bytes(std::span(&value, 1)));
    }
    template <class T>
    T value_at(std::uint64_t va) {
        T value{};
        auto src = bytes(va, sizeof(T));
        std::copy(src.begin(), src.end(), std::as_writable_bytes(std::span(&value, 1)).begin());
        return value;
    }

  private:
    bool inside(std::uint64_t va, std::size_t size) const;
    bool touches_hole(std::uint64_t va, std::size_t size) const;

    std::uint64_t base_;
    std::vector<std::byte> bytes_;
    std::uint64_t hole_va_ = 0;
    std::size_t hole_size_ = 0;
    Access hole_access_ = Access::unmapped;
};

} // namespace minivmm::linux_abi
