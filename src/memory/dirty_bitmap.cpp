#include "minivmm/dirty_bitmap.hpp"

#include <bit>

namespace minivmm {

DirtyBitmap::DirtyBitmap(std::uint64_t pages)
    : pages_(pages), words_(std::make_unique<std::atomic<std::uint64_t>[]>((pages + 63) / 64)) {}

void DirtyBitmap::set_range(std::uint64_t first, std::uint64_t count) noexcept {
    if (first >= pages_) return;
    std::uint64_t end = count > pages_ - first ? pages_ : first + count;
    for (std::uint64_t p = first; p < end;) {
        std::uint64_t word = p / 64, bit = p % 64;
        std::uint64_t n = std::min<std::uint64_t>(64 - bit, end - p);
        std::uint64_t mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;
        words_[word].fetch_or(mask, std::memory_order_relaxed);
        p += n;
    }
}

bool DirtyBitmap::test(std::uint64_t page) const noexcept {
    if (page >= pages_) return false;
    return (words_[page / 64].load(std::memory_order_relaxed) >> (page % 64)) & 1;
}

void DirtyBitmap::merge(std::uint64_t first, std::span<const std::uint64_t> bits) noexcept {
    for (std::size_t w = 0; w < bits.size(); ++w) {
        std::uint64_t v = bits[w];
        while (v != 0) {
            unsigned b = static_cast<unsigned>(std::countr_zero(v));
            v &= v - 1;
            set(first + w * 64 + b);
        }
    }
}

std::vector<std::uint64_t> DirtyBitmap::take() {
    std::vector<std::uint64_t> pages;
    for (std::uint64_t w = 0; w < (pages_ + 63) / 64; ++w) {
        std::uint64_t v = words_[w].exchange(0, std::memory_order_acq_rel);
        while (v != 0) {
            pages.push_back(w * 64 + static_cast<unsigned>(std::countr_zero(v)));
            v &= v - 1;
        }
    }
    return pages;
}

std::uint64_t DirtyBitmap::count() const noexcept {
    std::uint64_t n = 0;
    for (std::uint64_t w = 0; w < (pages_ + 63) / 64; ++w)
        n += static_cast<unsigned>(std::popcount(words_[w].load(std::memory_order_relaxed)));
    return n;
}

} // namespace minivmm
