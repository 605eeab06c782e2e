// RamBlock backings and options, and DirtyBitmap.
#include <sys/mman.h>

#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "minivmm/error.hpp"
#include "minivmm/ram_block.hpp"

using minivmm::DirtyBitmap;
using minivmm::RamBlock;
using minivmm::RamBlockOptions;
using Backing = RamBlockOptions::Backing;

namespace {
std::uint64_t free_huge_pages() {
    std::ifstream in("/proc/sys/vm/nr_hugepages");
    std::uint64_t n = 0;
    in >> n;
    return n;
}
} // namespace

TEST_CASE("RamBlock: anonymous memory is zeroed, writable and has no fd", "[memory][ram]") {
    RamBlock b("a", 1 << 20);
    CHECK(b.size() == (1u << 20));
    CHECK(b.fd() == -1);
    CHECK(b.backing() == Backing::anonymous);
    CHECK(b.page_size() == 4096);
    CHECK(b.host()[12345] == std::byte{0});
    b.host()[12345] = std::byte{7};
    CHECK(b.bytes()[12345] == std::byte{7});
    CHECK(b.dirty().pages() == 256);
}

TEST_CASE("RamBlock: memfd backing has an fd that shows the same bytes", "[memory][ram]") {
    RamBlockOptions o;
    o.backing = Backing::memfd;
    RamBlock b("m", 64 << 10, o);
    REQUIRE(b.fd() >= 0);
    b.host()[100] = std::byte{42};
    std::byte x{};
    REQUIRE(::pread(b.fd(), &x, 1, 100) == 1);
    CHECK(x == std::byte{42});
}

TEST_CASE("RamBlock: prefault, THP and mlock options", "[memory][ram]") {
    RamBlockOptions o;
    o.prefault = true;
    o.transparent_huge_pages = true;
    o.lock = true;
    RamBlock b("p", 4 << 20, o);
    // Prefaulted: every page resident now.
    std::vector<unsigned char> vec(b.size() / 4096);
    REQUIRE(::mincore(b.host(), b.size(), vec.data()) == 0);
    std::size_t resident = 0;
    for (auto v : vec)
        resident += v & 1;
    CHECK(resident == vec.size());
}

TEST_CASE("RamBlock: hugetlbfs uses 2 MiB pages or falls back as asked", "[memory][ram]") {
    RamBlockOptions o;
    o.backing = Backing::hugetlbfs;
    if (free_huge_pages() >= 1) {
        RamBlock b("h", 2 << 20, o);
        CHECK(b.backing() == Backing::hugetlbfs);
        CHECK(b.page_size() == (2u << 20));
    } else {
        RamBlock b("h", 2 << 20, o); // falls back, with a warning
        CHECK(b.backing() == Backing::anonymous);
        o.hugetlb_fallback = false;
        CHECK_THROWS_AS(RamBlock("h", 2 << 20, o), minivmm::KvmError);
    }
    CHECK_THROWS_AS(RamBlock("h", 4096, o), minivmm::ConfigError); // not a 2 MiB multiple
}

TEST_CASE("RamBlock: bad sizes are ConfigErrors", "[memory][ram]") {
    CHECK_THROWS_AS(RamBlock("z", 0), minivmm::ConfigError);
    CHECK_THROWS_AS(RamBlock("odd", 4097), minivmm::ConfigError);
}

TEST_CASE("DirtyBitmap: set, merge, take", "[memory][dirty]") {
    DirtyBitmap d(200);
    d.set_range(60, 10); // crosses a word boundary
    d.set(199);
    d.set(200);            // past the end: ignored
    d.set_range(190, 100); // clipped at the end
    CHECK(d.test(60));
    CHECK(d.test(69));
    CHECK_FALSE(d.test(70));
    CHECK(d.count() == 10 + 10);
    std::uint64_t bits[2] = {0b101, 1ull << 5};
    d.merge(64, bits); // pages 64, 66 (already set) and 64 + 64 + 5 = 133
    auto pages = d.take();
    std::vector<std::uint64_t> want;
    for (std::uint64_t p = 60; p < 70; ++p)
        want.push_back(p);
    want.push_back(133);
    for (std::uint64_t p = 190; p < 200; ++p)
        want.push_back(p);
    CHECK(pages == want);
    CHECK(d.count() == 0);
    CHECK(d.take().empty());
}
