// A Linux program's memory (src/program/guest_frames.*, page_tables.*,
// process_memory.*): frame allocation, the page tables the VMM builds, and
// the memory system calls, with guest RAM in host buffers. The page tables
// are decoded here, independently, by walking them from CR3 through the
// tables' host bytes.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "minivmm/error.hpp"
#include "minivmm/host_mapping.hpp"
#include "program/file_table.hpp"
#include "program/guest_frames.hpp"
#include "program/page_tables.hpp"
#include "program/process_memory.hpp"
#include "test_util.hpp"

namespace {

using minivmm::ConfigError;
using minivmm::HostMapping;
using minivmm::UniqueFd;
using minivmm::linux_abi::FileKind;
using minivmm::linux_abi::FileTable;
using minivmm::linux_abi::FrameAllocator;
using minivmm::linux_abi::kLargePageSize;
using minivmm::linux_abi::kPageSize;
using minivmm::linux_abi::OpenFile;
using minivmm::linux_abi::PageFlags;
using minivmm::linux_abi::PageTables;
using minivmm::linux_abi::PhysicalRange;
using minivmm::linux_abi::ProcessMemory;
using minivmm::linux_abi::SyscallArgs;
using minivmm::linux_abi::Vma;

constexpr std::uint64_t kDataGpa = 0x100000;
constexpr std::uint64_t kDataSize = 64ull << 20;
constexpr std::uint64_t kTablesGpa = 0x10000000;
constexpr std::uint64_t kTablesSize = 2ull << 20;
constexpr std::uint64_t kMmapTop = 0x7f0000000000ull;
constexpr std::uint64_t kUserEnd = 0x7ffffffff000ull;

// Entry bits, spelled out here rather than taken from PageTables.
constexpr std::uint64_t P = 1, RW = 2, US = 4, A = 0x20, D = 0x40, PS = 0x80, NX = 1ull << 63;
constexpr std::uint64_t kAddr = 0x000ffffffffff000ull;

constexpr std::uint64_t kR = PROT_READ, kW = PROT_WRITE, kX = PROT_EXEC;
constexpr std::uint64_t kAnon = MAP_PRIVATE | MAP_ANONYMOUS;

std::int64_t neg(int err) {
    return -static_cast<std::int64_t>(err);
}

std::vector<std::byte> bytes_of(std::uint64_t value) {
    std::vector<std::byte> out(8);
    std::memcpy(out.data(), &value, 8);
    return out;
}

// A program's memory over fresh anonymous host buffers.
struct Process {
    explicit Process(std::uint64_t tables_size = kTablesSize, std::uint64_t data_size = kDataSize,
                     std::uint64_t mmap_top = kMmapTop)
        : data(HostMapping::anonymous(data_size)), tables(HostMapping::anonymous(tables_size)),
          mem(PhysicalRange{kDataGpa, data.bytes()}, PhysicalRange{kTablesGpa, tables.bytes()},
              ProcessMemory::Layout{0x10000, mmap_top, kUserEnd}) {}

    std::int64_t sys(std::uint64_t nr, std::uint64_t a0 = 0, std::uint64_t a1 = 0,
                     std::uint64_t a2 = 0, std::uint64_t a3 = 0, std::uint64_t a4 = 0,
                     std::uint64_t a5 = 0) {
        SyscallArgs args;
        args.nr = nr;
        std::uint64_t values[6] = {a0, a1, a2, a3, a4, a5};
        std::copy(values, values + 6, args.a);
        auto r = mem.call(args, files);
        REQUIRE(r.has_value());
        return *r;
    }
    std::int64_t mmap(std::uint64_t addr, std::uint64_t len, std::uint64_t prot,
                      std::uint64_t flags, std::uint64_t fd = ~0ull, std::uint64_t off = 0) {
        return sys(SYS_mmap, addr, len, prot, flags, fd, off);
    }
    std::uint64_t map_anon(std::uint64_t len, std::uint64_t prot = kR | kW, std::uint64_t addr = 0,
                           std::uint64_t extra = 0) {
        std::int64_t r = mmap(addr, len, prot, kAnon | extra);
        REQUIRE(r > 0);
        return static_cast<std::uint64_t>(r);
    }
    std::int64_t munmap(std::uint64_t addr, std::uint64_t len) {
        return sys(SYS_munmap, addr, len);
    }
    std::int64_t mprotect(std::uint64_t addr, std::uint64_t len, std::uint64_t prot) {
        return sys(SYS_mprotect, addr, len, prot);
    }
    std::int64_t madvise(std::uint64_t addr, std::uint64_t len, std::uint64_t advice) {
        return sys(SYS_madvise, addr, len, advice);
    }

    std::uint64_t table_entry(std::uint64_t table_pa, std::size_t index) const {
        REQUIRE(table_pa >= kTablesGpa);
        REQUIRE(table_pa + kPageSize <= kTablesGpa + tables.size());
        std::uint64_t e;
        std::memcpy(&e, tables.bytes().data() + (table_pa - kTablesGpa) + index * 8, 8);
        return e;
    }

    // The leaf entry for `va` (present or not), and its level (1: 4 KiB,
    // 2: 2 MiB); checks every table entry on the way.
    struct Leaf {
        std::uint64_t entry = 0;
        int level = 0;
        std::uint64_t pa(std::uint64_t va) const {
            std::uint64_t size = level == 2 ? kLargePageSize : kPageSize;
            return (entry & kAddr & ~(size - 1)) + va % size;
        }
    };
    std::optional<Leaf> walk(std::uint64_t va) const {
        std::uint64_t table = mem.cr3();
        for (int level = 4; level >= 1; --level) {
            std::uint64_t e = table_entry(table, (va >> (12 + 9 * (level - 1))) & 511);
            if (e == 0) return std::nullopt;
            if (level == 1 || (level == 2 && (e & PS))) return Leaf{e, level};
            // A table entry: present, writable, user, accessed, executable,
            // so that the leaf alone decides.
            CHECK((e & (P | RW | US | A)) == (P | RW | US | A));
            CHECK((e & (NX | PS)) == 0);
            table = e & kAddr;
        }
        return std::nullopt;
    }
    // Checks that `va`'s leaf is what `prot` asks for (user pages).
    void check_leaf(std::uint64_t va, std::uint64_t prot) const {
        INFO("va " << std::hex << va << " prot " << prot);
        auto leaf = walk(va);
        REQUIRE(leaf);
        std::uint64_t e = leaf->entry;
        if ((prot & 7) == 0) {
            CHECK((e & P) == 0);
            return;
        }
        CHECK((e & P) != 0);
        CHECK((e & US) != 0);
        CHECK((e & (A | D)) == (A | D));
        CHECK(((e & RW) != 0) == ((prot & kW) != 0));
        CHECK(((e & NX) != 0) == ((prot & kX) == 0));
    }

    std::uint64_t read64(std::uint64_t va) const {
        std::array<std::byte, 8> b{};
        REQUIRE(mem.peek(va, b));
        std::uint64_t v;
        std::memcpy(&v, b.data(), 8);
        return v;
    }
    void write64(std::uint64_t va, std::uint64_t v) { REQUIRE(mem.poke(va, bytes_of(v))); }

    HostMapping data;
    HostMapping tables;
    ProcessMemory mem;
    FileTable files;
};

// An open file in `files` for a guest fd.
int add_file(FileTable& files, const std::string& path, int flags, FileKind kind) {
    auto file = std::make_shared<OpenFile>();
    file->host.reset(::open(path.c_str(), flags | O_CLOEXEC));
    REQUIRE(file->host.get() >= 0);
    file->kind = kind;
    int fd = files.add(std::move(file), false);
    REQUIRE(fd >= 0);
    return fd;
}

} // namespace

// ---------------------------------------------------------------------------
// FrameAllocator

TEST_CASE("FrameAllocator hands out distinct zeroed frames and takes them back",
          "[process-memory]") {
    auto ram = HostMapping::anonymous(4 << 20);
    FrameAllocator frames(PhysicalRange{0x100000, ram.bytes()});
    CHECK(frames.free_bytes() == 4u << 20);
    std::set<std::uint64_t> seen;
    for (int i = 0; i < 1024; ++i) {
        auto gpa = frames.alloc_4k();
        REQUIRE(gpa);
        CHECK(*gpa % kPageSize == 0);
        CHECK(*gpa >= 0x100000);
        CHECK(*gpa < 0x100000 + (4u << 20));
        CHECK(seen.insert(*gpa).second);
    }
    CHECK_FALSE(frames.alloc_4k());
    CHECK_FALSE(frames.alloc_2m());
    CHECK(frames.free_bytes() == 0);
    // Written, freed, handed out again: zero.
    std::uint64_t some = *seen.begin();
    std::memset(frames.host(some, kPageSize).data(), 0xab, kPageSize);
    frames.free_4k(some);
    CHECK(frames.free_bytes() == kPageSize);
    auto again = frames.alloc_4k();
    REQUIRE(again);
    CHECK(*again == some);
    auto bytes = frames.host(*again, kPageSize);
    CHECK(std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; }));
    // A frame that is not allocated, or outside: refused, nothing freed.
    frames.free_4k(some);
    CHECK_THROWS_AS(frames.free_4k(some), std::invalid_argument);
    CHECK_THROWS_AS(frames.free_4k(0x100000 + (4u << 20)), std::invalid_argument);
    CHECK(frames.free_bytes() == kPageSize);
    CHECK_THROWS_AS(frames.host(0x100000 + (4u << 20) - kPageSize, 2 * kPageSize),
                    std::out_of_range);
    CHECK_THROWS_AS(frames.host(0xff000, kPageSize), std::out_of_range);
}

