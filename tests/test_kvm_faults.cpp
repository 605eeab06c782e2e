// Guests that misbehave: CPU exceptions and hypercalls with bad pointers must
// stop the VM with a clear one-line message, never hang or touch host memory.
#include <catch2/catch.hpp>

#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "kvm_support.hpp"
#include "minivmm/guest_image.hpp"

using Catch::Matchers::Contains;
using minivmm::GuestImage;
using minivmm::VmExit;
using minivmm::test::describe;
using minivmm::test::guest_path;
using minivmm::test::GuestOptions;
using minivmm::test::run_guest;

namespace {

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kMem = 64 * kMiB;

struct FaultCase {
    const char* mode;
    const char* vector;               // mnemonic and number as printed
    std::optional<std::uint64_t> cr2; // for #PF
    std::optional<std::uint64_t> error;
};

// The value of "name=0x..." in a fault message.
std::optional<std::uint64_t> hex_field(const std::string& message, const std::string& name) {
    auto at = message.find(name + "=0x");
    if (at == std::string::npos) return {};
    const char* first = message.data() + at + name.size() + 3;
    const char* last = message.data() + message.size();
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(first, last, value, 16);
    if (ec != std::errc() || end == first) return {};
    if (end != last && std::isxdigit(static_cast<unsigned char>(*end))) return {};
    return value;
}

// The byte of the ELF image at guest address `gpa`, if the image has one there.
std::optional<std::uint8_t> image_byte(const GuestImage& image, std::uint64_t gpa) {
    for (const auto& s : image.segments)
        if (gpa >= s.gpa && gpa - s.gpa < s.data.size())
            return std::to_integer<std::uint8_t>(s.data[gpa - s.gpa]);
    return {};
}

bool in_executable_segment(const GuestImage& image, std::uint64_t gpa) {
    for (const auto& s : image.segments)
        if (s.executable && gpa >= s.gpa && gpa - s.gpa < s.mem_size) return true;
    return false;
}

} // namespace

TEST_CASE("guest exceptions stop the VM with vector, vCPU, RIP and error code", "[kvm][fault]") {
    // One generated run per exception, so one failing case does not hide the others.
    const FaultCase c = GENERATE(values<FaultCase>({
        {"ud", "#UD (6)", {}, 0},
        {"pf", "#PF (14)", 0, 0x4},                   // user read, not present
        {"pf-high", "#PF (14)", kMem + 0x10000, 0x6}, // user write, not present
        {"pf-ro", "#PF (14)", 0x1000, 0x7},           // user write, present (read-only)
        {"gp", "#GP (13)", {}, 0},
        {"de", "#DE (0)", {}, 0},
        {"bp", "#BP (3)", {}, 0},
    }));
    // The ELF, so that the faulting RIP can be checked against the code there.
    const GuestImage image = GuestImage::load_file(guest_path("fault.elf"), kMem);

    INFO("fault -- " << c.mode);
    auto run = run_guest(GuestOptions("fault.elf", c.mode).with_mem(kMem));
    INFO("exit: " << describe(run.exit));
    INFO("console: " << run.console);
    REQUIRE(run.exit.kind == VmExit::Kind::guest_fault);
    const std::string& msg = run.exit.message;
    CHECK_THAT(msg, Contains(c.vector));
    CHECK_THAT(msg, Contains("vcpu 0"));
    CHECK_THAT(msg, Contains("rip=0x"));
    CHECK(msg.find('\n') == std::string::npos);
    CHECK(run.exit.vcpu == 0);
    CHECK(run.console.empty()); // the guest's "raised no exception" line never came

    auto rip = hex_field(msg, "rip");
    REQUIRE(rip.has_value());
    CHECK(in_executable_segment(image, *rip));
    if (std::string(c.mode) == "ud") { // RIP of the faulting ud2 (0f 0b)
        CHECK(image_byte(image, *rip) == 0x0f);
        CHECK(image_byte(image, *rip + 1) == 0x0b);
    } else if (std::string(c.mode) == "gp") { // RIP of the hlt
        CHECK(image_byte(image, *rip) == 0xf4);
    } else if (std::string(c.mode) == "bp") { // #BP is a trap: RIP follows the int3
        CHECK(image_byte(image, *rip - 1) == 0xcc);
    }

    if (c.error) {
        auto error = hex_field(msg, "error");
        REQUIRE(error.has_value());
        CHECK(*error == *c.error);
    }
    if (c.cr2) {
        auto cr2 = hex_field(msg, "cr2");
        REQUIRE(cr2.has_value());
        CHECK(*cr2 == *c.cr2);
        CHECK_THAT(msg, Contains(fmt::format("cr2={:#x}", *c.cr2)));
    } else {
        CHECK_THAT(msg, !Contains("cr2="));
    }
}

TEST_CASE("a fault stops the whole VM when other vCPUs have halted", "[kvm][fault]") {
    // fault raises on vCPU 0 only; vCPU 1 parks in the halt hypercall.
    auto run = run_guest(GuestOptions("fault.bin", "ud").with_vcpus(2));
    INFO("exit: " << describe(run.exit));
    REQUIRE(run.exit.kind == VmExit::Kind::guest_fault);
    CHECK_THAT(run.exit.message, Contains("#UD (6)") && Contains("vcpu 0"));
}

TEST_CASE("hypercalls with pointers outside guest RAM stop the guest", "[kvm][badptr]") {
    const std::string mode =
        GENERATE(as<std::string>{}, "write-buf-outside", "write-len-overflow", "write-len-beyond",
                 "block-outside", "block-straddle", "exit-outside");
    INFO("badptr -- " << mode);
    auto run = run_guest(GuestOptions("badptr.bin", mode));
    INFO("exit: " << describe(run.exit));
    INFO("console: " << run.console);
    CHECK(run.exit.kind == VmExit::Kind::guest_fault);
    CHECK_THAT(run.exit.message, Contains("outside guest RAM"));
    CHECK_THAT(run.exit.message, Contains("hypercall"));
    CHECK(run.exit.message.find('\n') == std::string::npos);
    CHECK(run.exit.vcpu == 0);
    CHECK_THAT(run.console, !Contains("VMM did not stop the guest"));
    CHECK_THAT(run.console, !Contains("usage"));
}
