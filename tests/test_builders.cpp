// The boot-state builders: run build_guest on a BootRam, then decode what
// was written the way the CPU would (page walk, descriptor formats from the
// Intel SDM vol. 3) without reusing any of the builder code.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "boot/builders.hpp"
#include "minivmm/boot.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/error.hpp"
#include "minivmm/guest_image.hpp"

namespace L = minivmm::layout;
using Catch::Matchers::Contains;
using minivmm::BootPlan;
using minivmm::BootRam;
using minivmm::ConfigError;
using minivmm::GuestImage;
using minivmm::ImageSegment;

namespace {

constexpr std::uint64_t kKiB = 1ull << 10, kMiB = 1ull << 20, kGiB = 1ull << 30;
constexpr std::uint64_t kSlot = L::kVcpuStackSize;
constexpr std::uint32_t kTscKhz = 2'345'678;

std::string hex(std::uint64_t v) {
    std::ostringstream s;
    s << "0x" << std::hex << v;
    return s.str();
}

template <typename T>
T rd(const BootRam& mem, std::uint64_t gpa) {
    auto v = mem.read<T>(gpa);
    INFO("read of " << sizeof(T) << " bytes at " << hex(gpa));
    REQUIRE(v.has_value());
    return *v;
}
std::uint64_t rd64(const BootRam& mem, std::uint64_t gpa) {
    return rd<std::uint64_t>(mem, gpa);
}
std::uint16_t rd16(const BootRam& mem, std::uint64_t gpa) {
    return rd<std::uint16_t>(mem, gpa);
}
std::uint8_t rd8(const BootRam& mem, std::uint64_t gpa) {
    return rd<std::uint8_t>(mem, gpa);
}

// ---- 4-level paging (SDM 4.5) -------------------------------------------

struct Translation {
    bool present = false;
    bool writable = false; // effective: every level writable
    bool user = false;     // effective: every level user
    bool large = false;    // 2 MiB (or 1 GiB) leaf
    std::uint64_t phys = 0;
    std::string problem; // a malformed entry on the way, if any
};

constexpr std::uint64_t kP = 1, kRW = 2, kUS = 4, kPS = 0x80, kXD = 1ull << 63;
constexpr std::uint64_t kAddrMask = 0x000ffffffffff000ull;

Translation translate(const BootRam& mem, std::uint64_t cr3, std::uint64_t va) {
    Translation t;
    t.writable = t.user = true;
    std::uint64_t table = cr3 & kAddrMask;
    const int shifts[] = {39, 30, 21, 12};
    for (int level = 0; level < 4; ++level) {
        if (table < L::kPageTables || table >= L::kPageTablesEnd) {
            t.problem = "table at " + hex(table) + " is outside the page-table pool";
            return t;
        }
        auto e = mem.read<std::uint64_t>(table + ((va >> shifts[level]) & 511) * 8);
        if (!e) {
            t.problem = "table at " + hex(table) + " is outside guest RAM";
            return t;
        }
        if (!(*e & kP)) return t;
        if (*e & kXD) {
            t.problem = "XD set with EFER.NXE clear (reserved bit)";
            return t;
        }
        t.writable = t.writable && (*e & kRW);
        t.user = t.user && (*e & kUS);
        bool leaf = level == 3 || ((level == 1 || level == 2) && (*e & kPS));
        if (level == 0 && (*e & kPS)) {
            t.problem = "PS set in a PML4 entry";
            return t;
        }
        if (leaf) {
            std::uint64_t page_mask = (1ull << shifts[level]) - 1;
            std::uint64_t frame = *e & kAddrMask & ~page_mask;
            if (level < 3 && (*e & kAddrMask & page_mask & ~0x1000ull) != 0) {
                t.problem = "reserved bits set in a large-page entry";
                return t;
            }
            t.present = true;
            t.large = level < 3;
            t.phys = frame | (va & page_mask);
            return t;
        }
        table = *e & kAddrMask;
    }
    return t;
}

// What guest ABI v1 says page `page` must look like.
struct Expect {
    bool present, writable, user;
};
Expect expected_page(std::uint64_t mem_size, std::uint64_t page) {
    if (page >= mem_size || page < L::kPageSize) return {false, false, false};
    if (page >= L::kExceptionStacks && page < L::kReservedEnd) return {true, true, false};
    if (page < L::kReservedEnd) return {true, false, true};
    // "All guest RAM from 1 MiB up is mapped present, writable and user-accessible."
    return {true, true, true};
}

// Checks every page in [from, to) (step `step`) against the ABI; reports
// at most a few mismatches in full.
void sweep(const BootRam& mem, std::uint64_t cr3, std::uint64_t mem_size, std::uint64_t from,
           std::uint64_t to, std::uint64_t step) {
    std::vector<std::string> problems;
    std::uint64_t count = 0;
    for (std::uint64_t page = from; page < to; page += step) {
        Expect want = expected_page(mem_size, page);
        // The first and last byte of the page, so a wrong frame shows up.
        for (std::uint64_t va : {page, page + L::kPageSize - 1}) {
            Translation t = translate(mem, cr3, va);
            std::string bad;
            if (!t.problem.empty())
                bad = t.problem;
            else if (t.present != want.present)
                bad = want.present ? "not mapped" : "mapped";
            else if (t.present && t.writable != want.writable)
                bad = want.writable ? "read-only" : "writable";
            else if (t.present && t.user != want.user)
                bad = want.user ? "supervisor-only" : "user-accessible";
            else if (t.present && t.phys != va)
                bad = "maps to " + hex(t.phys);
            if (!bad.empty() && ++count <= 12) problems.push_back(hex(va) + ": " + bad);
        }
    }
    std::string all;
    for (const auto& p : problems)
        all += "\n  " + p;
    INFO(count << " page-table mismatches in [" << hex(from) << ", " << hex(to) << ")" << all);
    CHECK(count == 0);
}

// ---- descriptors (SDM 3.4.5, 7.2.3, 6.14.1) -----------------------------

struct Segment {
    std::uint64_t base;
    std::uint32_t limit;
    unsigned type, s, dpl, p, l, db, g;
};
Segment decode_segment(std::uint64_t d) {
    Segment s{};
    s.base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
    s.limit = static_cast<std::uint32_t>((d & 0xffff) | (((d >> 48) & 0xf) << 16));
    s.type = (d >> 40) & 0xf;
    s.s = (d >> 44) & 1;
    s.dpl = (d >> 45) & 3;
    s.p = (d >> 47) & 1;
    s.l = (d >> 53) & 1;
    s.db = (d >> 54) & 1;
    s.g = (d >> 55) & 1;
    return s;
}

struct Gate {
    std::uint64_t offset;
    unsigned selector, ist, type, s, dpl, p;
};
Gate decode_gate(std::uint64_t lo, std::uint64_t hi) {
    Gate g{};
    g.offset = (lo & 0xffff) | (((lo >> 48) & 0xffff) << 16) | ((hi & 0xffffffff) << 32);
    g.selector = (lo >> 16) & 0xffff;
    g.ist = (lo >> 32) & 7;
    g.type = (lo >> 40) & 0xf;
    g.s = (lo >> 44) & 1;
    g.dpl = (lo >> 45) & 3;
    g.p = (lo >> 47) & 1;
    return g;
}

// ---- a built guest ---------------------------------------------------------

struct Config {
    const char* name;
    std::uint64_t mem_size;
    unsigned vcpus;
    std::string cmdline;
    bool elf; // an ELF-like image with a zero-filled tail; flat otherwise
};

GuestImage make_image(bool elf) {
    GuestImage image;
    if (!elf) {
        ImageSegment seg;
        seg.gpa = L::kImageBase;
        seg.data.resize(0x2345);
        for (std::size_t i = 0; i < seg.data.size(); ++i)
            seg.data[i] = static_cast<std::byte>(0x90 ^ (i & 0x7f));
        seg.mem_size = seg.data.size();
        seg.executable = true;
        image.segments.push_back(std::move(seg));
        image.entry = L::kImageBase;
        return image;
    }
    image.format = GuestImage::Format::elf64;
    ImageSegment text;
    text.gpa = L::kImageBase;
    text.data.assign(0x1000, std::byte{0xc3});
    text.mem_size = 0x1000;
    text.executable = true;
    ImageSegment data;
    data.gpa = 0x180000;
    data.data.assign(0x100, std::byte{0x5a});
    data.mem_size = 0x3000; // 0x2f00 bytes of .bss-like tail
    image.segments = {std::move(text), std::move(data)};
    image.entry = L::kImageBase + 0x10;
    return image;
}

struct Built {
    explicit Built(const Config& c)
        : cfg(c), image(make_image(c.elf)), plan(c.mem_size, c.vcpus, image), mem(c.mem_size) {
        // Garbage where the image's zero-filled tail goes: the loader must clear it.
        if (c.elf) mem.fill(0x180000, 0x3000, std::byte{0xee});
        cr3 = minivmm::build_guest(mem, plan, image, kTscKhz, c.cmdline);
    }
    Config cfg;
    GuestImage image;
    BootPlan plan;
    BootRam mem;
    std::uint64_t cr3 = 0;
};

const Config kConfigs[] = {
    {"64 MiB, 1 vCPU, flat", 64 * kMiB, 1, "", false},
    {"64 MiB + 12 KiB, 1 vCPU, flat", 64 * kMiB + 12 * kKiB, 1, "console=ttyS0 quiet", false},
    {"64 MiB, 2 vCPUs, ELF", 64 * kMiB, 2, "a b c", true},
    {"6 MiB + 4 KiB, 3 vCPUs, ELF", 6 * kMiB + 4 * kKiB, 3, "x", true},
    {"128 MiB, 256 vCPUs, flat", 128 * kMiB, L::kMaxVcpus, "", false},
    {"1 GiB + 2 MiB + 8 KiB, 2 vCPUs, ELF", kGiB + 2 * kMiB + 8 * kKiB, 2, "", true},
};

} // namespace

