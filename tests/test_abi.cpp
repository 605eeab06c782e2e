// The guest ABI is defined once, in the C headers of include/minivmm/abi:
// guests compile them as C, the VMM as C++. These checks pin the numbers
// docs/guest-abi.md gives (a change here is an ABI change, and must be one on
// purpose) and show that the C and the C++ compiler lay every block out alike.
#include <catch2/catch.hpp>

#include <cstdint>
#include <type_traits>

#include "abi_layout.h"
#include "minivmm/abi/vdso_data.h"
#include "minivmm/block_abi.hpp"
#include "minivmm/boot_info.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/hypercall.hpp"

TEST_CASE("guest ABI: C and C++ see the same sizes, offsets and numbers", "[abi]") {
#define SZ(t) sizeof(struct t)
#define OFF(t, f) offsetof(struct t, f)
    const std::uint64_t cpp[] = {MVG_ABI_LAYOUT_ITEMS};
#undef SZ
#undef OFF
    REQUIRE(mvg_abi_c_layout_count == std::size(cpp));
    for (std::size_t i = 0; i < std::size(cpp); ++i) {
        CAPTURE(i);
        CHECK(mvg_abi_c_layout[i] == cpp[i]);
    }
}

TEST_CASE("guest ABI: the numbers of docs/guest-abi.md", "[abi]") {
    CHECK(MVG_ABI_VERSION == 1);
    CHECK(MVG_BOOT_MAGIC == 0x31564d4d56494e4dull);
    CHECK(sizeof(mvg_boot_info) == 64);
    CHECK(offsetof(mvg_boot_info, cmdline) == 56);
    CHECK(MVG_HC_PORT_BASE == 0x500);
    CHECK(MVG_RESERVED_END == 0x100000);
    CHECK(MVG_IMAGE_BASE == 0x100000);
    const int numbers[] = {MVG_HC_WRITE,   MVG_HC_EXIT,     MVG_HC_HALT,       BLK_HC_INFO,
                           BLK_HC_IO,      MVG_HC_YIELD,    BLK_HC_RING_SETUP, BLK_HC_KICK,
                           MVG_HC_MEM_MAP, MVG_HC_MEM_CLAIM};
    const int documented[] = {0, 1, 16, 17, 18, 19, 20, 21, 22, 23};
    CHECK(std::equal(std::begin(numbers), std::end(numbers), std::begin(documented)));
    CHECK(BLK_SECTOR_SIZE == 512);
    CHECK(BLK_E_BAD_QUEUE == 8);
    CHECK(BLK_RING_MAX_ENTRIES == 1024);
    CHECK(sizeof(blk_ring_header) == 128);
    CHECK(offsetof(blk_ring_header, sq_head) == 64);
    CHECK(sizeof(blk_ring_entry) == 64);
    CHECK(MVG_VDSO_DATA_SIZE == 4096);
    CHECK(sizeof(mvg_vdso_data) == 208);
    CHECK(offsetof(mvg_vdso_data, monotonic) == 16);
    CHECK(offsetof(mvg_vdso_data, node) == 200);
    CHECK(sizeof(mvg_vdso_timeline) == 56);
    CHECK(MVG_VDSO_CLOCK_TSC == 1);
    CHECK(MVG_VDSO_GETCPU_RDTSCP == 2);
}

TEST_CASE("guest ABI: the VMM's C++ names are the C definitions", "[abi]") {
    using namespace minivmm;
    STATIC_REQUIRE(std::is_same_v<BootInfo, mvg_boot_info>);
    STATIC_REQUIRE(std::is_same_v<blk::Io, blk_io>);
    STATIC_REQUIRE(std::is_same_v<blk::RingHeader, blk_ring_header>);
    STATIC_REQUIRE(std::is_same_v<blk::RingEntry, blk_ring_entry>);
    STATIC_REQUIRE(kBootMagic == MVG_BOOT_MAGIC);
    STATIC_REQUIRE(layout::kHypercallPortBase == MVG_HC_PORT_BASE);
    STATIC_REQUIRE(layout::kReservedEnd == MVG_RESERVED_END);
    STATIC_REQUIRE(static_cast<int>(Hypercall::mem_claim) == MVG_HC_MEM_CLAIM);
    STATIC_REQUIRE(blk::kKickNr == BLK_HC_KICK);
    STATIC_REQUIRE(blk::kBadQueue == BLK_E_BAD_QUEUE);
}