TEST_CASE("FrameAllocator gives 2 MiB runs aligned, also after 4 KiB churn", "[process-memory]") {
    // [1 MiB, 7 MiB): the 2 MiB-aligned runs are at 2 and 4 MiB only.
    auto ram = HostMapping::anonymous(6 << 20);
    FrameAllocator frames(PhysicalRange{0x100000, ram.bytes()});
    std::vector<std::uint64_t> small;
    // Churn: take every frame one by one, then give them back in a shuffled order.
    while (auto gpa = frames.alloc_4k())
        small.push_back(*gpa);
    CHECK(small.size() == 1536);
    std::mt19937 rng(7);
    std::shuffle(small.begin(), small.end(), rng);
    for (std::uint64_t gpa : small)
        frames.free_4k(gpa);
    auto first = frames.alloc_2m();
    auto second = frames.alloc_2m();
    REQUIRE(first);
    REQUIRE(second);
    CHECK(*first == 0x200000);
    CHECK(*second == 0x400000);
    CHECK_FALSE(frames.alloc_2m()); // the edge chunks are not whole
    // 4 KiB frames come from partly used chunks first: a whole one stays whole.
    frames.free_2m(*second);
    auto one = frames.alloc_4k();
    REQUIRE(one);
    CHECK((*one < 0x400000 || *one >= 0x600000));
    CHECK(frames.alloc_2m() == std::optional<std::uint64_t>(0x400000));
    // A 2 MiB run may be given back frame by frame.
    for (std::uint64_t gpa = 0x200000; gpa < 0x400000; gpa += kPageSize)
        frames.free_4k(gpa);
    CHECK(frames.alloc_2m() == std::optional<std::uint64_t>(0x200000));
    // Written 2 MiB run, freed, taken again: zero.
    std::memset(frames.host(0x200000, kLargePageSize).data(), 0x5a, kLargePageSize);
    frames.free(0x200000, kLargePageSize);
    REQUIRE(frames.alloc_2m() == std::optional<std::uint64_t>(0x200000));
    auto bytes = frames.host(0x200000, kLargePageSize);
    CHECK(std::all_of(bytes.begin(), bytes.end(), [](std::byte b) { return b == std::byte{0}; }));
    CHECK_THROWS_AS(frames.free_2m(0x201000), std::invalid_argument);
}

TEST_CASE("FrameAllocator zeroes shared and file-backed host memory too", "[process-memory]") {
    // madvise(MADV_DONTNEED) would not zero these: MADV_REMOVE or memset must.
    SECTION("a shared memfd mapping") {
        int fd = ::memfd_create("frames", MFD_CLOEXEC);
        REQUIRE(fd >= 0);
        UniqueFd owner(fd);
        REQUIRE(::ftruncate(fd, 1 << 20) == 0);
        HostMapping shared = HostMapping::of_fd(fd, 1 << 20, PROT_READ | PROT_WRITE);
        std::memset(shared.bytes().data(), 0x77, 1 << 20); // the allocator zeroes it all
        FrameAllocator frames(PhysicalRange{0x0, shared.bytes()});
        auto gpa = frames.alloc_4k();
        REQUIRE(gpa);
        CHECK(frames.host(*gpa, 8)[0] == std::byte{0});
        std::memset(frames.host(*gpa, kPageSize).data(), 0x11, kPageSize);
        frames.free_4k(*gpa);
        CHECK(frames.host(*gpa, kPageSize)[100] == std::byte{0});
    }
    SECTION("a private file mapping") {
        std::vector<std::byte> contents(1 << 20, std::byte{0x42});
        minivmm::test::TempFile file(contents);
        UniqueFd fd(::open(file.path().c_str(), O_RDONLY | O_CLOEXEC));
        REQUIRE(fd.get() >= 0);
        void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
        REQUIRE(p != MAP_FAILED);
        HostMapping owner(p, 1 << 20);
        FrameAllocator frames(PhysicalRange{0x0, owner.bytes()});
        auto gpa = frames.alloc_4k();
        REQUIRE(gpa);
        CHECK(frames.host(*gpa, 8)[3] == std::byte{0});
        std::memset(frames.host(*gpa, kPageSize).data(), 0x11, kPageSize);
        frames.free_4k(*gpa);
        CHECK(frames.host(*gpa, kPageSize)[7] == std::byte{0});
    }
}

// ---------------------------------------------------------------------------
// PageTables

TEST_CASE("PageTables maps 2 MiB leaves where it can and 4 KiB ones elsewhere",
          "[process-memory]") {
    auto ram = HostMapping::anonymous(1 << 20);
    FrameAllocator table_frames(PhysicalRange{0x10000000, ram.bytes()});
    PageTables pt(table_frames);
    CHECK(pt.table_pages() == 1);
    // 4 KiB short of a 2 MiB boundary, 2 MiB, and 4 KiB over.
    const std::uint64_t va = 0x40000000 - kPageSize, pa = 0x80000000 - kPageSize;
    const std::uint64_t size = kLargePageSize + 2 * kPageSize;
    std::size_t need = pt.tables_needed_to_map(va, pa, size);
    pt.map(va, pa, size, PageFlags{.writable = true, .user = true, .executable = false});
    // Two 1 GiB regions: a PDPT, two PDs, two PTs.
    CHECK(need == 5);
    CHECK(pt.table_pages() == 1 + need);
    CHECK_FALSE(pt.shootdown_needed());
    auto head = pt.translate(va + 5);
    REQUIRE(head);
    CHECK(head->pa == pa + 5);
    CHECK(head->page_size == kPageSize);
    CHECK(head->flags.writable);
    CHECK(head->flags.user);
    CHECK_FALSE(head->flags.executable);
    auto middle = pt.translate(0x40000000 + 12345);
    REQUIRE(middle);
    CHECK(middle->page_size == kLargePageSize);
    CHECK(middle->pa == 0x80000000 + 12345);
    auto tail = pt.translate(0x40200000);
    REQUIRE(tail);
    CHECK(tail->page_size == kPageSize);
    CHECK_FALSE(pt.translate(0x40201000));
    CHECK_FALSE(pt.translate(va - kPageSize));
    // Not congruent modulo 2 MiB: no large leaf possible.
    pt.map(0x80000000, 0x1000, kLargePageSize, PageFlags{.user = true});
    CHECK(pt.translate(0x80000000)->page_size == kPageSize);
    CHECK_THROWS_AS(pt.map(1ull << 47, 0, kPageSize, {}), std::invalid_argument);
    CHECK_THROWS_AS(pt.map(0x1000, 0x123, kPageSize, {}), std::invalid_argument);
}

TEST_CASE("PageTables splits leaves, flags shootdowns and defers emptied tables",
          "[process-memory]") {
    auto ram = HostMapping::anonymous(1 << 20);
    FrameAllocator table_frames(PhysicalRange{0x10000000, ram.bytes()});
    PageTables pt(table_frames);
    const PageFlags rw{.writable = true, .user = true};
    pt.map(0x200000, 0x600000, 2 * kLargePageSize, rw);
    CHECK_FALSE(pt.shootdown_needed());
    CHECK(pt.tables_needed_to_split(0x201000, kPageSize) == 1);
    CHECK(pt.tables_needed_to_split(0x201000, kLargePageSize) == 2);
    CHECK(pt.tables_needed_to_split(0x200000, kLargePageSize) == 0);

    SECTION("adding permissions without a split needs no shootdown") {
        pt.protect(0x200000, kLargePageSize,
                   PageFlags{.writable = true, .user = true, .executable = true});
        CHECK_FALSE(pt.shootdown_needed());
        CHECK(pt.translate(0x200000)->flags.executable);
    }
    SECTION("a partial protect splits the leaf") {
        pt.protect(0x201000, kPageSize, PageFlags{.user = true});
        CHECK(pt.shootdown_needed());
        CHECK(pt.translate(0x201000)->page_size == kPageSize);
        CHECK_FALSE(pt.translate(0x201000)->flags.writable);
        CHECK(pt.translate(0x202000)->flags.writable);
        CHECK(pt.translate(0x202000)->pa == 0x602000);
        CHECK(pt.translate(0x400000)->page_size == kLargePageSize);
    }
    SECTION("not present keeps the frame") {
        pt.protect(0x200000, kPageSize, PageFlags{.user = true, .present = false});
        CHECK(pt.shootdown_needed());
        CHECK_FALSE(pt.translate(0x200000));
        REQUIRE(pt.lookup(0x200000));
        CHECK(pt.lookup(0x200000)->pa == 0x600000);
        pt.shootdown_done();
        pt.protect(0x200000, kPageSize, rw);
        CHECK_FALSE(pt.shootdown_needed());
        CHECK(pt.translate(0x200000)->pa == 0x600000);
    }
    SECTION("unmapping everything defers the tables until the shootdown") {
        const std::uint64_t free_before = table_frames.free_bytes();
        pt.unmap(0x201000, kPageSize); // splits one leaf: a PT more
        CHECK(pt.shootdown_needed());
        CHECK_FALSE(pt.translate(0x201000));
        CHECK(pt.translate(0x202000));
        CHECK(table_frames.free_bytes() == free_before - kPageSize);
        pt.unmap(0x200000, 2 * kLargePageSize);
        CHECK(pt.table_pages() == 1);
        CHECK(pt.deferred_table_pages() == 3);                       // PT, PD, PDPT
        CHECK(table_frames.free_bytes() == free_before - kPageSize); // nothing reused yet
        pt.shootdown_done();
        CHECK_FALSE(pt.shootdown_needed());
        CHECK(pt.deferred_table_pages() == 0);
        CHECK(table_frames.free_bytes() == free_before + 2 * kPageSize);
    }
    SECTION("pointing an entry elsewhere needs a shootdown") {
        pt.map(0x200000, 0xa00000, kLargePageSize, rw);
        CHECK(pt.shootdown_needed());
    }
}