TEST_CASE("layout: the VMM's areas below 1 MiB are disjoint and big enough", "[boot][layout]") {
    // [start, end) of each area, in address order.
    const std::pair<std::uint64_t, std::uint64_t> areas[] = {
        {L::kBootInfo, L::kBootInfo + 64},
        {L::kCmdline, L::kCmdline + L::kCmdlineMax},
        {L::kGdt, L::kGdt + L::kFirstTss + 16ull * L::kMaxVcpus},
        {L::kIdt, L::kIdt + 256 * 16},
        {L::kExceptionStubs, L::kExceptionStubs + 32 * 16},
        {L::kTssArray, L::kTssArray + L::kTssStride * L::kMaxVcpus},
        {L::kIoBitmap, L::kIoBitmap + L::kIoBitmapSize + 1},
        {L::kPageTables, L::kPageTablesEnd},
        {L::kExceptionStacks, L::kExceptionStacks + L::kExceptionStackSize * L::kMaxVcpus},
    };
    CHECK(areas[0].first >= L::kPageSize); // page 0 stays free (unmapped)
    for (std::size_t i = 0; i + 1 < std::size(areas); ++i) {
        INFO("area " << i << " [" << hex(areas[i].first) << ", " << hex(areas[i].second)
                     << ") and the next at " << hex(areas[i + 1].first));
        CHECK(areas[i].first < areas[i].second);
        CHECK(areas[i].second <= areas[i + 1].first);
    }
    CHECK(areas[std::size(areas) - 1].second <= L::kReservedEnd);
    CHECK(L::kTssStride >= 104);
    CHECK(L::kUserCs == (0x20 | 3));
    CHECK(L::kUserDs == (0x18 | 3));
}

