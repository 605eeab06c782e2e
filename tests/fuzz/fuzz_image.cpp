// Fuzz target: the guest image loader. The input is an image file: it is
// parsed (flat or ELF64), placed by a BootPlan for 4 MiB of RAM and one vCPU,
// and loaded into guest RAM with the boot structures, as Vm does. A refusal
// must be an ImageError (ConfigError from the plan) with a one-line reason;
// an accepted image must satisfy what the loader promises and land in RAM
// byte for byte.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "fuzz_support.hpp"
#include "minivmm/boot.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/error.hpp"
#include "minivmm/guest_image.hpp"

using namespace minivmm;
using minivmm::fuzz::GuardedMemory;

namespace {

constexpr std::uint64_t kRam = 4ull << 20;

void check_reason(std::string_view why) {
    MINIVMM_FUZZ_CHECK(!why.empty());
    MINIVMM_FUZZ_CHECK(why.find('\n') == std::string_view::npos);
}

// What parse promises about an image it accepts (guest_image.hpp).
void check_parsed(const GuestImage& image, std::size_t input_size) {
    MINIVMM_FUZZ_CHECK(!image.segments.empty());
    if (image.format == GuestImage::Format::flat) {
        MINIVMM_FUZZ_CHECK(image.segments.size() == 1);
        MINIVMM_FUZZ_CHECK(image.entry == layout::kImageBase);
        MINIVMM_FUZZ_CHECK(image.segments[0].data.size() == input_size);
    }
    bool entry_ok = false;
    for (std::size_t i = 0; i < image.segments.size(); ++i) {
        const auto& s = image.segments[i];
        MINIVMM_FUZZ_CHECK(s.mem_size != 0);
        MINIVMM_FUZZ_CHECK(s.data.size() <= s.mem_size);
        MINIVMM_FUZZ_CHECK(s.data.size() <= input_size);
        MINIVMM_FUZZ_CHECK(range_within(s.gpa, s.mem_size, UINT64_MAX));
        if (i > 0)
            MINIVMM_FUZZ_CHECK(image.segments[i - 1].gpa + image.segments[i - 1].mem_size <= s.gpa);
        entry_ok =
            entry_ok || (s.executable && image.entry >= s.gpa && image.entry - s.gpa < s.mem_size);
    }
    MINIVMM_FUZZ_CHECK(entry_ok);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // Loaded images are checked against RAM afterwards; earlier ones' bytes
    // may remain elsewhere, which nothing reads.
    static GuardedMemory ram(kRam);
    const auto bytes = std::as_bytes(std::span(data, size));
    GuestImage image;
    try {
        image = GuestImage::parse(bytes, "fuzz");
    } catch (const ImageError& e) {
        check_reason(e.what());
        MINIVMM_FUZZ_CHECK(std::string_view(e.what()).starts_with("fuzz: "));
        return 0;
    }
    check_parsed(image, size);

    std::optional<BootPlan> plan;
    try {
        plan.emplace(kRam, 1, image);
    } catch (const Error& e) { // ImageError or ConfigError
        check_reason(e.what());
        return 0;
    }
    for (const auto& s : image.segments) {
        MINIVMM_FUZZ_CHECK(s.gpa >= layout::kReservedEnd);
        MINIVMM_FUZZ_CHECK(range_within(s.gpa, s.mem_size, plan->heap_end()));
    }
    MINIVMM_FUZZ_CHECK(plan->heap_start() >= image.end());
    MINIVMM_FUZZ_CHECK(plan->heap_start() <= plan->heap_end());
    MINIVMM_FUZZ_CHECK(plan->entry() == image.entry);

    // A plan that accepted the image guarantees that building the guest works.
    build_guest(ram.mem(), *plan, image, 1000000, "fuzz");
    for (const auto& s : image.segments) {
        const std::byte* at = ram.host() + s.gpa;
        if (!s.data.empty()) MINIVMM_FUZZ_CHECK(std::memcmp(at, s.data.data(), s.data.size()) == 0);
        for (std::uint64_t i = s.data.size(); i < s.mem_size; ++i)
            MINIVMM_FUZZ_CHECK(at[i] == std::byte{0});
    }
    return 0;
}