TEST_CASE("PageTables reserve makes a map of counted tables unable to fail", "[process-memory]") {
    auto ram = HostMapping::anonymous(4 * kPageSize);
    FrameAllocator table_frames(PhysicalRange{0x10000000, ram.bytes()});
    PageTables pt(table_frames); // root: 3 pages left
    CHECK(pt.tables_needed_to_map(0x1000, 0x1000, kPageSize) == 3);
    CHECK(pt.reserve(3));
    CHECK(table_frames.free_bytes() == 0);
    pt.map(0x1000, 0x1000, kPageSize, PageFlags{.user = true});
    CHECK(pt.tables_needed_to_map(0x40000000, 0x1000, kPageSize) == 2);
    CHECK_FALSE(pt.reserve(2));
    CHECK_THROWS_AS(pt.map(0x40000000, 0x1000, kPageSize, {}), minivmm::linux_abi::PageTablesFull);
}

// ---------------------------------------------------------------------------
// mmap and the page tables it makes

TEST_CASE("mmap places anonymous memory top-down, zeroed, with leaves as prot says",
          "[process-memory]") {
    Process p;
    std::uint64_t a = p.map_anon(3 * kPageSize, kR | kW);
    CHECK(a + 3 * kPageSize <= kMmapTop);
    CHECK(a == kMmapTop - 3 * kPageSize);
    std::uint64_t b = p.map_anon(kPageSize, kR);
    CHECK(b == a - kPageSize); // right below: the next top-down hole
    std::uint64_t c = p.map_anon(kPageSize, kR | kX);
    std::uint64_t d = p.map_anon(kPageSize, 0);
    std::uint64_t e = p.map_anon(kPageSize, kW);
    CHECK_FALSE(p.mem.shootdown_needed()); // only additions
    p.check_leaf(a, kR | kW);
    p.check_leaf(a + 2 * kPageSize, kR | kW);
    p.check_leaf(b, kR);
    p.check_leaf(c, kR | kX);
    p.check_leaf(d, 0);
    p.check_leaf(e, kW);
    CHECK(p.read64(a + 8) == 0);
    // Every page has its own frame.
    std::set<std::uint64_t> frames;
    for (std::uint64_t va : {a, a + kPageSize, a + 2 * kPageSize, b, c, e})
        CHECK(frames.insert(p.walk(va)->pa(va)).second);
    CHECK(p.mem.free_data_bytes() == kDataSize - 7 * kPageSize);
}

TEST_CASE("mmap uses 2 MiB frames and leaves for large aligned anonymous mappings",
          "[process-memory]") {
    Process p;
    const std::uint64_t len = 16 * kLargePageSize; // 32 MiB
    std::uint64_t a = p.map_anon(len);
    CHECK(a % kLargePageSize == 0); // aligned as Linux 6.7+ aligns them
    for (std::uint64_t va = a; va < a + len; va += kLargePageSize) {
        auto leaf = p.walk(va);
        REQUIRE(leaf);
        CHECK(leaf->level == 2);
        CHECK((leaf->entry & (P | RW | US | A | D | PS | NX)) == (P | RW | US | A | D | PS | NX));
        CHECK(leaf->pa(va) % kLargePageSize == 0);
    }
    // 16 leaves: a PDPT and a PD (two if the range crosses 1 GiB) beside the root.
    CHECK(p.mem.free_table_bytes() >= kTablesSize - 4 * kPageSize);
    // A size that is not a whole 2 MiB multiple keeps 4 KiB ends.
    std::uint64_t b = p.map_anon(2 * kLargePageSize + kPageSize);
    CHECK(p.walk(b)->level == 1);
    std::uint64_t aligned = (b + kLargePageSize - 1) & ~(kLargePageSize - 1);
    CHECK(p.walk(aligned)->level == 2);
}

TEST_CASE("mprotect and munmap of part of a 2 MiB leaf split it", "[process-memory]") {
    Process p;
    std::uint64_t a = p.map_anon(4 * kLargePageSize);
    REQUIRE(p.walk(a)->level == 2);
    const std::uint64_t frame = p.walk(a)->pa(a);
    p.write64(a + 0x3008, 0x1234);

    SECTION("mprotect") {
        CHECK(p.mprotect(a + 0x3000, kPageSize, kR) == 0);
        CHECK(p.mem.shootdown_needed());
        auto leaf = p.walk(a + 0x3000);
        REQUIRE(leaf);
        CHECK(leaf->level == 1);
        p.check_leaf(a + 0x3000, kR);
        p.check_leaf(a + 0x2000, kR | kW);
        p.check_leaf(a + 0x4000, kR | kW);
        CHECK(p.walk(a + 0x2000)->level == 1);
        CHECK(p.walk(a + 0x2000)->pa(a + 0x2000) == frame + 0x2000); // same frames
        CHECK(p.walk(a + kLargePageSize)->level == 2);               // the rest untouched
        CHECK(p.read64(a + 0x3008) == 0x1234);
        // Three VMAs now.
        auto maps = p.mem.mappings();
        REQUIRE(maps.size() == 3);
        CHECK(maps[1].start == a + 0x3000);
        CHECK(maps[1].end == a + 0x4000);
        CHECK(maps[1].prot == PROT_READ);
        // And back: one VMA again (Linux merges them).
        CHECK(p.mprotect(a + 0x3000, kPageSize, kR | kW) == 0);
        CHECK(p.mem.mappings().size() == 1);
    }
    SECTION("munmap") {
        const std::uint64_t free_before = p.mem.free_data_bytes();
        CHECK(p.munmap(a + 0x3000, 2 * kPageSize) == 0);
        CHECK(p.mem.shootdown_needed());
        CHECK_FALSE(p.walk(a + 0x3000));
        CHECK_FALSE(p.walk(a + 0x4000));
        CHECK(p.walk(a + 0x5000)->level == 1);
        CHECK(p.walk(a + 0x5000)->pa(a + 0x5000) == frame + 0x5000);
        // The two frames are kept until the shootdown, then free.
        CHECK(p.mem.free_data_bytes() == free_before);
        p.mem.shootdown_done();
        CHECK_FALSE(p.mem.shootdown_needed());
        CHECK(p.mem.free_data_bytes() == free_before + 2 * kPageSize);
        auto maps = p.mem.mappings();
        REQUIRE(maps.size() == 2);
        CHECK(maps[0].end == a + 0x3000);
        CHECK(maps[1].start == a + 0x5000);
        std::array<std::byte, 8> buf{};
        CHECK_FALSE(p.mem.copy_in(a + 0x3000, buf));
    }
}

TEST_CASE("shootdown_needed follows removals and restrictions, not additions", "[process-memory]") {
    Process p;
    std::uint64_t a = p.map_anon(8 * kPageSize, kR);
    p.map_anon(kLargePageSize);
    p.map_anon(kPageSize, 0);
    CHECK_FALSE(p.mem.shootdown_needed());
    CHECK(p.mprotect(a, kPageSize, kR | kW) == 0); // gaining a permission
    CHECK_FALSE(p.mem.shootdown_needed());
    CHECK(p.mprotect(a, kPageSize, kR | kW | kX) == 0);
    CHECK_FALSE(p.mem.shootdown_needed());
    CHECK(p.sys(SYS_brk, 0) == 0); // no brk base: nothing happens
    // MADV_DONTNEED zeroes frames in place: no entry changes.
    CHECK(p.madvise(a, kPageSize, MADV_DONTNEED) == 0);
    CHECK_FALSE(p.mem.shootdown_needed());

    SECTION("losing write") {
        CHECK(p.mprotect(a, kPageSize, kR | kX) == 0);
        CHECK(p.mem.shootdown_needed());
    }
    SECTION("losing exec") {
        CHECK(p.mprotect(a, kPageSize, kR | kW) == 0);
        CHECK(p.mem.shootdown_needed());
    }
    SECTION("PROT_NONE") {
        CHECK(p.mprotect(a + kPageSize, kPageSize, 0) == 0);
        CHECK(p.mem.shootdown_needed());
    }
    SECTION("munmap") {
        CHECK(p.munmap(a + kPageSize, kPageSize) == 0);
        CHECK(p.mem.shootdown_needed());
    }
    SECTION("MAP_FIXED over a mapping") {
        CHECK(p.mmap(a, kPageSize, kR, kAnon | MAP_FIXED) == static_cast<std::int64_t>(a));
        CHECK(p.mem.shootdown_needed());
    }
    SECTION("mremap moving") {
        CHECK(p.sys(SYS_mremap, a, kPageSize, 64 * kPageSize, MREMAP_MAYMOVE) > 0);
        CHECK(p.mem.shootdown_needed());
    }
    p.mem.shootdown_done();
    CHECK_FALSE(p.mem.shootdown_needed());
}

TEST_CASE("frames munmap gives up are not handed out before the shootdown", "[process-memory]") {
    Process p(kTablesSize, 5 * kPageSize); // five data frames
    const std::uint64_t total = p.mem.free_data_bytes();
    REQUIRE(total == 5 * kPageSize);
    std::uint64_t a = p.map_anon(5 * kPageSize);
    std::set<std::uint64_t> old_frames;
    for (int i = 0; i < 5; ++i)
        old_frames.insert(p.walk(a + i * kPageSize)->pa(a + i * kPageSize));
    CHECK(p.munmap(a, 2 * kPageSize) == 0);
    CHECK(p.mem.shootdown_needed());
    // The two frames are not free yet: no room.
    CHECK(p.mmap(0, kPageSize, kR | kW, kAnon) == neg(ENOMEM));
    p.mem.shootdown_done();
    std::uint64_t b = p.map_anon(2 * kPageSize);
    CHECK(old_frames.count(p.walk(b)->pa(b)) == 1); // reused now, and zeroed
    CHECK(p.read64(b) == 0);
    CHECK(p.mmap(0, kPageSize, kR | kW, kAnon) == neg(ENOMEM));
}

