// RamBlock backings and options, and DirtyBitmap.
#include <sys/mman.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "minivmm/error.hpp"
#include "minivmm/ram_block.hpp"
#include "skip.hpp"
#include "test_util.hpp"

using minivmm::DirtyBitmap;
using minivmm::RamBlock;
using minivmm::RamBlockOptions;
using Backing = RamBlockOptions::Backing;
using minivmm::test::skip_test;

namespace {

constexpr std::uint64_t kHuge = 2ull << 20;

std::uint64_t free_huge_pages() {
    std::ifstream in("/proc/sys/vm/nr_hugepages");
    std::uint64_t n = 0;
    in >> n;
    return n;
}

bool aligned_2m(const RamBlock& b) {
    return reinterpret_cast<std::uintptr_t>(b.host()) % kHuge == 0;
}

// A fake sysfs huge page pool directory: the kernel's files, as plain files.
class FakePool {
  public:
    FakePool(std::uint64_t nr, std::uint64_t free, std::uint64_t resv) {
        char tmpl[] = "/tmp/minivmm-pool-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        dir_ = tmpl;
        write("nr_hugepages", nr);
        write("free_hugepages", free);
        write("resv_hugepages", resv);
    }
    ~FakePool() { std::filesystem::remove_all(dir_); }
    FakePool(const FakePool&) = delete;
    FakePool& operator=(const FakePool&) = delete;

    const std::string& dir() const { return dir_; }
    void write(const char* file, std::uint64_t n) const {
        std::ofstream(dir_ + "/" + file) << n << "\n";
    }
    std::uint64_t read(const char* file) const {
        std::ifstream in(dir_ + "/" + file);
        std::uint64_t n = 0;
        in >> n;
        return n;
    }

  private:
    std::string dir_;
};

// Bytes of the range [p, p + size) that /proc/self/smaps shows backed by THP.
std::uint64_t anon_huge_bytes(const void* p, std::uint64_t size) {
    const auto lo = reinterpret_cast<std::uintptr_t>(p), hi = lo + size;
    std::ifstream in("/proc/self/smaps");
    std::string line;
    bool inside = false;
    std::uint64_t kb_total = 0;
    while (std::getline(in, line)) {
        std::uintptr_t start = 0, end = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx ", &start, &end) == 2 &&
            line.find(':') > line.find(' ')) {
            inside = start < hi && end > lo;
            continue;
        }
        std::uint64_t kb = 0;
        if (inside && std::sscanf(line.c_str(), "AnonHugePages: %lu kB", &kb) == 1) kb_total += kb;
    }
    return kb_total << 10;
}

