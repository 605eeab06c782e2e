// IoBus: the interval map from port / MMIO ranges to devices.
#include <catch2/catch.hpp>

#include <cstdint>

#include "minivmm/error.hpp"
#include "minivmm/io_bus.hpp"

using minivmm::ConfigError;
using minivmm::ExitAction;
using minivmm::IoAccess;
using minivmm::IoBus;
using minivmm::IoDevice;

namespace {

struct NullDevice final : IoDevice {
    ExitAction access(const IoAccess&) override { return ExitAction::resume; }
};

constexpr std::uint64_t kMax = UINT64_MAX;

} // namespace

TEST_CASE("IoBus: add, find and remove", "[io_bus]") {
    IoBus bus("test");
    NullDevice a, b;
    CHECK(bus.size() == 0);
    CHECK(bus.find(0x500, 1).device == nullptr);

    bus.add(0x500, 0x100, a);
    bus.add(0x4ff, 1, b);
    CHECK(bus.size() == 2);

    auto hit = bus.find(0x500, 4);
    CHECK(hit.device == &a);
    CHECK(hit.offset == 0);
    hit = bus.find(0x510, 4);
    CHECK(hit.device == &a);
    CHECK(hit.offset == 0x10);
    hit = bus.find(0x5ff, 1); // last byte
    CHECK(hit.device == &a);
    CHECK(hit.offset == 0xff);
    hit = bus.find(0x5fc, 4); // last four bytes
    CHECK(hit.device == &a);
    CHECK(hit.offset == 0xfc);
    hit = bus.find(0x4ff, 1);
    CHECK(hit.device == &b);
    CHECK(hit.offset == 0);

    CHECK(bus.find(0x600, 1).device == nullptr); // one past the end
    CHECK(bus.find(0x4fe, 1).device == nullptr); // just below
    CHECK(bus.find(0, 1).device == nullptr);
    CHECK(bus.find(kMax, 1).device == nullptr);

    CHECK(bus.remove(0x500));
    CHECK(bus.size() == 1);
    CHECK(bus.find(0x500, 1).device == nullptr);
    CHECK_FALSE(bus.remove(0x500)); // already gone
    CHECK_FALSE(bus.remove(0x501)); // not the start of a range
    CHECK(bus.find(0x4ff, 1).device == &b);

    // The range can be registered again after removal.
    CHECK_NOTHROW(bus.add(0x500, 0x100, b));
    CHECK(bus.find(0x520, 2).device == &b);
}

TEST_CASE("IoBus: accesses that straddle a range end are not dispatched", "[io_bus]") {
    IoBus bus("test");
    NullDevice a, b;
    bus.add(0x1000, 0x10, a);
    bus.add(0x1010, 0x10, b); // adjacent
    CHECK(bus.find(0x100e, 2).device == &a);
    CHECK(bus.find(0x100f, 2).device == nullptr); // 1 byte in a, 1 in b
    CHECK(bus.find(0x100c, 8).device == nullptr);
    CHECK(bus.find(0x101e, 4).device == nullptr); // runs past b's end
    CHECK(bus.find(0x1000, 0x10).device == &a);   // the whole range
    CHECK(bus.find(0x1000, 0x11).device == nullptr);
    CHECK(bus.find(0x0ffe, 4).device == nullptr); // starts before a
    CHECK(bus.find(0x1001, kMax).device == nullptr);
    CHECK(bus.find(0x1001, kMax - 0x800).device == nullptr); // address + len wraps
}

TEST_CASE("IoBus: overlapping ranges are rejected", "[io_bus]") {
    IoBus bus("port");
    NullDevice a, b;
    bus.add(0x100, 0x10, a); // [0x100, 0x110)

    CHECK_THROWS_AS(bus.add(0x100, 0x10, b), ConfigError); // identical
    CHECK_THROWS_AS(bus.add(0x0f8, 0x10, b), ConfigError); // overlaps the start
    CHECK_THROWS_AS(bus.add(0x108, 0x10, b), ConfigError); // overlaps the end
    CHECK_THROWS_AS(bus.add(0x104, 0x04, b), ConfigError); // contained
    CHECK_THROWS_AS(bus.add(0x0f0, 0x40, b), ConfigError); // contains it
    CHECK_THROWS_AS(bus.add(0x10f, 1, b), ConfigError);    // last byte
    CHECK_THROWS_AS(bus.add(0x0ff, 2, b), ConfigError);    // first byte
    CHECK_THROWS_WITH(bus.add(0x108, 0x10, b),
                      Catch::Matchers::Contains("overlaps") && Catch::Matchers::Contains("port"));
    CHECK(bus.size() == 1);
    // A rejected add leaves the bus unchanged.
    CHECK(bus.find(0x108, 1).device == &a);
    CHECK(bus.find(0x118, 1).device == nullptr);

    // Adjacent on both sides is fine.
    CHECK_NOTHROW(bus.add(0x0f0, 0x10, b));
    CHECK_NOTHROW(bus.add(0x110, 0x10, b));
    CHECK(bus.size() == 3);
    // Now a range spanning several is rejected too.
    CHECK_THROWS_AS(bus.add(0x0e0, 0x100, b), ConfigError);
    CHECK_THROWS_AS(bus.add(0x11f, 0x10, b), ConfigError);
}

TEST_CASE("IoBus: empty and wrapping ranges are rejected", "[io_bus]") {
    IoBus bus("MMIO");
    NullDevice a;
    CHECK_THROWS_AS(bus.add(0x1000, 0, a), ConfigError);
    CHECK_THROWS_AS(bus.add(kMax, 2, a), ConfigError);
    CHECK_THROWS_AS(bus.add(kMax - 0xf, 0x20, a), ConfigError);
    CHECK_THROWS_AS(bus.add(1, kMax, a), ConfigError);
    CHECK_THROWS_AS(bus.add(kMax - 0xf, 0x10, a), ConfigError); // would end exactly at 2^64
    CHECK(bus.size() == 0);
    // Ranges near the top of the address space that do not wrap are fine.
    CHECK_NOTHROW(bus.add(kMax - 0xf, 0xf, a));
    CHECK(bus.find(kMax - 1, 1).device == &a);
    CHECK(bus.find(kMax - 1, 2).device == nullptr);
}