TEST_CASE("mmap honours free hints, MAP_FIXED and MAP_FIXED_NOREPLACE", "[process-memory]") {
    Process p;
    const std::uint64_t hint = 0x500000000;
    CHECK(p.mmap(hint, 4 * kPageSize, kR | kW, kAnon) == static_cast<std::int64_t>(hint));
    p.write64(hint + kPageSize, 99);
    // Taken: placed elsewhere.
    std::int64_t other = p.mmap(hint + kPageSize, kPageSize, kR, kAnon);
    CHECK(other > 0);
    CHECK(static_cast<std::uint64_t>(other) == kMmapTop - kPageSize); // top-down instead
    // A hint below mmap_min_addr is moved up to it.
    CHECK(p.mmap(0x1000, kPageSize, kR, kAnon) == 0x10000);
    // An unaligned hint is rounded down.
    CHECK(p.mmap(0x600000123, kPageSize, kR, kAnon) == 0x600000000);
    // MAP_FIXED replaces what was there, with fresh zeroed memory.
    CHECK(p.mmap(hint + kPageSize, kPageSize, kR, kAnon | MAP_FIXED) ==
          static_cast<std::int64_t>(hint + kPageSize));
    CHECK(p.read64(hint + kPageSize) == 0);
    p.check_leaf(hint + kPageSize, kR);
    p.check_leaf(hint, kR | kW);
    CHECK(p.mem.mappings().size() >= 4);
    // MAP_FIXED_NOREPLACE: EEXIST over anything mapped, fine elsewhere.
    CHECK(p.mmap(hint + 3 * kPageSize, 2 * kPageSize, kR, kAnon | MAP_FIXED_NOREPLACE) ==
          neg(EEXIST));
    CHECK(p.mmap(hint + 4 * kPageSize, 2 * kPageSize, kR, kAnon | MAP_FIXED_NOREPLACE) ==
          static_cast<std::int64_t>(hint + 4 * kPageSize));
    // MAP_32BIT: in [1 GiB, 2 GiB).
    std::int64_t low = p.mmap(0, kPageSize, kR, kAnon | MAP_32BIT);
    CHECK(low >= 0x40000000);
    CHECK(low < 0x80000000);
    // Top-down below mmap_top, around what is there.
    CHECK(p.map_anon(kPageSize) == kMmapTop - 2 * kPageSize);
    CHECK(p.mmap(kMmapTop - 4 * kPageSize, kPageSize, kR, kAnon | MAP_FIXED) > 0);
    CHECK(p.map_anon(kPageSize) == kMmapTop - 3 * kPageSize);
    CHECK(p.map_anon(2 * kPageSize) == kMmapTop - 6 * kPageSize);
}

TEST_CASE("free_area finds where an mmap without a hint goes, for the interpreter",
          "[process-memory]") {
    Process p;
    CHECK(p.mem.free_area(3 * kPageSize, kPageSize) == kMmapTop - 3 * kPageSize);
    // Nothing is mapped by asking: the same answer twice, and mmap agrees.
    CHECK(p.mem.free_area(3 * kPageSize, kPageSize) == kMmapTop - 3 * kPageSize);
    CHECK(p.map_anon(3 * kPageSize) == kMmapTop - 3 * kPageSize);
    // Below what is there, aligned down to `align`.
    CHECK(p.mem.free_area(kPageSize, kPageSize) == kMmapTop - 4 * kPageSize);
    CHECK(p.mem.free_area(kPageSize, kLargePageSize) == kMmapTop - kLargePageSize);
    p.mem.map_anonymous_fixed(kMmapTop - kLargePageSize, kPageSize, PROT_READ, "ld.so");
    CHECK(p.mem.free_area(kPageSize, kLargePageSize) == kMmapTop - 2 * kLargePageSize);
    // Bad sizes and alignments: no answer.
    CHECK_FALSE(p.mem.free_area(0, kPageSize));
    CHECK_FALSE(p.mem.free_area(kPageSize + 1, kPageSize));
    CHECK_FALSE(p.mem.free_area(kPageSize, 3 * kPageSize));
    CHECK_FALSE(p.mem.free_area(kPageSize, 512));
    CHECK_FALSE(p.mem.free_area(kMmapTop, kPageSize)); // more than there is below mmap_top
}

TEST_CASE("mmap refuses what Linux refuses, with its errno", "[process-memory]") {
    Process p;
    std::uint64_t a = p.map_anon(kPageSize);
    CHECK(p.mmap(0, 0, kR, kAnon) == neg(EINVAL));
    CHECK(p.mmap(0, kPageSize, kR, kAnon, ~0ull, 123) == neg(EINVAL));
    CHECK(p.mmap(0, kPageSize, kR, MAP_ANONYMOUS) == neg(EINVAL)); // neither private nor shared
    CHECK(p.mmap(0, kPageSize, kR, MAP_ANONYMOUS | 0xf) == neg(EINVAL));
    CHECK(p.mmap(0, kPageSize, kR, MAP_ANONYMOUS | MAP_SHARED_VALIDATE) == neg(EINVAL));
    CHECK(p.mmap(0x500000123, kPageSize, kR, kAnon | MAP_FIXED) == neg(EINVAL));
    CHECK(p.mmap(0x1000, kPageSize, kR, kAnon | MAP_FIXED) == neg(EPERM));
    CHECK(p.mmap(kUserEnd, kPageSize, kR, kAnon | MAP_FIXED) == neg(ENOMEM));
    CHECK(p.mmap(kUserEnd - kPageSize, 2 * kPageSize, kR, kAnon | MAP_FIXED) == neg(ENOMEM));
    CHECK(p.mmap(0, ~0ull - 10, kR, kAnon) == neg(ENOMEM)); // PAGE_ALIGN wraps
    CHECK(p.mmap(0, 1ull << 50, kR, kAnon) == neg(ENOMEM));
    CHECK(p.mmap(0, kPageSize, kR, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN) == neg(EINVAL));
    CHECK(p.mmap(0, kPageSize, kR, kAnon | MAP_HUGETLB) == neg(ENOMEM));
    CHECK(p.mmap(0, kPageSize, kR, MAP_PRIVATE, 55) == neg(EBADF));
    CHECK(p.mmap(0, kPageSize, kR, MAP_PRIVATE, ~0ull) == neg(EBADF));
    CHECK(p.munmap(a + 1, kPageSize) == neg(EINVAL));
    CHECK(p.munmap(a, 0) == neg(EINVAL));
    CHECK(p.munmap(kUserEnd, kPageSize) == neg(EINVAL));
    CHECK(p.munmap(0x100000000, kPageSize) == 0); // nothing there: fine
    CHECK(p.mprotect(a + 1, kPageSize, kR) == neg(EINVAL));
    CHECK(p.mprotect(a, kPageSize, 0x10) == neg(EINVAL));
    CHECK(p.mprotect(a, kPageSize, kR | PROT_GROWSDOWN | PROT_GROWSUP) == neg(EINVAL));
    CHECK(p.mprotect(a, 0, kR) == 0);
    CHECK(p.mprotect(a, 2 * kPageSize, kR) == neg(ENOMEM)); // the page after a is a hole
    CHECK(p.mprotect(0x100000000, kPageSize, kR) == neg(ENOMEM));
    CHECK(p.mprotect(a, kPageSize, kR | PROT_GROWSDOWN) == neg(EINVAL)); // not a stack
    CHECK(p.sys(329 /* pkey_mprotect */, a, kPageSize, kR, 3) == neg(EINVAL));
    CHECK(p.sys(329 /* pkey_mprotect */, a, kPageSize, kR, 0) == 0);
    // Nothing changed by the failures.
    CHECK(p.mem.mappings().size() == 1);
    // Shared anonymous memory works (as private, in one process).
    std::int64_t s = p.mmap(0, kPageSize, kR | kW, MAP_SHARED | MAP_ANONYMOUS);
    REQUIRE(s > 0);
    CHECK(p.mem.describe().find(" rw-s ") != std::string::npos);
    // Flags Linux accepts on any mapping.
    CHECK(p.mmap(0, kPageSize, kR | kW,
                 kAnon | MAP_POPULATE | MAP_NORESERVE | MAP_STACK | MAP_GROWSDOWN | MAP_LOCKED |
                     MAP_NONBLOCK | MAP_DENYWRITE | MAP_EXECUTABLE) > 0);
    // A call this class does not serve.
    SyscallArgs other;
    other.nr = SYS_read;
    CHECK_FALSE(p.mem.call(other, p.files).has_value());
}

TEST_CASE("mprotect changes VMAs up to the first hole, as Linux", "[process-memory]") {
    Process p;
    const std::uint64_t base = 0x700000000;
    p.mmap(base, 2 * kPageSize, kR | kW, kAnon | MAP_FIXED);
    p.mmap(base + 3 * kPageSize, kPageSize, kR | kW, kAnon | MAP_FIXED);
    CHECK(p.mprotect(base, 4 * kPageSize, kR) == neg(ENOMEM));
    p.check_leaf(base, kR);
    p.check_leaf(base + kPageSize, kR);
    p.check_leaf(base + 3 * kPageSize, kR | kW); // past the hole: unchanged
    // PROT_NONE pages keep their contents.
    p.write64(base, 77);
    CHECK(p.mprotect(base, kPageSize, 0) == 0);
    p.check_leaf(base, 0);
    CHECK(p.mprotect(base, kPageSize, kR) == 0);
    CHECK(p.read64(base) == 77);
}

// ---------------------------------------------------------------------------
// brk

