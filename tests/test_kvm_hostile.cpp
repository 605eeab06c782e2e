// Hostile guests (guest/tests/hostile.c): each attack gets a clean error and
// leaves the host untouched. Attacks on the hypercall ABI stop the guest with
// one line (status 126); attacks on the block rings fail with a status while
// the VMM goes on, and the disk image is unchanged; writes to the VMM's
// reserved memory fault in the guest. Run by minivmm-run, sandbox on, so a
// VMM that tried anything unexpected would also be caught by seccomp.
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "kvm_support.hpp"
#include "test_util.hpp"

using Catch::Matchers::Contains;
using minivmm::test::describe;
using minivmm::test::guest_path;
using minivmm::test::run_minivmm;

namespace {
std::vector<std::byte> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::byte> out(raw.size());
    std::memcpy(out.data(), raw.data(), raw.size());
    return out;
}
} // namespace

TEST_CASE("hostile guests: bad hypercall arguments stop the guest with one line",
          "[kvm][hostile]") {
    struct Case {
        const char* mode;
        const char* says;
    };
    for (auto c : {Case{"hc-wrap", "outside guest RAM"}, Case{"hc-block-4g", "outside guest RAM"},
                   Case{"memmap-cap", "larger than guest RAM"},
                   Case{"memmap-reserved", "not writable guest RAM"},
                   Case{"claim-reserved", "not writable guest RAM"}}) {
        CAPTURE(c.mode);
        auto r = run_minivmm({"--mem", "64M", guest_path("hostile.bin"), "--", c.mode});
        INFO(describe(r));
        CHECK(r.status == 126);
        CHECK_THAT(r.err, Contains("bad hypercall") && Contains(c.says));
        CHECK(minivmm::test::line_count(r.err) == 1);
        CHECK_THAT(r.out, !Contains("did not stop"));
    }
}

TEST_CASE("hostile guests: writes to the VMM's reserved memory fault", "[kvm][hostile]") {
    for (auto [mode, cr2] :
         {std::pair{"write-gdt", "cr2=0x3000"}, std::pair{"write-pagetable", "cr2=0x12000"}}) {
        CAPTURE(mode);
        auto r = run_minivmm({"--mem", "64M", guest_path("hostile.bin"), "--", mode});
        INFO(describe(r));
        CHECK(r.status == 126);
        CHECK_THAT(r.err, Contains("#PF") && Contains(cr2));
        CHECK_THAT(r.out, !Contains("did not stop"));
    }
}

TEST_CASE("hostile guests: ring attacks fail alone and leave the disk as it was",
          "[kvm][hostile]") {
    std::vector<std::byte> contents(1 << 20);
    for (std::size_t i = 0; i < contents.size(); ++i)
        contents[i] = static_cast<std::byte>(i * 7 + 3);
    for (std::string io : {"exit", "ioeventfd", "poll"})
        for (std::string mode : {"ring-self", "ring-tail"}) {
            CAPTURE(io, mode);
            minivmm::test::TempFile disk(contents);
            auto r = run_minivmm({"--mem", "64M", "--disk", disk.path(), "--blk-io=" + io,
                                  guest_path("hostile.bin"), "--", mode},
                                 std::chrono::seconds(30));
            INFO(describe(r));
            CHECK(r.status == 0);
            CHECK_THAT(r.out, Contains("hostile: " + mode + " ok"));
            CHECK(file_bytes(disk.path()) == contents);
        }
}
