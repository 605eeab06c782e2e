#include "program/user_memory.hpp"

#include <cerrno>

namespace minivmm::linux_abi {

std::optional<std::string> read_string(const UserMemory& mem, std::uint64_t va, std::size_t max,
                                       int& error) {
    // Page by page: a string may end just before an unmapped page, and
    // reading past its NUL must not turn into -EFAULT.
    std::string out;
    constexpr std::uint64_t kPage = 4096;
    for (;;) {
        std::uint64_t addr = va + out.size();
        if (addr < va) break; // wrapped past the top of the address space
        std::size_t chunk = static_cast<std::size_t>(kPage - addr % kPage);
        std::byte buf[kPage];
        if (!mem.copy_in(addr, std::span(buf, chunk))) {
            error = EFAULT;
            return std::nullopt;
        }
        for (std::size_t i = 0; i < chunk; ++i) {
            if (buf[i] == std::byte{0}) return out;
            if (out.size() == max) {
                error = ENAMETOOLONG;
                return std::nullopt;
            }
            out.push_back(static_cast<char>(buf[i]));
        }
    }
    error = EFAULT;
    return std::nullopt;
}

} // namespace minivmm::linux_abi