TEST_CASE("brk grows and shrinks the heap as Linux's brk", "[process-memory]") {
    Process p;
    const std::uint64_t base = 0x4000a10; // not page aligned, as the end of a .bss
    p.mem.set_brk_base(base);
    CHECK(p.sys(SYS_brk, 0) == static_cast<std::int64_t>(base));
    CHECK(p.sys(SYS_brk, base - 1) == static_cast<std::int64_t>(base));
    // Within the page the base is on: nothing is mapped, the break moves.
    CHECK(p.sys(SYS_brk, base + 16) == static_cast<std::int64_t>(base + 16));
    CHECK(p.mem.mappings().empty());
    const std::uint64_t grown = base + 3 * kPageSize + 5;
    CHECK(p.sys(SYS_brk, grown) == static_cast<std::int64_t>(grown));
    auto maps = p.mem.mappings();
    REQUIRE(maps.size() == 1);
    CHECK(maps[0].start == 0x4001000);
    CHECK(maps[0].end == 0x4004000);
    CHECK(maps[0].name == "[heap]");
    CHECK(maps[0].prot == (PROT_READ | PROT_WRITE));
    p.check_leaf(0x4001000, kR | kW);
    std::array<std::byte, 8> buf{};
    CHECK(p.mem.copy_out(grown - 8, bytes_of(42)));
    CHECK(p.mem.copy_in(grown - 8, buf));
    CHECK_FALSE(p.mem.shootdown_needed());
    // Growing into another mapping (or its guard page) fails: the old break.
    p.mmap(0x4008000, kPageSize, kR, kAnon | MAP_FIXED);
    CHECK(p.sys(SYS_brk, 0x4007001) == static_cast<std::int64_t>(grown));
    CHECK(p.sys(SYS_brk, 0x4007000) == 0x4007000); // one guard page left
    CHECK(p.read64(grown - 8) == 42);
    // Shrinking unmaps.
    CHECK(p.sys(SYS_brk, base + 100) == static_cast<std::int64_t>(base + 100));
    CHECK(p.mem.shootdown_needed());
    CHECK_FALSE(p.mem.copy_in(0x4001000, buf));
    CHECK(p.mem.brk() == base + 100);
    // Grown again: zeros.
    CHECK(p.sys(SYS_brk, grown) == static_cast<std::int64_t>(grown));
    CHECK(p.read64(grown - 8) == 0);
}

TEST_CASE("brk fails with the old break when RAM runs out", "[process-memory]") {
    Process p(kTablesSize, 8 * kPageSize);
    p.mem.set_brk_base(0x4000000);
    CHECK(p.sys(SYS_brk, 0x4000000 + 9 * kPageSize) == 0x4000000);
    CHECK(p.mem.mappings().empty());
    CHECK(p.mem.free_data_bytes() == 8 * kPageSize);
    CHECK(p.sys(SYS_brk, 0x4000000 + 8 * kPageSize) == 0x4000000 + 8 * kPageSize);
}

// ---------------------------------------------------------------------------
// File-backed mappings

TEST_CASE("private file mappings hold the file's bytes, zeros past its end", "[process-memory]") {
    std::vector<std::byte> contents(10000);
    for (std::size_t i = 0; i < contents.size(); ++i)
        contents[i] = static_cast<std::byte>((i * 7 + 3) & 0xff);
    minivmm::test::TempFile file(contents);
    Process p;
    int fd = add_file(p.files, file.path(), O_RDONLY, FileKind::regular);
    std::int64_t r =
        p.mmap(0, 3 * kPageSize, kR | kW, MAP_PRIVATE, static_cast<std::uint64_t>(fd), kPageSize);
    REQUIRE(r > 0);
    const std::uint64_t a = static_cast<std::uint64_t>(r);
    std::vector<std::byte> seen(3 * kPageSize);
    REQUIRE(p.mem.copy_in(a, seen));
    CHECK(std::equal(contents.begin() + kPageSize, contents.end(), seen.begin()));
    CHECK(std::all_of(seen.begin() + (contents.size() - kPageSize), seen.end(),
                      [](std::byte b) { return b == std::byte{0}; }));
    // Private: writing changes the mapping, not the file.
    REQUIRE(p.mem.copy_out(a, bytes_of(~0ull)));
    UniqueFd check(::open(file.path().c_str(), O_RDONLY | O_CLOEXEC));
    std::byte first{};
    REQUIRE(::pread(check.get(), &first, 1, kPageSize) == 1);
    CHECK(first == contents[kPageSize]);
    // MADV_DONTNEED: the file's bytes again.
    CHECK(p.madvise(a, kPageSize, MADV_DONTNEED) == 0);
    CHECK(p.read64(a) != ~0ull);
    REQUIRE(p.mem.copy_in(a, seen));
    CHECK(std::equal(contents.begin() + kPageSize, contents.end(), seen.begin()));
    CHECK(p.madvise(a, kPageSize, MADV_FREE) == neg(EINVAL));
    CHECK(p.madvise(a, kPageSize, MADV_REMOVE) == neg(EACCES));
    auto maps = p.mem.mappings();
    REQUIRE(maps.size() == 1);
    CHECK(maps[0].backing == Vma::Backing::file);
    CHECK(maps[0].offset == kPageSize);
    CHECK(p.mem.describe().find(file.path()) != std::string::npos);
    // Unmapping the middle keeps each part's offset.
    CHECK(p.munmap(a + kPageSize, kPageSize) == 0);
    maps = p.mem.mappings();
    REQUIRE(maps.size() == 2);
    CHECK(maps[1].offset == 3 * kPageSize);
    // The mapping holds the file: closing the fd changes nothing.
    CHECK(p.files.close(fd) == 0);
    CHECK(p.madvise(a, kPageSize, MADV_DONTNEED) == 0);
    CHECK(p.read64(a) != 0);
    CHECK(p.read64(a + 2 * kPageSize) == 0); // wholly past the end of the file
}

TEST_CASE("file mappings Linux refuses, or this VMM cannot keep coherent", "[process-memory]") {
    std::vector<std::byte> contents(kPageSize, std::byte{1});
    minivmm::test::TempFile file(contents);
    Process p;
    const auto rd =
        static_cast<std::uint64_t>(add_file(p.files, file.path(), O_RDONLY, FileKind::regular));
    const auto wr =
        static_cast<std::uint64_t>(add_file(p.files, file.path(), O_WRONLY, FileKind::regular));
    const auto rdwr =
        static_cast<std::uint64_t>(add_file(p.files, file.path(), O_RDWR, FileKind::regular));
    const auto path =
        static_cast<std::uint64_t>(add_file(p.files, file.path(), O_PATH, FileKind::regular));
    const auto dir = static_cast<std::uint64_t>(
        add_file(p.files, "/", O_RDONLY | O_DIRECTORY, FileKind::directory));
    CHECK(p.mmap(0, kPageSize, kR, MAP_PRIVATE, wr) == neg(EACCES));
    CHECK(p.mmap(0, kPageSize, kR, MAP_PRIVATE, path) == neg(EBADF));
    CHECK(p.mmap(0, kPageSize, kR, MAP_PRIVATE, dir) == neg(ENODEV));
    CHECK(p.mmap(0, kPageSize, kR, MAP_PRIVATE | MAP_GROWSDOWN, rd) == neg(EINVAL));
    CHECK(p.mmap(0, kPageSize, kR, MAP_PRIVATE | MAP_HUGETLB, rd) == neg(EINVAL));
    CHECK(p.mmap(0, kPageSize, kR, MAP_PRIVATE, rd, 1ull << 63) == neg(EOVERFLOW));
    // Shared: Linux's own EACCES first, then -ENODEV (no coherent copy).
    CHECK(p.mmap(0, kPageSize, kR | kW, MAP_SHARED, rd) == neg(EACCES));
    CHECK(p.mmap(0, kPageSize, kR, MAP_SHARED, rd) == neg(ENODEV));
    CHECK(p.mmap(0, kPageSize, kR | kW, MAP_SHARED, rdwr) == neg(ENODEV));
    CHECK(p.mmap(0, kPageSize, kR, MAP_SHARED_VALIDATE | 0x800000, rd) == neg(EOPNOTSUPP));
    CHECK(p.mmap(0, kPageSize, kR, 0xf, rd) == neg(EINVAL));
    // A pipe has no mmap.
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    UniqueFd write_end(fds[1]);
    auto pipe_file = std::make_shared<OpenFile>();
    pipe_file->host.reset(fds[0]);
    pipe_file->kind = FileKind::pipe;
    auto pipe_fd = static_cast<std::uint64_t>(p.files.add(pipe_file, false));
    CHECK(p.mmap(0, kPageSize, kR, MAP_PRIVATE, pipe_fd) == neg(ENODEV));
    CHECK(p.mem.mappings().empty());
    // /dev/zero: a private mapping of zeros.
    auto zero =
        static_cast<std::uint64_t>(add_file(p.files, "/dev/zero", O_RDONLY, FileKind::char_device));
    std::int64_t z = p.mmap(0, kPageSize, kR | kW, MAP_PRIVATE, zero);
    REQUIRE(z > 0);
    CHECK(p.read64(static_cast<std::uint64_t>(z)) == 0);
}

// ---------------------------------------------------------------------------
// mremap