TEST_CASE("page tables map guest RAM identity with the ABI's permissions", "[boot][paging]") {
    for (const auto& cfg : kConfigs) {
        INFO("config: " << cfg.name);
        Built b(cfg);
        REQUIRE(b.cr3 % L::kPageSize == 0);
        REQUIRE(b.cr3 >= L::kPageTables);
        REQUIRE(b.cr3 < L::kPageTablesEnd);

        // Every page of RAM and a stretch past its end.
        sweep(b.mem, b.cr3, cfg.mem_size, 0, cfg.mem_size + 4 * kMiB, L::kPageSize);

        auto at = [&](std::uint64_t va) { return translate(b.mem, b.cr3, va); };
        CHECK_FALSE(at(0).present);
        CHECK_FALSE(at(0xfff).present);
        CHECK(at(0x1000).present);
        CHECK(at(0x1000).user);
        CHECK_FALSE(at(0x1000).writable);
        CHECK(at(L::kExceptionStacks).present);
        CHECK(at(L::kExceptionStacks).writable);
        CHECK_FALSE(at(L::kExceptionStacks).user);
        CHECK(at(L::kReservedEnd - 1).writable);
        CHECK_FALSE(at(L::kReservedEnd - 1).user);
        CHECK(at(0x100000).present);
        CHECK(at(0x100000).user);
        CHECK(at(0x100000).writable);
        CHECK(at(b.plan.heap_start()).writable);
        CHECK(at(b.plan.heap_end() - 1).writable);
        CHECK(at(cfg.mem_size - 1).present);
        CHECK(at(cfg.mem_size - 1).phys == cfg.mem_size - 1);
        CHECK_FALSE(at(cfg.mem_size).present);
        CHECK_FALSE(at(cfg.mem_size + L::kPageSize).present);
        // Far beyond RAM, in other PML4/PDPT slots.
        CHECK_FALSE(at(512 * kGiB).present);
        CHECK_FALSE(at(0x0000'7fff'ffff'f000ull).present);
        CHECK_FALSE(at(63 * kGiB).present);

        for (unsigned i = 0; i < cfg.vcpus; ++i) {
            INFO("vCPU " << i);
            std::uint64_t top = b.plan.stack_top(i);
            CHECK(at(top - 1).present);
            CHECK(at(top - 1).writable);
            CHECK(at(top - 1).user);
            CHECK(at(top - L::kVcpuStackSize).writable); // lowest stack byte
            // No guard page: the byte below the stack is plain RAM too (the ABI maps it all).
            CHECK(at(top - L::kVcpuStackSize - 1).present);
            CHECK(at(top - L::kVcpuStackSize - 1).writable);
        }
        // Plain RAM uses 2 MiB pages.
        for (std::uint64_t va = 2 * kMiB; va + 2 * kMiB <= b.plan.heap_end(); va += 2 * kMiB) {
            INFO("address " << hex(va));
            CHECK(at(va).large);
        }
    }
}

TEST_CASE("page tables for the largest RAM size fit the page-table pool", "[boot][paging]") {
    const std::uint64_t mem_size = L::kMaxMemSize;
    GuestImage image = make_image(false);
    BootPlan plan(mem_size, 2, image);
    BootRam mem(mem_size); // lazily backed: only the pages written are touched
    std::uint64_t cr3 = minivmm::build_page_tables(mem, plan);
    sweep(mem, cr3, mem_size, 0, 4 * kMiB, L::kPageSize);
    sweep(mem, cr3, mem_size, 4 * kMiB, mem_size - 4 * kMiB, 2 * kMiB);
    sweep(mem, cr3, mem_size, mem_size - 4 * kMiB, mem_size + 4 * kMiB, L::kPageSize);
    CHECK(translate(mem, cr3, 40 * kGiB + 12345).phys == 40 * kGiB + 12345);
    CHECK(translate(mem, cr3, 40 * kGiB).large);
}

TEST_CASE("GDT: flat 64-bit code and data segments and one TSS per vCPU", "[boot][gdt]") {
    for (const auto& cfg : kConfigs) {
        INFO("config: " << cfg.name);
        Built b(cfg);
        CHECK(rd64(b.mem, L::kGdt) == 0); // null descriptor

        auto kcode = decode_segment(rd64(b.mem, L::kGdt + L::kKernelCs));
        CHECK(kcode.p == 1);
        CHECK(kcode.s == 1);
        CHECK((kcode.type & 0x8) != 0); // code
        CHECK((kcode.type & 0x1) != 0); // accessed preset
        CHECK(kcode.dpl == 0);
        CHECK(kcode.l == 1);
        CHECK(kcode.db == 0); // L=1 requires D=0

        auto kdata = decode_segment(rd64(b.mem, L::kGdt + L::kKernelDs));
        CHECK(kdata.p == 1);
        CHECK(kdata.s == 1);
        CHECK((kdata.type & 0x8) == 0);
        CHECK((kdata.type & 0x2) != 0); // writable
        CHECK((kdata.type & 0x1) != 0);
        CHECK(kdata.dpl == 0);

        auto ucode = decode_segment(rd64(b.mem, L::kGdt + (L::kUserCs & ~3)));
        CHECK(ucode.p == 1);
        CHECK(ucode.s == 1);
        CHECK((ucode.type & 0x8) != 0);
        CHECK((ucode.type & 0x1) != 0);
        CHECK(ucode.dpl == 3);
        CHECK(ucode.l == 1);
        CHECK(ucode.db == 0);

        auto udata = decode_segment(rd64(b.mem, L::kGdt + (L::kUserDs & ~3)));
        CHECK(udata.p == 1);
        CHECK(udata.s == 1);
        CHECK((udata.type & 0x8) == 0);
        CHECK((udata.type & 0x2) != 0);
        CHECK((udata.type & 0x1) != 0);
        CHECK(udata.dpl == 3);
        CHECK(udata.base == 0);

        for (unsigned i = 0; i < cfg.vcpus; ++i) {
            INFO("vCPU " << i);
            std::uint64_t at = L::kGdt + L::kFirstTss + 16ull * i;
            std::uint64_t lo = rd64(b.mem, at), hi = rd64(b.mem, at + 8);
            auto tss = decode_segment(lo);
            std::uint64_t base = tss.base | ((hi & 0xffffffff) << 32);
            CHECK(base == L::kTssArray + i * L::kTssStride);
            CHECK(tss.type == 0xb); // 64-bit TSS, busy
            CHECK(tss.s == 0);
            CHECK(tss.p == 1);
            CHECK(tss.g == 0);
            CHECK(((hi >> 40) & 0x1f) == 0); // must-be-zero type field of the upper half
            std::uint16_t iomap = rd16(b.mem, base + 102);
            // The CPU reads two bytes of the bitmap: the 0xff byte must be inside the limit.
            CHECK(tss.limit >= std::uint64_t{iomap} + L::kIoBitmapSize);
            CHECK(tss.limit >= 103);
        }
    }
}

TEST_CASE("TSS: ring-0 stack per vCPU and an I/O bitmap allowing every port", "[boot][tss]") {
    for (const auto& cfg : kConfigs) {
        INFO("config: " << cfg.name);
        Built b(cfg);
        std::vector<std::pair<std::uint64_t, std::uint64_t>> stacks;
        for (unsigned i = 0; i < cfg.vcpus; ++i) {
            INFO("vCPU " << i);
            std::uint64_t base = L::kTssArray + i * L::kTssStride;
            std::uint64_t rsp0 = rd64(b.mem, base + 4);
            CHECK(rsp0 % 16 == 0);
            CHECK(rsp0 - L::kExceptionStackSize >= L::kExceptionStacks);
            CHECK(rsp0 <= L::kReservedEnd);
            stacks.emplace_back(rsp0 - L::kExceptionStackSize, rsp0);
            // The CPU pushes the frame there at CPL 0: supervisor, writable.
            auto t = translate(b.mem, b.cr3, rsp0 - 8);
            CHECK(t.present);
            CHECK(t.writable);
            CHECK_FALSE(t.user);
            std::uint16_t iomap = rd16(b.mem, base + 102);
            CHECK(base + iomap == L::kIoBitmap);
            // No IST stacks in use; the other stack fields are 0.
            CHECK(rd64(b.mem, base + 36) == 0);
        }
        std::sort(stacks.begin(), stacks.end());
        for (std::size_t i = 0; i + 1 < stacks.size(); ++i)
            CHECK(stacks[i].second <= stacks[i + 1].first);

        std::uint64_t nonzero = 0;
        for (std::uint64_t p = 0; p < L::kIoBitmapSize; ++p)
            nonzero += rd8(b.mem, L::kIoBitmap + p) != 0;
        CHECK(nonzero == 0);
        CHECK(rd8(b.mem, L::kIoBitmap + L::kIoBitmapSize) == 0xff);
    }
}

TEST_CASE("IDT: ring-0 interrupt gates for the 32 exceptions into the VMM's stubs", "[boot][idt]") {
    Built b(kConfigs[0]);
    std::set<std::uint64_t> offsets;
    for (unsigned v = 0; v < 256; ++v) {
        INFO("vector " << v);
        auto g =
            decode_gate(rd64(b.mem, L::kIdt + 16ull * v), rd64(b.mem, L::kIdt + 16ull * v + 8));
        if (v >= 32) {
            CHECK(g.p == 0);
            continue;
        }
        CHECK(g.p == 1);
        CHECK(g.type == 0xe); // 64-bit interrupt gate: IF cleared on entry
        CHECK(g.s == 0);
        CHECK(g.selector == L::kKernelCs);
        CHECK(g.ist == 0);
        CHECK(g.dpl == ((v == 3 || v == 4) ? 3u : 0u));
        CHECK(g.offset >= L::kExceptionStubs);
        CHECK(g.offset + 16 <= L::kExceptionStubs + L::kPageSize);
        offsets.insert(g.offset);

        std::array<std::uint8_t, 16> stub{};
        for (unsigned i = 0; i < 16; ++i)
            stub[i] = rd8(b.mem, g.offset + i);
        std::vector<std::uint8_t> prefix;
        bool has_error = v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21 || v == 29 || v == 30;
        if (has_error)
            prefix = {0x6a, static_cast<std::uint8_t>(v)};
        else
            prefix = {0x6a, 0x00, 0x6a, static_cast<std::uint8_t>(v)};
        INFO((has_error ? "CPU pushes an error code" : "stub pushes a 0 error code"));
        CHECK(std::equal(prefix.begin(), prefix.end(), stub.begin()));
        CHECK(minivmm::exception_has_error_code(v) == has_error);

        // mov $kExceptionPort, %dx (or %edx); out %al, %dx
        const std::uint8_t lo = L::kExceptionPort & 0xff, hi = L::kExceptionPort >> 8;
        const std::vector<std::uint8_t> out16 = {0x66, 0xba, lo, hi, 0xee};
        const std::vector<std::uint8_t> out32 = {0xba, lo, hi, 0x00, 0x00, 0xee};
        bool found =
            std::search(stub.begin(), stub.end(), out16.begin(), out16.end()) != stub.end() ||
            std::search(stub.begin(), stub.end(), out32.begin(), out32.end()) != stub.end();
        CHECK(found);
        // Stubs sit in the VMM's area; CPL 0 may run them only without SMEP.
        auto t = translate(b.mem, b.cr3, g.offset);
        CHECK(t.present);
    }
    CHECK(offsets.size() == 32);
    // Stubs are at least 16 bytes apart, so none runs into the next.
    for (auto it = offsets.begin(); std::next(it) != offsets.end(); ++it)
        CHECK(*std::next(it) - *it >= 16);
}

TEST_CASE("boot info block at kBootInfo", "[boot][bootinfo]") {
    for (const auto& cfg : kConfigs) {
        INFO("config: " << cfg.name);
        Built b(cfg);
        const std::uint64_t bi = L::kBootInfo;
        CHECK(rd64(b.mem, bi + 0) == 0x31564d4d56494e4dull); // the ABI's magic number
        CHECK(rd64(b.mem, bi + 8) == 1);
        CHECK(rd64(b.mem, bi + 16) == cfg.mem_size);
        CHECK(rd64(b.mem, bi + 24) == cfg.vcpus);
        CHECK(rd64(b.mem, bi + 32) == kTscKhz);
        std::uint64_t heap_start = rd64(b.mem, bi + 40), heap_end = rd64(b.mem, bi + 48);
        CHECK(heap_start == b.plan.heap_start());
        CHECK(heap_end == b.plan.heap_end());
        CHECK(heap_start % L::kPageSize == 0);
        CHECK(heap_end % L::kPageSize == 0);
        CHECK(heap_start >= b.image.end());
        CHECK(heap_end == cfg.mem_size - cfg.vcpus * kSlot);
        std::uint64_t cmdline = rd64(b.mem, bi + 56);
        if (cfg.cmdline.empty()) {
            CHECK(cmdline == 0);
        } else {
            REQUIRE(cmdline == L::kCmdline);
            std::string s;
            for (std::uint64_t a = cmdline; rd8(b.mem, a) != 0 && s.size() < 8192; ++a)
                s += static_cast<char>(rd8(b.mem, a));
            CHECK(s == cfg.cmdline);
            // The guest can read it: mapped user.
            CHECK(translate(b.mem, b.cr3, cmdline).user);
        }
        // The boot info is readable by the guest and not writable.
        auto t = translate(b.mem, b.cr3, bi);
        CHECK(t.present);
        CHECK(t.user);
        CHECK_FALSE(t.writable);
    }
}

TEST_CASE("the image is loaded at its addresses with a zeroed tail", "[boot][load]") {
    for (const auto& cfg : kConfigs) {
        INFO("config: " << cfg.name);
        Built b(cfg);
        for (const auto& seg : b.image.segments) {
            INFO("segment at " << hex(seg.gpa));
            auto r = b.mem.range(seg.gpa, seg.mem_size);
            REQUIRE(r);
            CHECK(std::equal(seg.data.begin(), seg.data.end(), r->begin()));
            CHECK(std::all_of(r->begin() + static_cast<long>(seg.data.size()), r->end(),
                              [](std::byte x) { return x == std::byte{0}; }));
        }
    }
}

TEST_CASE("command line limits", "[boot][bootinfo]") {
    GuestImage image = make_image(false);
    BootPlan plan(16 * kMiB, 1, image);
    BootRam mem(16 * kMiB);

    std::string longest(L::kCmdlineMax - 1, 'x');
    REQUIRE_NOTHROW(minivmm::build_boot_info(mem, plan, 0, longest));
    CHECK(rd64(mem, L::kBootInfo + 56) == L::kCmdline);
    CHECK(rd8(mem, L::kCmdline + longest.size() - 1) == 'x');
    CHECK(rd8(mem, L::kCmdline + longest.size()) == 0);
    CHECK(rd64(mem, L::kBootInfo + 32) == 0); // tsc_khz unknown

    // A shorter command line afterwards leaves no stale bytes behind.
    REQUIRE_NOTHROW(minivmm::build_boot_info(mem, plan, 0, "short"));
    CHECK(rd8(mem, L::kCmdline + 5) == 0);
    CHECK(rd8(mem, L::kCmdline + 6) == 0);

    std::string too_long(L::kCmdlineMax, 'x');
    CHECK_THROWS_AS(minivmm::build_boot_info(mem, plan, 0, too_long), ConfigError);
    CHECK_THROWS_AS(minivmm::build_boot_info(mem, plan, 0, std::string(100000, 'y')), ConfigError);
    using namespace std::string_literals;
    CHECK_THROWS_AS(minivmm::build_boot_info(mem, plan, 0, "a\0b"s), ConfigError);
    CHECK_THROWS_WITH(minivmm::build_boot_info(mem, plan, 0, "a\0b"s), Contains("NUL"));
    CHECK_THROWS_AS(minivmm::build_guest(mem, plan, image, 0, too_long), ConfigError);
}

TEST_CASE("initial segment and control registers", "[boot][regs]") {
    kvm_sregs base{};
    base.apic_base = 0xfee00900;
    base.cr8 = 0;
    for (unsigned vcpu : {0u, 1u, 5u, L::kMaxVcpus - 1}) {
        INFO("vCPU " << vcpu);
        const std::uint64_t cr3 = L::kPageTables;
        kvm_sregs s = minivmm::initial_sregs(base, vcpu, cr3);
        CHECK(s.apic_base == 0xfee00900); // kept from the base

        CHECK(s.cs.selector == 0x23);
        CHECK(s.cs.dpl == 3);
        CHECK(s.cs.l == 1);
        CHECK(s.cs.db == 0);
        CHECK(s.cs.present == 1);
        CHECK(s.cs.s == 1);
        CHECK((s.cs.type & 0x8) != 0);
        CHECK(s.cs.base == 0);
        for (const kvm_segment* d : {&s.ds, &s.es, &s.fs, &s.gs, &s.ss}) {
            CHECK(d->selector == 0x1b);
            CHECK(d->dpl == 3);
            CHECK(d->present == 1);
            CHECK(d->s == 1);
            CHECK((d->type & 0x8) == 0);
            CHECK((d->type & 0x2) != 0);
            CHECK(d->base == 0); // FS/GS base 0
        }

        constexpr std::uint64_t PE = 1, MP = 2, EM = 4, WP = 1 << 16, PG = 1ull << 31;
        CHECK((s.cr0 & (PE | PG | WP | MP)) == (PE | PG | WP | MP));
        CHECK((s.cr0 & EM) == 0);
        constexpr std::uint64_t PAE = 1 << 5, OSFXSR = 1 << 9, OSXMMEXCPT = 1 << 10, SMEP = 1 << 20,
                                SMAP = 1 << 21, LA57 = 1 << 12;
        CHECK((s.cr4 & (PAE | OSFXSR | OSXMMEXCPT)) == (PAE | OSFXSR | OSXMMEXCPT));
        // The exception stubs live in user pages and the tables are 4-level.
        CHECK((s.cr4 & (SMEP | SMAP | LA57)) == 0);
        constexpr std::uint64_t LME = 1 << 8, LMA = 1 << 10, NXE = 1 << 11;
        CHECK((s.efer & (LME | LMA)) == (LME | LMA));
        CHECK((s.efer & NXE) == 0); // the tables never set XD
        CHECK(s.cr3 == cr3);

        CHECK(s.tr.selector == L::kFirstTss + 16 * vcpu);
        CHECK(s.tr.base == L::kTssArray + vcpu * L::kTssStride);
        CHECK(s.tr.type == 0xb);
        CHECK(s.tr.present == 1);
        CHECK(s.tr.limit == (L::kIoBitmap - s.tr.base) + L::kIoBitmapSize);
        CHECK(s.gdt.base == L::kGdt);
        CHECK(s.gdt.limit >= L::kFirstTss + 16 * vcpu + 15);
        CHECK(s.idt.base == L::kIdt);
        CHECK(s.idt.limit >= 32 * 16 - 1);
    }
}

TEST_CASE("TR in the sregs matches the TSS descriptor in the GDT", "[boot][regs]") {
    Built b(kConfigs[2]);
    for (unsigned i = 0; i < b.cfg.vcpus; ++i) {
        kvm_sregs s = minivmm::initial_sregs(kvm_sregs{}, i, b.cr3);
        auto desc = decode_segment(rd64(b.mem, L::kGdt + s.tr.selector));
        std::uint64_t base =
            desc.base | ((rd64(b.mem, L::kGdt + s.tr.selector + 8) & 0xffffffff) << 32);
        CHECK(s.tr.base == base);
        CHECK(s.tr.limit == desc.limit);
        CHECK(s.tr.type == desc.type);
    }
}

TEST_CASE("initial general-purpose registers", "[boot][regs]") {
    GuestImage image = make_image(true);
    BootPlan plan(64 * kMiB, 4, image);
    std::set<std::uint64_t> rsps;
    for (unsigned vcpu = 0; vcpu < 4; ++vcpu) {
        INFO("vCPU " << vcpu);
        kvm_regs r = minivmm::initial_regs(plan, vcpu);
        CHECK(r.rip == image.entry);
        CHECK(r.rflags == 0x3002);
        CHECK(r.rdi == L::kBootInfo);
        CHECK(r.rsi == vcpu);
        CHECK(r.rsp == plan.stack_top(vcpu));
        CHECK(r.rsp % 16 == 0);
        rsps.insert(r.rsp);
    }
    CHECK(rsps.size() == 4);
}

TEST_CASE("exception names and error-code vectors", "[boot]") {
    CHECK(minivmm::exception_mnemonic(0) == "#DE");
    CHECK(minivmm::exception_mnemonic(3) == "#BP");
    CHECK(minivmm::exception_mnemonic(6) == "#UD");
    CHECK(minivmm::exception_mnemonic(13) == "#GP");
    CHECK(minivmm::exception_mnemonic(14) == "#PF");
    CHECK_FALSE(minivmm::exception_mnemonic(31).empty());
    CHECK_FALSE(minivmm::exception_mnemonic(32).empty());
    CHECK_FALSE(minivmm::exception_mnemonic(255).empty());
    CHECK_FALSE(minivmm::exception_has_error_code(255));
}
