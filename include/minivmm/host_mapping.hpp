/// \file
/// Move-only owner of an mmap'd range of host memory.
#pragma once

#include <cstddef>
#include <span>
#include <utility>

namespace minivmm {

/// Owns one mmap(2)'d range and unmaps it when destroyed or reset. Move-only;
/// an object is not thread-safe (the memory itself may be shared freely).
class HostMapping {
  public:
    /// Owns nothing.
    HostMapping() noexcept = default;
    /// Takes ownership of [addr, addr + size) returned by mmap.
    HostMapping(void* addr, std::size_t size) noexcept : addr_(addr), size_(size) {}
    /// Takes `other`'s range; `other` owns nothing afterwards.
    HostMapping(HostMapping&& other) noexcept
        : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    /// Unmaps the owned range, then takes `other`'s.
    HostMapping& operator=(HostMapping&& other) noexcept;
    HostMapping(const HostMapping&) = delete;
    HostMapping& operator=(const HostMapping&) = delete;
    /// Unmaps the owned range, if any.
    ~HostMapping() { reset(); }

    /// Anonymous private read/write memory, not reserved against swap: guest
    /// RAM is touched lazily, like QEMU's default RAM blocks.
    /// \throws KvmError if mmap fails.
    static HostMapping anonymous(std::size_t size);
    /// A shared mapping of `size` bytes of `fd` at `offset`, with protection
    /// `prot` (PROT_*). \throws KvmError if mmap fails.
    static HostMapping of_fd(int fd, std::size_t size, int prot, long offset = 0);
    /// A read/write mmap(flags, fd) of `size` bytes at an address that is a
    /// multiple of `align` (a power of two): a huge page (THP or hugetlbfs)
    /// can only back a 2 MiB-aligned range, and KVM maps a guest 2 MiB page
    /// in one go only when host and guest addresses agree modulo 2 MiB.
    /// \throws KvmError if mmap fails.
    static HostMapping aligned(std::size_t size, std::size_t align, int flags, int fd = -1);

    /// Start of the range; null if none is owned.
    void* data() const noexcept { return addr_; }
    /// Size of the range in bytes; 0 if none is owned.
    std::size_t size() const noexcept { return size_; }
    /// The range as bytes.
    std::span<std::byte> bytes() const noexcept { return {static_cast<std::byte*>(addr_), size_}; }
    /// Unmaps the owned range; owns nothing afterwards.
    void reset() noexcept;

  private:
    void* addr_ = nullptr;
    std::size_t size_ = 0;
};

} // namespace minivmm