TEST_CASE("mremap shrinks, grows in place, and moves frames without copying", "[process-memory]") {
    Process p;
    const std::uint64_t a = 0x700000000;
    REQUIRE(p.mmap(a, 4 * kPageSize, kR | kW, kAnon | MAP_FIXED) == static_cast<std::int64_t>(a));
    for (int i = 0; i < 4; ++i)
        p.write64(a + i * kPageSize, 100 + i);
    std::vector<std::uint64_t> frames;
    for (int i = 0; i < 4; ++i)
        frames.push_back(p.walk(a + i * kPageSize)->pa(a + i * kPageSize));

    SECTION("shrink") {
        CHECK(p.sys(SYS_mremap, a, 4 * kPageSize, 2 * kPageSize, 0) ==
              static_cast<std::int64_t>(a));
        CHECK(p.mem.mappings()[0].end == a + 2 * kPageSize);
        CHECK_FALSE(p.walk(a + 2 * kPageSize));
    }
    SECTION("grow in place") {
        CHECK(p.sys(SYS_mremap, a, 4 * kPageSize, 6 * kPageSize, 0) ==
              static_cast<std::int64_t>(a));
        CHECK(p.mem.mappings().size() == 1);
        CHECK(p.mem.mappings()[0].end == a + 6 * kPageSize);
        CHECK(p.read64(a + 3 * kPageSize) == 103);
        CHECK(p.read64(a + 5 * kPageSize) == 0);
        CHECK_FALSE(p.mem.shootdown_needed());
    }
    SECTION("blocked without MREMAP_MAYMOVE") {
        p.mmap(a + 4 * kPageSize, kPageSize, kR, kAnon | MAP_FIXED);
        CHECK(p.sys(SYS_mremap, a, 4 * kPageSize, 6 * kPageSize, 0) == neg(ENOMEM));
        CHECK(p.read64(a) == 100);
    }
    SECTION("move") {
        p.mmap(a + 4 * kPageSize, kPageSize, kR, kAnon | MAP_FIXED);
        const std::uint64_t free_before = p.mem.free_data_bytes();
        std::int64_t r = p.sys(SYS_mremap, a, 4 * kPageSize, 6 * kPageSize, MREMAP_MAYMOVE);
        REQUIRE(r > 0);
        const auto b = static_cast<std::uint64_t>(r);
        CHECK(b != a);
        for (int i = 0; i < 4; ++i) {
            CHECK(p.read64(b + i * kPageSize) == static_cast<std::uint64_t>(100 + i));
            CHECK(p.walk(b + i * kPageSize)->pa(b + i * kPageSize) == frames[i]); // not copied
        }
        CHECK(p.read64(b + 5 * kPageSize) == 0);
        CHECK_FALSE(p.walk(a));
        CHECK(p.mem.shootdown_needed());
        p.mem.shootdown_done();
        CHECK(p.mem.free_data_bytes() == free_before - 2 * kPageSize); // only the growth
    }
    SECTION("MREMAP_FIXED onto a mapping, shrinking") {
        const std::uint64_t target = 0x800000000;
        p.mmap(target, 8 * kPageSize, kR, kAnon | MAP_FIXED);
        std::int64_t r = p.sys(SYS_mremap, a + kPageSize, 3 * kPageSize, 2 * kPageSize,
                               MREMAP_MAYMOVE | MREMAP_FIXED, target + kPageSize);
        CHECK(r == static_cast<std::int64_t>(target + kPageSize));
        CHECK(p.read64(target + kPageSize) == 101);
        CHECK(p.read64(target + 2 * kPageSize) == 102);
        p.check_leaf(target + kPageSize, kR | kW);
        p.check_leaf(target + 3 * kPageSize, kR);
        CHECK(p.read64(a) == 100);
        CHECK_FALSE(p.walk(a + 3 * kPageSize)); // the dropped tail
        CHECK(p.mem.mappings().size() == 4);
    }
    SECTION("errors") {
        CHECK(p.sys(SYS_mremap, a, kPageSize, kPageSize, 8) == neg(EINVAL));
        CHECK(p.sys(SYS_mremap, a, kPageSize, kPageSize, MREMAP_FIXED) == neg(EINVAL));
        CHECK(p.sys(SYS_mremap, a + 1, kPageSize, kPageSize, 0) == neg(EINVAL));
        CHECK(p.sys(SYS_mremap, a, kPageSize, 0, 0) == neg(EINVAL));
        CHECK(p.sys(SYS_mremap, a, 0, kPageSize, MREMAP_MAYMOVE) == neg(EINVAL));
        CHECK(p.sys(SYS_mremap, 0x900000000, kPageSize, 2 * kPageSize, 0) == neg(EFAULT));
        CHECK(p.sys(SYS_mremap, a, 5 * kPageSize, 6 * kPageSize, 0) == neg(EFAULT));
        CHECK(p.sys(SYS_mremap, a, 2 * kPageSize, kPageSize, MREMAP_MAYMOVE | MREMAP_FIXED,
                    a + kPageSize) == neg(EINVAL)); // overlapping
        CHECK(p.mem.mappings().size() == 1);
        CHECK_FALSE(p.mem.shootdown_needed());
    }
}

// ---------------------------------------------------------------------------
// madvise, msync, mincore, mlock

TEST_CASE("madvise MADV_DONTNEED and MADV_FREE zero private anonymous memory", "[process-memory]") {
    Process p;
    std::uint64_t a = p.map_anon(4 * kLargePageSize);
    p.write64(a + 0x5000, 1);
    p.write64(a + 0x6000, 2);
    p.write64(a + kLargePageSize, 3);
    CHECK(p.madvise(a + 0x5000, kPageSize, MADV_DONTNEED) == 0);
    CHECK(p.read64(a + 0x5000) == 0);
    CHECK(p.read64(a + 0x6000) == 2);
    CHECK(p.walk(a)->level == 2); // zeroed in place: the leaf stays
    CHECK(p.madvise(a + kLargePageSize, kLargePageSize, MADV_FREE) == 0);
    CHECK(p.read64(a + kLargePageSize) == 0);
    // Shared anonymous memory keeps its bytes (shmem keeps the pages).
    std::int64_t s = p.mmap(0, kPageSize, kR | kW, MAP_SHARED | MAP_ANONYMOUS);
    p.write64(static_cast<std::uint64_t>(s), 5);
    CHECK(p.madvise(static_cast<std::uint64_t>(s), kPageSize, MADV_DONTNEED) == 0);
    CHECK(p.read64(static_cast<std::uint64_t>(s)) == 5);
    CHECK(p.madvise(static_cast<std::uint64_t>(s), kPageSize, MADV_FREE) == neg(EINVAL));
    CHECK(p.madvise(static_cast<std::uint64_t>(s), kPageSize, MADV_REMOVE) == 0);
    CHECK(p.read64(static_cast<std::uint64_t>(s)) == 0);
    CHECK(p.madvise(a, kPageSize, MADV_REMOVE) == neg(EINVAL));
    // Errors and hints.
    CHECK(p.madvise(a, kPageSize, 999) == neg(EINVAL));
    CHECK(p.madvise(a, kPageSize, MADV_HUGEPAGE) == neg(EINVAL));
    CHECK(p.madvise(a + 1, kPageSize, MADV_DONTNEED) == neg(EINVAL));
    CHECK(p.madvise(a, 0, MADV_DONTNEED) == 0);
    CHECK(p.madvise(a, ~0ull, MADV_DONTNEED) == neg(EINVAL));
    CHECK(p.madvise(a, kPageSize, 100 /* MADV_HWPOISON */) == neg(EPERM));
    CHECK(p.madvise(a, kPageSize, MADV_WILLNEED) == 0);
    CHECK(p.madvise(a, kPageSize, MADV_POPULATE_WRITE) == 0);
    // A hole: the mapped part done, then -ENOMEM.
    p.write64(a + 4 * kLargePageSize - 8, 9);
    CHECK(p.madvise(a + 4 * kLargePageSize - kPageSize, 2 * kPageSize, MADV_DONTNEED) ==
          neg(ENOMEM));
    CHECK(p.read64(a + 4 * kLargePageSize - 8) == 0);
    CHECK(p.madvise(0x100000000, kPageSize, MADV_NORMAL) == neg(ENOMEM));
    // MADV_DONTFORK splits the VMA; MADV_DOFORK merges it back.
    CHECK(p.madvise(a, kPageSize, MADV_DONTFORK) == 0);
    auto count = p.mem.mappings().size();
    CHECK(p.madvise(a, kPageSize, MADV_DOFORK) == 0);
    CHECK(p.mem.mappings().size() == count - 1);
    CHECK_FALSE(p.mem.shootdown_needed());
    // Read-only memory cannot be populated for writing.
    std::uint64_t ro = p.map_anon(kPageSize, kR);
    CHECK(p.madvise(ro, kPageSize, MADV_POPULATE_WRITE) == neg(EINVAL));
    CHECK(p.madvise(ro, kPageSize, MADV_POPULATE_READ) == 0);
}

TEST_CASE("mlock, msync and mincore", "[process-memory]") {
    Process p;
    std::uint64_t a = p.map_anon(4 * kPageSize);
    CHECK(p.sys(SYS_mlock, a + 10, kPageSize) == 0); // two pages, rounded out
    auto maps = p.mem.mappings();
    REQUIRE(maps.size() == 2);
    CHECK(maps[0].locked);
    CHECK(maps[0].end == a + 2 * kPageSize);
    CHECK(p.madvise(a, kPageSize, MADV_DONTNEED) == neg(EINVAL));
    CHECK(p.madvise(a, kPageSize, 24 /* MADV_DONTNEED_LOCKED */) == 0);
    CHECK(p.sys(SYS_msync, a, kPageSize, MS_INVALIDATE) == neg(EBUSY));
    CHECK(p.sys(SYS_msync, a, kPageSize, MS_SYNC) == 0);
    CHECK(p.sys(SYS_msync, a, kPageSize, MS_SYNC | MS_ASYNC) == neg(EINVAL));
    CHECK(p.sys(SYS_msync, a + 1, kPageSize, MS_SYNC) == neg(EINVAL));
    CHECK(p.sys(SYS_msync, a, 5 * kPageSize, MS_SYNC) == neg(ENOMEM));
    CHECK(p.sys(SYS_msync, a - kPageSize, 2 * kPageSize, MS_ASYNC) == neg(ENOMEM));
    CHECK(p.sys(SYS_munlock, a, 4 * kPageSize) == 0);
    CHECK(p.mem.mappings().size() == 1);
    CHECK(p.sys(SYS_mlock, a, 5 * kPageSize) == neg(ENOMEM)); // applied, then the hole
    CHECK(p.mem.mappings()[0].locked);
    CHECK(p.sys(SYS_munlockall) == 0);
    CHECK_FALSE(p.mem.mappings()[0].locked);
    CHECK(p.sys(SYS_mlockall, 0) == neg(EINVAL));
    CHECK(p.sys(SYS_mlockall, MCL_ONFAULT) == neg(EINVAL));
    CHECK(p.sys(SYS_mlockall, MCL_FUTURE) == 0);
    std::uint64_t b = p.map_anon(kPageSize);
    CHECK(p.mem.mappings()[0].locked); // b is below a: the first VMA
    CHECK(p.mem.mappings()[0].start == b);
    CHECK(p.sys(SYS_munlockall) == 0);
    CHECK(p.sys(325 /* mlock2 */, a, kPageSize, 2) == neg(EINVAL));
    // mincore: one byte per page, every mapped page resident.
    std::uint64_t vec = p.map_anon(kPageSize);
    CHECK(p.sys(SYS_mincore, a, 3 * kPageSize + 1, vec) == 0);
    CHECK((p.read64(vec) & 0xffffffff) == 0x01010101);
    CHECK(p.sys(SYS_mincore, a + 1, kPageSize, vec) == neg(EINVAL));
    CHECK(p.sys(SYS_mincore, a, 5 * kPageSize, vec) == neg(ENOMEM));
    CHECK(p.sys(SYS_mincore, a, kPageSize, 0x100000000) == neg(EFAULT));
}

