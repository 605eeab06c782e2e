#include "minivmm/console.hpp"

#include <unistd.h>

#include <cerrno>

namespace minivmm {

void FdConsole::write(std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd_, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return; // a closed console drops output; it must not stop the guest
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
}

void StringConsole::write(std::span<const std::byte> bytes) {
    std::lock_guard lock(mutex_);
    text_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::string StringConsole::text() const {
    std::lock_guard lock(mutex_);
    return text_;
}

} // namespace minivmm
