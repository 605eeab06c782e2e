// BootPlan: validation of RAM size and vCPU count, and where the image,
// heap and stacks go.
#include <catch2/catch.hpp>

#include <cstdint>
#include <set>

#include "minivmm/boot.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/error.hpp"
#include "minivmm/guest_image.hpp"

namespace L = minivmm::layout;
using Catch::Matchers::Contains;
using minivmm::BootPlan;
using minivmm::ConfigError;
using minivmm::GuestImage;
using minivmm::ImageError;
using minivmm::ImageSegment;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kSlot = L::kVcpuStackSize;

GuestImage image_with(std::initializer_list<std::pair<std::uint64_t, std::uint64_t>> segs) {
    GuestImage image;
    image.format = GuestImage::Format::elf64;
    for (auto [gpa, size] : segs) {
        ImageSegment s;
        s.gpa = gpa;
        s.mem_size = size;
        s.data.resize(size > 16 ? 16 : size);
        s.executable = image.segments.empty();
        image.segments.push_back(std::move(s));
    }
    image.entry = image.segments.empty() ? 0 : image.segments.front().gpa;
    return image;
}

GuestImage small_flat(std::uint64_t size = 100) {
    return image_with({{L::kImageBase, size}});
}

// The smallest RAM the ABI allows: 1 MiB reserved, one page of image, the stacks.
std::uint64_t min_mem(unsigned vcpus) {
    return L::kImageBase + L::kPageSize + vcpus * kSlot;
}

} // namespace

TEST_CASE("BootPlan rejects impossible vCPU counts", "[boot][plan]") {
    auto image = small_flat();
    CHECK_THROWS_AS(BootPlan(256 * kMiB, 0, image), ConfigError);
    CHECK_THROWS_WITH(BootPlan(256 * kMiB, 0, image), Contains("at least 1"));
    CHECK_THROWS_AS(BootPlan(256 * kMiB, L::kMaxVcpus + 1, image), ConfigError);
    CHECK_THROWS_WITH(BootPlan(256 * kMiB, L::kMaxVcpus + 1, image), Contains("257"));
    CHECK_NOTHROW(BootPlan(256 * kMiB, L::kMaxVcpus, image));
    CHECK_THROWS_AS(BootPlan::validate(256 * kMiB, 0), ConfigError);
}

TEST_CASE("BootPlan rejects impossible RAM sizes", "[boot][plan]") {
    auto image = small_flat();
    CHECK_THROWS_AS(BootPlan(256 * kMiB + 1, 1, image), ConfigError);
    CHECK_THROWS_AS(BootPlan(256 * kMiB + 2048, 1, image), ConfigError);
    CHECK_THROWS_WITH(BootPlan(256 * kMiB + 2048, 1, image), Contains("4 KiB"));
    CHECK_THROWS_AS(BootPlan(L::kMaxMemSize + L::kPageSize, 1, image), ConfigError);
    CHECK_THROWS_AS(BootPlan(UINT64_MAX & ~(L::kPageSize - 1), 1, image), ConfigError);
    CHECK_NOTHROW(BootPlan::validate(L::kMaxMemSize, 1));
    CHECK_THROWS_AS(BootPlan(0, 1, image), ConfigError);
}

TEST_CASE("BootPlan rejects RAM too small for the vCPU stacks", "[boot][plan]") {
    auto image = small_flat();
    for (unsigned vcpus : {1u, 2u, 4u, 64u, L::kMaxVcpus}) {
        INFO(vcpus << " vCPUs, minimum RAM " << min_mem(vcpus));
        CHECK_NOTHROW(BootPlan(min_mem(vcpus), vcpus, image));
        CHECK_THROWS_AS(BootPlan(min_mem(vcpus) - L::kPageSize, vcpus, image), ConfigError);
    }
    CHECK_THROWS_WITH(BootPlan(1 * kMiB, 1, image), Contains("too small"));
}

TEST_CASE("BootPlan rejects an image with nothing to load", "[boot][plan]") {
    CHECK_THROWS_AS(BootPlan(64 * kMiB, 1, GuestImage{}), ImageError);
}

TEST_CASE("BootPlan rejects image segments in the reserved MiB", "[boot][plan]") {
    CHECK_THROWS_AS(BootPlan(64 * kMiB, 1, image_with({{0x0, 0x100}})), ImageError);
    CHECK_THROWS_AS(BootPlan(64 * kMiB, 1, image_with({{0xff000, 0x100}})), ImageError);
    // A segment starting below 1 MiB that reaches past it is still inside the reserved area.
    CHECK_THROWS_AS(BootPlan(64 * kMiB, 1, image_with({{0xfffff, 0x10}})), ImageError);
    CHECK_THROWS_WITH(BootPlan(64 * kMiB, 1, image_with({{0x80000, 0x100}})), Contains("0x80000"));
    // A later segment in the reserved area is caught too.
    CHECK_THROWS_AS(BootPlan(64 * kMiB, 1, image_with({{0x100000, 0x100}, {0x2000, 0x10}})),
                    ImageError);
}