// ---------------------------------------------------------------------------
// copy_in / copy_out

TEST_CASE("copy_in and copy_out check every byte against the mappings", "[process-memory]") {
    Process p;
    const std::uint64_t a = 0x700000000;
    p.mmap(a, 2 * kPageSize, kR | kW, kAnon | MAP_FIXED);
    p.mmap(a + 2 * kPageSize, kPageSize, kR, kAnon | MAP_FIXED);
    p.mmap(a + 3 * kPageSize, kPageSize, 0, kAnon | MAP_FIXED);
    p.mmap(a + 4 * kPageSize, kPageSize, kX, kAnon | MAP_FIXED);
    p.mmap(a + 5 * kPageSize, kPageSize, kW, kAnon | MAP_FIXED);
    std::vector<std::byte> pattern(kPageSize + 200);
    for (std::size_t i = 0; i < pattern.size(); ++i)
        pattern[i] = static_cast<std::byte>(i * 13);
    // Across a page boundary inside one VMA.
    REQUIRE(p.mem.copy_out(a + 100, pattern));
    std::vector<std::byte> back(pattern.size());
    REQUIRE(p.mem.copy_in(a + 100, back));
    CHECK(back == pattern);
    // Across the VMA boundary into read-only memory: readable, not writable,
    // and nothing written at all.
    std::vector<std::byte> across(300, std::byte{0xee});
    CHECK_FALSE(p.mem.copy_out(a + 2 * kPageSize - 100, across));
    std::vector<std::byte> got(100);
    REQUIRE(p.mem.copy_in(a + 2 * kPageSize - 100, got));
    CHECK(got[0] != std::byte{0xee});
    std::vector<std::byte> span_ro(300);
    CHECK(p.mem.copy_in(a + 2 * kPageSize - 100, span_ro));
    // PROT_NONE: neither; exec-only and write-only memory is readable on x86.
    std::array<std::byte, 8> small{};
    CHECK_FALSE(p.mem.copy_in(a + 3 * kPageSize, small));
    CHECK_FALSE(p.mem.copy_in(a + 3 * kPageSize - 4, small));
    CHECK_FALSE(p.mem.copy_out(a + 3 * kPageSize, small));
    CHECK(p.mem.copy_in(a + 4 * kPageSize, small));
    CHECK_FALSE(p.mem.copy_out(a + 4 * kPageSize, small));
    CHECK(p.mem.copy_in(a + 5 * kPageSize, small));
    CHECK(p.mem.copy_out(a + 5 * kPageSize, small));
    // Unmapped, wrapping, past user_end.
    CHECK_FALSE(p.mem.copy_in(a + 6 * kPageSize, small));
    CHECK_FALSE(p.mem.copy_in(a + 6 * kPageSize - 4, small));
    CHECK_FALSE(p.mem.copy_in(~0ull - 3, small));
    CHECK_FALSE(p.mem.copy_in(kUserEnd - 4, small));
    CHECK_FALSE(p.mem.copy_in(0, small));
    CHECK(p.mem.copy_in(0, std::span<std::byte>()));
    // poke and peek ignore protection, not mappings.
    CHECK(p.mem.poke(a + 3 * kPageSize, bytes_of(5)));
    CHECK(p.read64(a + 3 * kPageSize) == 5);
    CHECK_FALSE(p.mem.poke(a + 6 * kPageSize, bytes_of(5)));
    // read_string through it.
    REQUIRE(p.mem.copy_out(a + 2 * kPageSize - 3, std::as_bytes(std::span("hi!", 4))) == false);
    REQUIRE(p.mem.copy_out(a + 2 * kPageSize - 3, std::as_bytes(std::span("h", 2))));
    int err = 0;
    CHECK(minivmm::linux_abi::read_string(p.mem, a + 2 * kPageSize - 3, 100, err) == "h");
}

// ---------------------------------------------------------------------------
// Running out

TEST_CASE("running out of RAM or page tables is ENOMEM with nothing half done",
          "[process-memory]") {
    SECTION("data frames") {
        Process p(kTablesSize, 4 * kLargePageSize);
        const std::uint64_t a = 0x700000000;
        REQUIRE(p.mmap(a, 4 * kPageSize, kR | kW, kAnon | MAP_FIXED) ==
                static_cast<std::int64_t>(a));
        p.write64(a, 11);
        const std::uint64_t free_data = p.mem.free_data_bytes();
        const std::uint64_t free_tables = p.mem.free_table_bytes();
        const std::string before = p.mem.describe();
        CHECK(p.mmap(0, 4 * kLargePageSize, kR | kW, kAnon) == neg(ENOMEM));
        CHECK(p.mmap(a, 4 * kLargePageSize, kR | kW, kAnon | MAP_FIXED) == neg(ENOMEM));
        CHECK(p.sys(SYS_mremap, a, 4 * kPageSize, 4 * kLargePageSize + kPageSize, MREMAP_MAYMOVE) ==
              neg(ENOMEM));
        CHECK(p.mem.describe() == before);
        CHECK(p.mem.free_data_bytes() == free_data);
        CHECK(p.mem.free_table_bytes() == free_tables);
        CHECK(p.read64(a) == 11); // MAP_FIXED failed: the old mapping stays
        CHECK_FALSE(p.mem.shootdown_needed());
        CHECK_THROWS_WITH(
            p.mem.map_anonymous_fixed(0x900000000, 4 * kLargePageSize, PROT_READ, "big"),
            Catch::Contains("guest RAM is full"));
        CHECK(p.mem.describe() == before);
    }
    SECTION("page tables") {
        Process p(4 * kPageSize); // the root and three more
        REQUIRE(p.mmap(0x700000000, kPageSize, kR, kAnon | MAP_FIXED) > 0); // PDPT, PD, PT
        const std::uint64_t free_data = p.mem.free_data_bytes();
        CHECK(p.mem.free_table_bytes() == 0);
        // Another 1 GiB region needs a PD and a PT.
        CHECK(p.mmap(0x740000000, kPageSize, kR, kAnon | MAP_FIXED) == neg(ENOMEM));
        CHECK(p.mem.mappings().size() == 1);
        CHECK(p.mem.free_data_bytes() == free_data);
        // The same PT has room.
        CHECK(p.mmap(0x700001000, kPageSize, kR, kAnon | MAP_FIXED) > 0);
    }
}

// ---------------------------------------------------------------------------
// The loader's side

TEST_CASE("the loader maps fixed memory, its own frames and supervisor pages", "[process-memory]") {
    Process p;
    p.mem.map_anonymous_fixed(0x400000, 3 * kPageSize, PROT_READ | PROT_EXEC, "/bin/prog");
    CHECK_THROWS_AS(p.mem.map_anonymous_fixed(0x402000, kPageSize, PROT_READ, "x"), ConfigError);
    CHECK_THROWS_AS(p.mem.map_anonymous_fixed(0x1000, kPageSize, PROT_READ, "x"), ConfigError);
    CHECK_THROWS_AS(p.mem.map_anonymous_fixed(0x500001, kPageSize, PROT_READ, "x"), ConfigError);
    // poke writes read-only memory.
    CHECK(p.mem.poke(0x400010, bytes_of(0xfeed)));
    CHECK(p.read64(0x400010) == 0xfeed);
    p.check_leaf(0x400000, kR | kX);

    // The vDSO: the loader's frames, never freed by munmap.
    auto frames = p.mem.alloc_frames(2);
    std::memcpy(p.mem.frame_bytes(frames[1], 8).data(), "\177ELF", 4);
    const std::uint64_t free_before = p.mem.free_data_bytes();
    p.mem.map_frames(0x7ffff7ff0000, frames, PROT_READ | PROT_EXEC, "[vdso]");
    CHECK(p.walk(0x7ffff7ff1000)->pa(0x7ffff7ff1000) == frames[1]);
    std::array<std::byte, 4> magic{};
    REQUIRE(p.mem.copy_in(0x7ffff7ff1000, magic));
    CHECK(std::memcmp(magic.data(), "\177ELF", 4) == 0);
    CHECK(p.mprotect(0x7ffff7ff0000, kPageSize, kR | kW) == neg(EACCES));
    CHECK(p.sys(SYS_mremap, 0x7ffff7ff0000, 2 * kPageSize, 3 * kPageSize, MREMAP_MAYMOVE) ==
          neg(EFAULT));
    CHECK(p.munmap(0x7ffff7ff0000, 2 * kPageSize) == 0);
    p.mem.shootdown_done();
    CHECK(p.mem.free_data_bytes() == free_before);
    CHECK(std::memcmp(p.mem.frame_bytes(frames[1], 4).data(), "\177ELF", 4) == 0);
    CHECK_THROWS_AS(
        p.mem.map_frames(0x600000, std::vector<std::uint64_t>{kDataGpa + 0x10000}, PROT_READ, "x"),
        ConfigError);

    // Supervisor pages: not user, not the program's.
    const std::uint64_t sup = 0x7fff00000000;
    p.mem.map_supervisor(sup, 0x20000000, kLargePageSize + kPageSize, true, false);
    auto leaf = p.walk(sup);
    REQUIRE(leaf);
    CHECK(leaf->level == 2);
    CHECK((leaf->entry & (P | RW | US | NX)) == (P | RW | NX));
    CHECK(p.walk(sup + kLargePageSize)->level == 1);
    CHECK((p.walk(sup + kLargePageSize)->entry & US) == 0);
    CHECK_THROWS_AS(p.mem.map_supervisor(0x10000000, kDataGpa, kPageSize, false, false),
                    ConfigError);
    CHECK_THROWS_AS(p.mem.map_supervisor(0x400000, 0x30000000, kPageSize, false, false),
                    ConfigError);
    std::array<std::byte, 8> buf{};
    CHECK_FALSE(p.mem.copy_in(sup, buf));
    CHECK(p.mmap(sup, kPageSize, kR, kAnon | MAP_FIXED) == neg(ENOMEM));
    CHECK(p.mmap(sup - kPageSize, 2 * kPageSize, kR, kAnon | MAP_FIXED_NOREPLACE) == neg(ENOMEM));
    CHECK(p.munmap(sup, kPageSize) == neg(EINVAL));
    CHECK(p.mprotect(sup, kPageSize, kR) == neg(ENOMEM));
    std::int64_t hinted = p.mmap(sup, kPageSize, kR, kAnon);
    CHECK(hinted > 0);
    CHECK(static_cast<std::uint64_t>(hinted) != sup);
    CHECK(p.walk(sup)->entry == leaf->entry);
    for (const Vma& v : p.mem.mappings())
        CHECK((v.end <= sup || v.start >= sup + 3 * kLargePageSize));
}

