// The bounds checks every guest-supplied address goes through.
#include <catch2/catch.hpp>

#include <cstdint>

#include "minivmm/boot_ram.hpp"
#include "minivmm/error.hpp"

using minivmm::BootRam;
using minivmm::range_within;

namespace {
constexpr std::uint64_t kMax = UINT64_MAX;
} // namespace

TEST_CASE("range_within at the edges", "[bounds]") {
    const std::uint64_t limit = 0x10000;
    CHECK(range_within(0, 0, limit));
    CHECK(range_within(0, limit, limit));
    CHECK_FALSE(range_within(0, limit + 1, limit));
    CHECK(range_within(limit, 0, limit)); // empty range at the end
    CHECK_FALSE(range_within(limit + 1, 0, limit));
    CHECK(range_within(limit - 1, 1, limit));
    CHECK_FALSE(range_within(limit, 1, limit));
    CHECK_FALSE(range_within(limit - 1, 2, limit));
    CHECK_FALSE(range_within(1, limit, limit));
    // Huge lengths and wrap-around past 2^64.
    CHECK_FALSE(range_within(0, kMax, limit));
    CHECK_FALSE(range_within(1, kMax, limit));
    CHECK_FALSE(range_within(0x100, kMax - 0x80, limit)); // 0x100 + len wraps to 0x7f
    CHECK_FALSE(range_within(kMax, 1, limit));
    CHECK_FALSE(range_within(kMax, 2, limit)); // wraps to 1
    CHECK_FALSE(range_within(kMax, kMax, limit));
    CHECK_FALSE(range_within(kMax, 0, limit));
    // A limit of 0 holds only the empty range at 0.
    CHECK(range_within(0, 0, 0));
    CHECK_FALSE(range_within(0, 1, 0));
    // The full address space as the limit.
    CHECK(range_within(0, kMax, kMax));
    CHECK(range_within(kMax - 1, 1, kMax));
    CHECK_FALSE(range_within(kMax, 1, kMax));
    CHECK_FALSE(range_within(1, kMax, kMax));
    static_assert(range_within(4, 4, 8) && !range_within(5, 4, 8),
                  "usable in constant expressions");
}

TEST_CASE("GuestMemory::contains, range and read at the edges", "[bounds][memory]") {
    const std::uint64_t size = 64 * 1024;
    BootRam mem(size);
    REQUIRE(mem.size() == size);
    REQUIRE(mem.host_base() != nullptr);

    SECTION("contains") {
        CHECK(mem.contains(0, size));
        CHECK(mem.contains(size, 0));
        CHECK(mem.contains(size - 1, 1));
        CHECK_FALSE(mem.contains(size, 1));
        CHECK_FALSE(mem.contains(size + 1, 0));
        CHECK_FALSE(mem.contains(0, size + 1));
        CHECK_FALSE(mem.contains(size - 8, 16));
        CHECK_FALSE(mem.contains(8, kMax));
        CHECK_FALSE(mem.contains(kMax, 1));
        CHECK_FALSE(mem.contains(kMax - 7, 16)); // wraps to 8
        CHECK_FALSE(mem.contains(kMax, kMax));
    }
    SECTION("range") {
        auto empty_end = mem.range(size, 0);
        REQUIRE(empty_end.has_value());
        CHECK(empty_end->empty());

        auto last = mem.range(size - 1, 1);
        REQUIRE(last.has_value());
        CHECK(last->size() == 1);
        CHECK(last->data() == mem.host_base() + size - 1);

        auto all = mem.range(0, size);
        REQUIRE(all.has_value());
        CHECK(all->data() == mem.host_base());
        CHECK(all->size() == size);

        CHECK_FALSE(mem.range(size, 1).has_value());
        CHECK_FALSE(mem.range(size - 1, 2).has_value());
        CHECK_FALSE(mem.range(0, kMax).has_value());
        CHECK_FALSE(mem.range(16, kMax - 8).has_value()); // 16 + len wraps to 7
        CHECK_FALSE(mem.range(kMax, 1).has_value());
        CHECK_FALSE(mem.range(kMax, 0).has_value());
    }
    SECTION("read") {
        mem.write<std::uint64_t>(size - 8, 0x1122334455667788ull);
        mem.write<std::uint8_t>(0, 0xab);
        CHECK(mem.read<std::uint64_t>(size - 8) == 0x1122334455667788ull);
        CHECK(mem.read<std::uint8_t>(size - 1) == 0x11);
        CHECK(mem.read<std::uint8_t>(0) == 0xab);
        CHECK_FALSE(mem.read<std::uint64_t>(size - 7).has_value());
        CHECK_FALSE(mem.read<std::uint8_t>(size).has_value());
        CHECK_FALSE(mem.read<std::uint64_t>(kMax).has_value());
        CHECK_FALSE(mem.read<std::uint64_t>(kMax - 3).has_value()); // wraps to 4
        CHECK_FALSE(mem.read<std::uint32_t>(size - 2).has_value());
    }
    SECTION("the throwing writers refuse out-of-range writes") {
        std::byte buf[16]{};
        CHECK_NOTHROW(mem.write_bytes(size - 16, buf));
        CHECK_THROWS_AS(mem.write_bytes(size - 15, buf), minivmm::ConfigError);
        CHECK_THROWS_AS(mem.write_bytes(kMax - 7, buf), minivmm::ConfigError);
        CHECK_THROWS_AS(mem.write<std::uint32_t>(size - 2, 0), minivmm::ConfigError);
        CHECK_THROWS_AS(mem.fill(size, 1, std::byte{0}), minivmm::ConfigError);
        CHECK_THROWS_AS(mem.fill(1, kMax, std::byte{0}), minivmm::ConfigError);
        CHECK_NOTHROW(mem.fill(size, 0, std::byte{0}));
        mem.fill(size - 4, 4, std::byte{0x7e});
        CHECK(mem.read<std::uint32_t>(size - 4) == 0x7e7e7e7eu);
    }
}