TEST_CASE("BootPlan rejects image segments that reach the stack area", "[boot][plan]") {
    const std::uint64_t mem = 64 * kMiB;
    for (unsigned vcpus : {1u, 3u}) {
        const std::uint64_t heap_end = mem - vcpus * kSlot;
        INFO(vcpus << " vCPUs, stacks from 0x" << std::hex << heap_end);
        // Exactly up to the stacks is fine...
        CHECK_NOTHROW(BootPlan(mem, vcpus, image_with({{0x100000, heap_end - 0x100000}})));
        // ...one byte more is not, nor a segment inside the stacks or past RAM.
        CHECK_THROWS_AS(BootPlan(mem, vcpus, image_with({{0x100000, heap_end - 0x100000 + 1}})),
                        ImageError);
        CHECK_THROWS_AS(BootPlan(mem, vcpus, image_with({{heap_end, 0x10}})), ImageError);
        CHECK_THROWS_AS(BootPlan(mem, vcpus, image_with({{mem - 0x10, 0x10}})), ImageError);
        CHECK_THROWS_AS(BootPlan(mem, vcpus, image_with({{mem + 0x1000, 0x10}})), ImageError);
        CHECK_THROWS_AS(BootPlan(mem, vcpus, image_with({{0x100000, 0x10}, {heap_end - 8, 0x10}})),
                        ImageError);
        // A size that wraps the address space.
        CHECK_THROWS_AS(BootPlan(mem, vcpus, image_with({{0x200000, UINT64_MAX - 0x1000}})),
                        ImageError);
    }
}

TEST_CASE("BootPlan heap and stacks", "[boot][plan]") {
    for (unsigned vcpus : {1u, 2u, 7u}) {
        for (std::uint64_t mem : {64 * kMiB, 64 * kMiB + 12 * 1024, 3 * kMiB + 40 * 4096}) {
            if (mem < min_mem(vcpus)) continue;
            for (std::uint64_t image_size : {1ull, 100ull, 0x1000ull, 0x1001ull, 0x12345ull}) {
                if (L::kImageBase + image_size > mem - vcpus * kSlot) continue;
                INFO(vcpus << " vCPUs, RAM " << mem << ", image " << image_size << " bytes");
                BootPlan plan(mem, vcpus, small_flat(image_size));
                CHECK(plan.mem_size() == mem);
                CHECK(plan.nr_vcpus() == vcpus);
                CHECK(plan.entry() == L::kImageBase);
                CHECK(plan.heap_start() % L::kPageSize == 0);
                CHECK(plan.heap_start() >= L::kImageBase + image_size);
                CHECK(plan.heap_start() < L::kImageBase + image_size + L::kPageSize);
                CHECK(plan.heap_end() == mem - vcpus * kSlot);
                CHECK(plan.heap_end() % L::kPageSize == 0);
                CHECK(plan.heap_start() <= plan.heap_end());

                std::set<std::uint64_t> tops;
                for (unsigned i = 0; i < vcpus; ++i) {
                    std::uint64_t top = plan.stack_top(i);
                    INFO("vCPU " << i << " stack top 0x" << std::hex << top);
                    CHECK(top % 16 == 0);
                    CHECK(top <= mem);
                    // The whole stack lies above the heap.
                    CHECK(top - L::kVcpuStackSize >= plan.heap_end());
                    tops.insert(top);
                }
                CHECK(tops.size() == vcpus);
                // Consecutive stacks are a full stack apart, so none overlaps another.
                for (auto it = tops.begin(); std::next(it) != tops.end(); ++it)
                    CHECK(*std::next(it) - *it >= kSlot);
            }
        }
    }
}

TEST_CASE("BootPlan heap starts after the highest ELF segment", "[boot][plan]") {
    BootPlan plan(64 * kMiB, 1, image_with({{0x100000, 0x800}, {0x300000, 0x10}}));
    CHECK(plan.heap_start() == 0x301000);
}

TEST_CASE("BootPlan::max_image_size is RAM minus the reserved MiB and the stacks", "[boot][plan]") {
    CHECK(BootPlan::max_image_size(64 * kMiB, 1) == 64 * kMiB - kSlot - L::kImageBase);
    CHECK(BootPlan::max_image_size(64 * kMiB, 4) == 64 * kMiB - 4 * kSlot - L::kImageBase);
    CHECK_THROWS_AS(BootPlan::max_image_size(64 * kMiB, 0), ConfigError);
    CHECK_THROWS_AS(BootPlan::max_image_size(1 * kMiB, 1), ConfigError);
    // An image of exactly that size fits.
    auto max = BootPlan::max_image_size(8 * kMiB, 2);
    CHECK_NOTHROW(BootPlan(8 * kMiB, 2, small_flat(max)));
    CHECK_THROWS_AS(BootPlan(8 * kMiB, 2, small_flat(max + 1)), ImageError);
}