TEST_CASE("a MAP_GROWSDOWN stack grows down on grow_stack, keeping the guard gap",
          "[process-memory]") {
    Process p;
    const std::uint64_t top = 0x7ff000000000;
    REQUIRE(p.mmap(top - 4 * kPageSize, 4 * kPageSize, kR | kW, kAnon | MAP_FIXED | MAP_GROWSDOWN) >
            0);
    CHECK(p.mem.grow_stack(top - 6 * kPageSize + 8));
    auto maps = p.mem.mappings();
    REQUIRE(maps.size() == 1);
    CHECK(maps[0].start == top - 6 * kPageSize);
    CHECK(maps[0].grows_down);
    p.check_leaf(top - 6 * kPageSize, kR | kW);
    CHECK_FALSE(p.mem.grow_stack(top + 8)); // not below a stack
    // A mapping just below: the gap stays.
    p.mmap(top - 6 * kPageSize - ProcessMemory::kStackGuardGap - kPageSize, kPageSize, kR,
           kAnon | MAP_FIXED);
    CHECK_FALSE(p.mem.grow_stack(top - 7 * kPageSize));
    // And mmap's search keeps out of the gap.
    std::int64_t hinted = p.mmap(top - 8 * kPageSize, kPageSize, kR, kAnon);
    CHECK(static_cast<std::uint64_t>(hinted) != top - 8 * kPageSize);
}

TEST_CASE("describe prints /proc/self/maps lines", "[process-memory]") {
    Process p;
    p.mem.map_anonymous_fixed(0x400000, kPageSize, PROT_READ | PROT_EXEC, "/bin/prog");
    p.mem.map_anonymous_fixed(0x7ffffffde000, 0x21000, PROT_READ | PROT_WRITE, "[stack]");
    CHECK(p.mem.describe() == "00400000-00401000 r-xp 00000000 00:00 0        /bin/prog\n"
                              "7ffffffde000-7ffffffff000 rw-p 00000000 00:00 0        [stack]\n");
}

// ---------------------------------------------------------------------------
// A random walk against a model

TEST_CASE("random mmap, munmap, mprotect and madvise agree with a model of pages",
          "[process-memory]") {
    // The window the operations work in; mmap without MAP_FIXED lands in it
    // too (mmap_top is its end).
    const std::uint64_t window = 0x40000000, window_pages = 4096; // 16 MiB
    const std::uint64_t window_end = window + window_pages * kPageSize;
    Process p(kTablesSize, kDataSize, window_end);
    const std::uint64_t initial_free = p.mem.free_data_bytes();
    struct Page {
        int prot = 0;
        std::uint64_t tag = 0; // the 8 bytes at its start
    };
    std::map<std::uint64_t, Page> model; // page va -> what is there
    std::mt19937_64 rng(20240611);
    auto pick = [&rng](std::uint64_t n) {
        return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng);
    };
    const int prots[] = {0,
                         PROT_READ,
                         PROT_READ | PROT_WRITE,
                         PROT_READ | PROT_EXEC,
                         PROT_READ | PROT_WRITE | PROT_EXEC,
                         PROT_WRITE};
    std::uint64_t next_tag = 1;

    auto random_range = [&](std::uint64_t& start, std::uint64_t& pages) {
        if (pick(4) == 0) {
            // 2 MiB-aligned and sized, for large leaves and their splits.
            pages = 512 * (1 + pick(2));
            start = window + 512 * kPageSize * pick(window_pages / 512 - pages / 512 + 1);
        } else {
            pages = 1 + pick(pick(8) == 0 ? 700 : 20);
            start = window + kPageSize * pick(window_pages - pages + 1);
        }
    };
    auto tag_new = [&](std::uint64_t start, std::uint64_t pages, int prot) {
        for (std::uint64_t i = 0; i < pages; ++i) {
            std::uint64_t va = start + i * kPageSize;
            std::uint64_t tag = next_tag++;
            REQUIRE(p.read64(va) == 0);
            p.write64(va, tag);
            model[va] = Page{prot, tag};
        }
    };
    auto verify = [&]() {
        // Page tables, contents and frames, page by page.
        std::set<std::uint64_t> frames;
        for (std::uint64_t va = window; va < window_end; va += kPageSize) {
            auto it = model.find(va);
            auto leaf = p.walk(va);
            if (it == model.end()) {
                INFO("va " << std::hex << va);
                CHECK_FALSE(leaf);
                continue;
            }
            p.check_leaf(va, static_cast<std::uint64_t>(it->second.prot));
            REQUIRE(leaf);
            CHECK(frames.insert(leaf->pa(va)).second);
            CHECK(p.read64(va) == it->second.tag);
        }
        // VMAs: exactly the model's pages, merged where Linux would merge.
        std::uint64_t covered = 0;
        const Vma* prev = nullptr;
        auto maps = p.mem.mappings();
        for (const Vma& v : maps) {
            for (std::uint64_t va = v.start; va < v.end; va += kPageSize) {
                auto it = model.find(va);
                REQUIRE(it != model.end());
                CHECK(it->second.prot == v.prot);
                ++covered;
            }
            if (prev) CHECK_FALSE((prev->end == v.start && prev->prot == v.prot));
            prev = &v;
        }
        CHECK(covered == model.size());
        CHECK(p.mem.free_data_bytes() == initial_free - model.size() * kPageSize);
    };

    for (int step = 0; step < 600; ++step) {
        std::uint64_t start = 0, pages = 0;
        random_range(start, pages);
        const std::uint64_t len = pages * kPageSize;
        const int prot = prots[pick(6)];
        INFO("step " << step << " start " << std::hex << start << " pages " << std::dec << pages);
        switch (pick(6)) {
        case 0:
        case 1: { // mmap MAP_FIXED
            REQUIRE(p.mmap(start, len, static_cast<std::uint64_t>(prot), kAnon | MAP_FIXED) ==
                    static_cast<std::int64_t>(start));
            for (std::uint64_t i = 0; i < pages; ++i)
                model.erase(start + i * kPageSize);
            p.mem.shootdown_done(); // frames of what it replaced are free again
            tag_new(start, pages, prot);
            break;
        }
        case 2: { // mmap with a hint: free space only
            std::int64_t r = p.mmap(start, len, static_cast<std::uint64_t>(prot), kAnon);
            if (r == neg(ENOMEM)) break;
            REQUIRE(r > 0);
            auto at = static_cast<std::uint64_t>(r);
            for (std::uint64_t i = 0; i < pages; ++i)
                CHECK(model.count(at + i * kPageSize) == 0);
            if (at < window || at + len > window_end) {
                CHECK(p.munmap(at, len) == 0); // outside the checked window: give it back
                break;
            }
            tag_new(at, pages, prot);
            break;
        }
        case 3: { // munmap
            CHECK(p.munmap(start, len) == 0);
            for (std::uint64_t i = 0; i < pages; ++i)
                model.erase(start + i * kPageSize);
            break;
        }
        case 4: { // mprotect: up to the first hole
            bool hole = false;
            for (std::uint64_t i = 0; i < pages; ++i) {
                auto it = model.find(start + i * kPageSize);
                if (it == model.end()) {
                    hole = true;
                    break;
                }
                it->second.prot = prot;
            }
            CHECK(p.mprotect(start, len, static_cast<std::uint64_t>(prot)) ==
                  (hole ? neg(ENOMEM) : 0));
            break;
        }
        case 5: { // MADV_DONTNEED: zeros wherever mapped
            bool hole = false;
            for (std::uint64_t i = 0; i < pages; ++i) {
                auto it = model.find(start + i * kPageSize);
                if (it == model.end()) {
                    hole = true;
                } else {
                    it->second.tag = 0;
                }
            }
            CHECK(p.madvise(start, len, MADV_DONTNEED) == (hole ? neg(ENOMEM) : 0));
            break;
        }
        }
        if (pick(3) == 0 || step % 50 == 49) p.mem.shootdown_done();
        if (step % 50 == 49) verify();
    }
    p.mem.shootdown_done();
    verify();
    // Everything gone: all frames and every table page but the root come back.
    CHECK(p.munmap(window, window_end - window) == 0);
    p.mem.shootdown_done();
    CHECK(p.mem.mappings().empty());
    CHECK(p.mem.free_data_bytes() == initial_free);
    CHECK(p.mem.free_table_bytes() == kTablesSize - kPageSize);
}
