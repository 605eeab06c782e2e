#include "program/guest_frames.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace minivmm::linux_abi {

namespace {

enum class HostKind { private_anonymous, shared, other };

// What kind of host mapping holds [begin, end), from /proc/self/maps: every
// byte in private anonymous mappings, every byte in shared ones, or neither
// (a mix, a private file mapping, or no /proc).
HostKind host_kind(std::uintptr_t begin, std::uintptr_t end) {
    std::ifstream maps("/proc/self/maps");
    if (!maps) return HostKind::other;
    std::uintptr_t covered = begin;
    bool all_private_anonymous = true, all_shared = true;
    std::string line;
    while (covered < end && std::getline(maps, line)) {
        std::istringstream fields(line);
        std::string span, perms, offset, device, path;
        unsigned long inode = 0;
        fields >> span >> perms >> offset >> device >> inode;
        std::getline(fields >> std::ws, path);
        auto dash = span.find('-');
        if (dash == std::string::npos || perms.size() < 4) return HostKind::other;
        std::uintptr_t lo = std::stoull(span.substr(0, dash), nullptr, 16);
        std::uintptr_t hi = std::stoull(span.substr(dash + 1), nullptr, 16);
        if (hi <= covered) continue;
        if (lo > covered) return HostKind::other; // a hole in the range
        bool anonymous = inode == 0 && (path.empty() || path.starts_with("[anon"));
        all_private_anonymous = all_private_anonymous && perms[3] == 'p' && anonymous;
        all_shared = all_shared && perms[3] == 's';
        covered = hi;
    }
    if (covered < end) return HostKind::other;
    if (all_private_anonymous) return HostKind::private_anonymous;
    return all_shared ? HostKind::shared : HostKind::other;
}

} // namespace

FrameAllocator::FrameAllocator(PhysicalRange range) : range_(range) {
    if (range.gpa % kPageSize != 0 || range.host.size() % kPageSize != 0)
        throw std::invalid_argument("FrameAllocator: range is not page aligned");
    base_ = range.gpa & ~(kLargePageSize - 1);
    const std::uint64_t end = range.gpa + range.host.size();
    const std::size_t count =
        range.host.empty()
            ? 0
            : static_cast<std::size_t>((end - base_ + kLargePageSize - 1) / kLargePageSize);
    chunks_.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        Chunk& chunk = chunks_[i];
        chunk.used.fill(~std::uint64_t{0});
        chunk.whole = true;
        for (std::size_t f = 0; f < kFramesPerChunk; ++f) {
            std::uint64_t gpa = chunk_gpa(i) + f * kPageSize;
            if (gpa >= range.gpa && gpa < end) {
                chunk.used[f / 64] &= ~(std::uint64_t{1} << (f % 64));
                ++chunk.free;
            } else {
                chunk.whole = false;
            }
        }
        free_frames_ += chunk.free;
        refile(i);
    }
    if (!range.host.empty()) {
        auto begin = reinterpret_cast<std::uintptr_t>(range.host.data());
        switch (host_kind(begin, begin + range.host.size())) {
        case HostKind::private_anonymous:
            zeroing_ = Zeroing::dontneed;
            break;
        case HostKind::shared:
            zeroing_ = Zeroing::remove;
            break;
        case HostKind::other:
            zeroing_ = Zeroing::memset;
            break;
        }
    }
    // Whatever the caller left in the memory is not the program's.
    zero_host(range.host);
}

void FrameAllocator::refile(std::size_t index) {
    const Chunk& chunk = chunks_[index];
    whole_free_.erase(index);
    partly_free_.erase(index);
    if (chunk.whole && chunk.free == kFramesPerChunk) {
        whole_free_.insert(index);
    } else if (chunk.free > 0) {
        partly_free_.insert(index);
    }
}

void FrameAllocator::mark(std::size_t index, std::size_t first, std::size_t count, bool used) {
    Chunk& chunk = chunks_[index];
    for (std::size_t f = first; f < first + count; ++f) {
        std::uint64_t bit = std::uint64_t{1} << (f % 64);
        if (used) {
            chunk.used[f / 64] |= bit;
        } else {
            chunk.used[f / 64] &= ~bit;
        }
    }
    if (used) {
        chunk.free -= static_cast<std::uint32_t>(count);
        free_frames_ -= count;
    } else {
        chunk.free += static_cast<std::uint32_t>(count);
        free_frames_ += count;
    }
    refile(index);
}