bool thp_possible() {
    std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string text;
    std::getline(in, text);
    return !text.empty() && text.find("[never]") == std::string::npos;
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

TEST_CASE("RamBlock: every backing is 2 MiB aligned, sized and zeroed", "[memory][ram]") {
    minivmm::test::HugePagePoolLock pool_lock;
    for (Backing backing : {Backing::anonymous, Backing::memfd, Backing::hugetlbfs}) {
        RamBlockOptions o;
        o.backing = backing;
        o.hugetlb_grow_pool = false; // this test leaves the kernel's pool alone
        for (std::uint64_t size : {2 * kHuge, 4 * kHuge, 3 * kHuge}) {
            INFO("backing " << static_cast<int>(backing) << ", size " << size);
            RamBlock b("al", size, o);
            CHECK(b.size() == size);
            CHECK(b.bytes().size() == size);
            CHECK(aligned_2m(b));
            CHECK(b.host()[size - 1] == std::byte{0});
            b.host()[size - 1] = std::byte{1};
            CHECK(b.dirty().pages() == size / 4096);
            CHECK(b.huge_pages_added() == 0);
        }
    }
    // Not a 2 MiB multiple: still aligned at the start.
    RamBlock odd("odd", 3 * 4096);
    CHECK(aligned_2m(odd));
    CHECK(odd.size() == 3 * 4096);
}

TEST_CASE("RamBlock: THP backs a 2 MiB aligned prefaulted block with huge pages", "[memory][ram]") {
    if (!thp_possible())
        return skip_test("transparent huge pages are disabled on this host",
                         "MINIVMM_REQUIRE_HUGE_PAGES");
    RamBlockOptions o;
    o.transparent_huge_pages = true;
    o.prefault = true;
    RamBlock b("thp", 16 * kHuge, o);
    REQUIRE(aligned_2m(b));
    // Some pages may stay small when memory is fragmented, but not all.
    CHECK(anon_huge_bytes(b.host(), b.size()) >= 2 * kHuge);
    RamBlockOptions small;
    small.prefault = true;
    RamBlock plain("plain", 16 * kHuge, small);
    CHECK(anon_huge_bytes(plain.host(), plain.size()) == 0); // madvise mode: only when asked
}

TEST_CASE("RamBlock: hugetlbfs falls back when the pool cannot grow", "[memory][ram]") {
    RamBlockOptions o;
    o.backing = Backing::hugetlbfs;
    SECTION("not allowed to grow (as a non-root process)") {
        FakePool pool(0, 0, 0);
        o.hugetlb_pool_dir = pool.dir();
        o.hugetlb_grow_pool = false;
        RamBlock b("h", 4 * kHuge, o);
        CHECK(b.backing() == Backing::anonymous);
        CHECK(b.page_size() == 4096);
        CHECK(b.fd() == -1);
        CHECK(aligned_2m(b));
        CHECK(pool.read("nr_hugepages") == 0); // untouched
        o.hugetlb_fallback = false;
        CHECK_THROWS_AS(RamBlock("h", 4 * kHuge, o), minivmm::SystemError);
    }
    SECTION("an unreadable pool is no huge pages") {
        o.hugetlb_pool_dir = "/nonexistent/minivmm-pool";
        RamBlock b("h", 2 * kHuge, o);
        CHECK(b.backing() == Backing::anonymous);
    }
}

TEST_CASE("RamBlock: as root, a pool the kernel does not fill is raised and put back",
          "[memory][ram]") {
    if (::geteuid() != 0)
        return skip_test("not root: the pool is never grown", "MINIVMM_REQUIRE_HUGE_PAGES");
    // 3 free but 1 promised: 2 available, 4 needed, so the block asks for 2
    // more; the fake's free count never changes, so it gives up.
    FakePool pool(10, 3, 1);
    RamBlockOptions o;
    o.backing = Backing::hugetlbfs;
    o.hugetlb_pool_dir = pool.dir();
    RamBlock b("h", 4 * kHuge, o);
    CHECK(b.backing() == Backing::anonymous);
    CHECK(b.huge_pages_added() == 0);
    CHECK(pool.read("nr_hugepages") == 10);
}

TEST_CASE("RamBlock: as root, hugetlbfs grows the pool and gives the pages back", "[memory][ram]") {
    minivmm::test::HugePagePoolLock pool_lock;
    minivmm::HugePagePool pool;
    if (::geteuid() != 0)
        return skip_test("not root: the pool is never grown", "MINIVMM_REQUIRE_HUGE_PAGES");
    std::uint64_t before = 0;
    try {
        before = pool.total();
    } catch (const minivmm::Error& e) {
        return skip_test(std::string("no 2 MiB huge page pool here (") + e.what() + ")",
                         "MINIVMM_REQUIRE_HUGE_PAGES");
    }
    RamBlockOptions o;
    o.backing = Backing::hugetlbfs;
    o.hugetlb_fallback = false;
    const std::uint64_t pages = pool.available() + 3; // more than are free
    {
        RamBlock b("h", pages * kHuge, o);
        CHECK(b.backing() == Backing::hugetlbfs);
        CHECK(b.page_size() == kHuge);
        CHECK(b.huge_pages_added() >= 3);
        CHECK(pool.total() >= before + 3);
        CHECK(aligned_2m(b));
        b.host()[b.size() - 1] = std::byte{9};
        CHECK(b.bytes()[b.size() - 1] == std::byte{9});
    }
    CHECK(pool.total() == before);
}

TEST_CASE("RamBlock: hugetlbfs uses 2 MiB pages or falls back as asked", "[memory][ram]") {
    minivmm::test::HugePagePoolLock pool_lock;
    RamBlockOptions o;
    o.backing = Backing::hugetlbfs;
    o.hugetlb_grow_pool = false;
    if (free_huge_pages() >= 1) {
        RamBlock b("h", 2 << 20, o);
        CHECK(b.backing() == Backing::hugetlbfs);
        CHECK(b.page_size() == (2u << 20));
    } else {
        RamBlock b("h", 2 << 20, o); // falls back, with a warning
        CHECK(b.backing() == Backing::anonymous);
        o.hugetlb_fallback = false;
        CHECK_THROWS_AS(RamBlock("h", 2 << 20, o), minivmm::SystemError);
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
