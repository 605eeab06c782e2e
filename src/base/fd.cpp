#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "minivmm/error.hpp"
#include "minivmm/event_fd.hpp"
#include "minivmm/host_mapping.hpp"
#include "minivmm/unique_fd.hpp"

namespace minivmm {

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

HostMapping& HostMapping::operator=(HostMapping&& other) noexcept {
    if (this != &other) {
        reset();
        addr_ = std::exchange(other.addr_, nullptr);
        size_ = std::exchange(other.size_, 0);
    }
    return *this;
}

void HostMapping::reset() noexcept {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
}

HostMapping HostMapping::anonymous(std::size_t size) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw SystemError("mmap of guest RAM", errno, "not enough host memory?");
    return HostMapping(p, size);
}

HostMapping HostMapping::of_fd(int fd, std::size_t size, int prot, long offset) {
    void* p = ::mmap(nullptr, size, prot, MAP_SHARED, fd, offset);
    if (p == MAP_FAILED) throw SystemError("mmap", errno);
    return HostMapping(p, size);
}

HostMapping HostMapping::aligned(std::size_t size, std::size_t align, int flags, int fd) {
    // Reserve size + align of address space, trim it to an aligned window,
    // then map the real thing over the window.
    const std::size_t span = size + align;
    void* raw =
        ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        throw SystemError("mmap of guest RAM", errno, "not enough address space?");
    const auto base = reinterpret_cast<std::uintptr_t>(raw);
    const std::uintptr_t start = (base + align - 1) & ~(std::uintptr_t{align} - 1);
    if (start > base) ::munmap(raw, start - base);
    if (base + span > start + size)
        ::munmap(reinterpret_cast<void*>(start + size), base + span - (start + size));
    HostMapping window(reinterpret_cast<void*>(start), size); // unmapped again if we throw
    void* p = ::mmap(window.data(), size, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) throw SystemError("mmap of guest RAM", errno, "not enough host memory?");
    return window;
}

EventFd::EventFd() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!fd_) throw SystemError("eventfd", errno);
}

void EventFd::signal(std::uint64_t n) const {
    if (::write(fd_.get(), &n, sizeof n) != static_cast<ssize_t>(sizeof n))
        throw SystemError("eventfd write", errno);
}

std::uint64_t EventFd::consume() const {
    std::uint64_t n = 0;
    if (::read(fd_.get(), &n, sizeof n) != static_cast<ssize_t>(sizeof n)) {
        if (errno == EAGAIN) return 0;
        throw SystemError("eventfd read", errno);
    }
    return n;
}

} // namespace minivmm