std::optional<std::uint64_t> FrameAllocator::alloc_4k() {
    std::size_t index;
    if (!partly_free_.empty()) {
        index = *partly_free_.begin();
    } else if (!whole_free_.empty()) {
        index = *whole_free_.begin();
    } else {
        return std::nullopt;
    }
    const Chunk& chunk = chunks_[index];
    for (std::size_t w = 0; w < kWords; ++w) {
        if (chunk.used[w] == ~std::uint64_t{0}) continue;
        std::size_t frame = w * 64 + static_cast<std::size_t>(std::countr_one(chunk.used[w]));
        mark(index, frame, 1, true);
        return chunk_gpa(index) + frame * kPageSize;
    }
    throw std::logic_error("FrameAllocator: a chunk filed as free has no free frame");
}

std::optional<std::uint64_t> FrameAllocator::alloc_2m() {
    if (whole_free_.empty()) return std::nullopt;
    std::size_t index = *whole_free_.begin();
    mark(index, 0, kFramesPerChunk, true);
    return chunk_gpa(index);
}

void FrameAllocator::free_4k(std::uint64_t gpa) {
    free(gpa, kPageSize);
}

void FrameAllocator::free_2m(std::uint64_t gpa) {
    if (gpa % kLargePageSize != 0)
        throw std::invalid_argument("FrameAllocator: a 2 MiB run is not 2 MiB aligned");
    free(gpa, kLargePageSize);
}

void FrameAllocator::free(std::uint64_t gpa, std::uint64_t size) {
    if (size == 0) return;
    if (gpa % kPageSize != 0 || size % kPageSize != 0 || !contains(gpa, size))
        throw std::invalid_argument("FrameAllocator: freeing frames outside the range");
    // Check every frame first, so that a bad call frees nothing.
    for (std::uint64_t at = gpa; at < gpa + size; at += kPageSize) {
        std::size_t frame = static_cast<std::size_t>((at - base_) / kPageSize) % kFramesPerChunk;
        if (!(chunks_[chunk_of(at)].used[frame / 64] & (std::uint64_t{1} << (frame % 64))))
            throw std::invalid_argument("FrameAllocator: freeing a frame that is not allocated");
    }
    zero_host(host(gpa, size));
    for (std::uint64_t at = gpa; at < gpa + size;) {
        std::size_t index = chunk_of(at);
        std::size_t first = static_cast<std::size_t>((at - chunk_gpa(index)) / kPageSize);
        std::size_t count = static_cast<std::size_t>(
            std::min<std::uint64_t>(kFramesPerChunk - first, (gpa + size - at) / kPageSize));
        mark(index, first, count, false);
        at += count * kPageSize;
    }
}

bool FrameAllocator::contains(std::uint64_t gpa, std::uint64_t size) const {
    return gpa >= range_.gpa && gpa - range_.gpa <= range_.host.size() &&
           size <= range_.host.size() - (gpa - range_.gpa);
}

std::span<std::byte> FrameAllocator::host(std::uint64_t gpa, std::uint64_t size) const {
    if (!contains(gpa, size)) throw std::out_of_range("FrameAllocator: gpa outside the range");
    return range_.host.subspan(static_cast<std::size_t>(gpa - range_.gpa),
                               static_cast<std::size_t>(size));
}

void FrameAllocator::zero(std::uint64_t gpa, std::uint64_t size) {
    zero_host(host(gpa, size));
}

void FrameAllocator::zero_host(std::span<std::byte> bytes) const {
    if (bytes.empty()) return;
    auto begin = reinterpret_cast<std::uintptr_t>(bytes.data());
    auto end = begin + bytes.size();
    auto inner_begin = (begin + kPageSize - 1) & ~std::uintptr_t{kPageSize - 1};
    auto inner_end = end & ~std::uintptr_t{kPageSize - 1};
    if (zeroing_ == Zeroing::memset || inner_begin >= inner_end) {
        std::memset(bytes.data(), 0, bytes.size());
        return;
    }
    std::memset(bytes.data(), 0, inner_begin - begin);
    std::memset(reinterpret_cast<void*>(inner_end), 0, end - inner_end);
    int advice = zeroing_ == Zeroing::dontneed ? MADV_DONTNEED : MADV_REMOVE;
    // madvise fails on locked or huge-page memory: then the bytes stay, and
    // memset zeroes them.
    if (::madvise(reinterpret_cast<void*>(inner_begin), inner_end - inner_begin, advice) != 0)
        std::memset(reinterpret_cast<void*>(inner_begin), 0, inner_end - inner_begin);
}

} // namespace minivmm::linux_abi
