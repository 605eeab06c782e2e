// The host-side loader of unmodified Linux programs (issue 16): the ELF
// parser (src/program/elf_executable.*) on executables built here byte by
// byte, each malformed one refused with its own reason, and on real static
// executables; the initial stack (src/program/initial_stack.*) decoded back,
// and compared with the stack Linux itself builds for the same program.
#include <catch2/catch.hpp>

#include <elf.h>
#include <sys/personality.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "minivmm/error.hpp"
#include "program/elf_executable.hpp"
#include "program/initial_stack.hpp"
#include "skip.hpp"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using minivmm::ConfigError;
using minivmm::ImageError;
using minivmm::linux_abi::build_initial_stack;
using minivmm::linux_abi::ElfExecutable;
using minivmm::linux_abi::ElfLoadOptions;
using minivmm::linux_abi::ElfSegment;
using minivmm::linux_abi::InitialStack;
using minivmm::linux_abi::InitialStackInputs;
using minivmm::linux_abi::parse_elf_executable;

namespace {

constexpr std::uint64_t kGuestRam = 256ull << 20;
constexpr std::uint64_t kPage = 4096;

// A small static executable, written field by field so that a test can
// break one of them. By default:
//   load 0  R+X  file [0, 0x1100)      at 0x400000  (the headers and text; entry 0x401000)
//   load 1  R+W  file [0x2010, 0x2110) at 0x403010, 0x2000 bytes (bss after the data)
//   GNU_STACK RW
struct TestElf {
    Elf64_Ehdr eh{};
    std::vector<Elf64_Phdr> ph;
    std::size_t file_size = 0x2110;

    TestElf() {
        std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[EI_VERSION] = EV_CURRENT;
        eh.e_type = ET_EXEC;
        eh.e_machine = EM_X86_64;
        eh.e_version = EV_CURRENT;
        eh.e_entry = 0x401000;
        eh.e_phoff = sizeof(Elf64_Ehdr);
        eh.e_ehsize = sizeof(Elf64_Ehdr);
        eh.e_phentsize = sizeof(Elf64_Phdr);
        ph.push_back(load(0, 0x400000, 0x1100, 0x1100, PF_R | PF_X));
        ph.push_back(load(0x2010, 0x403010, 0x100, 0x2000, PF_R | PF_W));
        Elf64_Phdr stack{};
        stack.p_type = PT_GNU_STACK;
        stack.p_flags = PF_R | PF_W;
        ph.push_back(stack);
    }

    static Elf64_Phdr load(std::uint64_t offset, std::uint64_t vaddr, std::uint64_t filesz,
                           std::uint64_t memsz, std::uint32_t flags) {
        Elf64_Phdr p{};
        p.p_type = PT_LOAD;
        p.p_offset = offset;
        p.p_vaddr = p.p_paddr = vaddr;
        p.p_filesz = filesz;
        p.p_memsz = memsz;
        p.p_flags = flags;
        p.p_align = kPage;
        return p;
    }

    // As the ELF64 static-pie gcc makes: linked at 0, ET_DYN.
    static TestElf pie() {
        TestElf elf;
        elf.eh.e_type = ET_DYN;
        elf.eh.e_entry = 0x1000;
        elf.ph[0].p_vaddr = 0;
        elf.ph[1].p_vaddr = 0x3010;
        return elf;
    }

    // Adds a PT_INTERP whose p_filesz bytes at `offset` are `text` (which
    // holds its NUL, or not).
    void add_interp(const std::string& text, std::uint64_t offset = 0x1000) {
        Elf64_Phdr p{};
        p.p_type = PT_INTERP;
        p.p_offset = offset;
        p.p_filesz = p.p_memsz = text.size();
        p.p_flags = PF_R;
        ph.insert(ph.begin(), p);
        interp_offset = offset;
        interp_text = text;
    }
    std::uint64_t interp_offset = 0;
    std::string interp_text;

    std::vector<std::byte> bytes() const {
        std::vector<std::byte> out(file_size);
        for (std::size_t i = 0; i < out.size(); ++i)
            out[i] = static_cast<std::byte>(i * 7 + 1);
        if (interp_offset + interp_text.size() <= out.size())
            std::memcpy(out.data() + interp_offset, interp_text.data(), interp_text.size());
        Elf64_Ehdr h = eh;
        h.e_phnum = static_cast<std::uint16_t>(ph.size());
        std::memcpy(out.data(), &h, std::min(sizeof h, out.size()));
        for (std::size_t i = 0; i < ph.size() && eh.e_phoff <= out.size(); ++i) {
            const std::size_t at = eh.e_phoff + i * sizeof(Elf64_Phdr);
            if (at <= out.size() && out.size() - at >= sizeof(Elf64_Phdr))
                std::memcpy(out.data() + at, &ph[i], sizeof(Elf64_Phdr));
        }
        return out;
    }
};

ElfExecutable parse(const std::vector<std::byte>& bytes, std::uint64_t limit = kGuestRam) {
    ElfLoadOptions options;
    options.memory_limit = limit;
    return parse_elf_executable(bytes, options, "test.elf");
}

// The one-line ImageError `bytes` are refused with.
std::string refusal(const std::vector<std::byte>& bytes, std::uint64_t limit = kGuestRam) {
    try {
        parse(bytes, limit);
    } catch (const ImageError& e) {
        const std::string what = e.what();
        CHECK_THAT(what, StartsWith("test.elf: "));
        CHECK(what.find('\n') == std::string::npos);
        return what;
    }
    FAIL("accepted, expected an ImageError");
    return {};
}

std::vector<std::byte> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in);
    std::vector<char> chars((std::istreambuf_iterator<char>(in)), {});
    std::vector<std::byte> out(chars.size());
    std::memcpy(out.data(), chars.data(), chars.size());
    return out;
}

// What every accepted executable must look like; `file` is its bytes.
void check_invariants(const ElfExecutable& exe, std::span<const std::byte> file) {
    REQUIRE(!exe.segments.empty());
    bool entry_in_exec = false, phdr_loaded = false;
    for (std::size_t i = 0; i < exe.segments.size(); ++i) {
        const ElfSegment& s = exe.segments[i];
        CHECK(s.start % kPage == 0);
        CHECK(s.end % kPage == 0);
        CHECK(s.start < s.end);
        CHECK(s.start >= ElfExecutable::kMinAddress);
        CHECK(s.end <= ElfExecutable::kUserEnd);
        CHECK(s.file_offset % kPage == 0);
        CHECK(s.file_size <= s.size());
        CHECK(s.file_offset <= file.size());
        CHECK(s.file_size <= file.size() - s.file_offset);
        if (i > 0) CHECK(exe.segments[i - 1].end <= s.start);
        entry_in_exec =
            entry_in_exec || (s.executable && exe.entry >= s.start && exe.entry < s.end);
        phdr_loaded =
            phdr_loaded || (exe.phdr >= s.start && exe.phdr + exe.phnum * exe.phent <= s.end);
    }
    CHECK(entry_in_exec);
    CHECK(phdr_loaded);
    CHECK(exe.phent == sizeof(Elf64_Phdr));
    CHECK(exe.brk_start == exe.segments.back().end);
    CHECK(exe.span() == exe.segments.back().end - exe.segments.front().start);
    CHECK(exe.align >= kPage);
    CHECK((exe.align & (exe.align - 1)) == 0);
}

// The header of a real file, read here independently of the parser.
Elf64_Ehdr header_of(const std::vector<std::byte>& file) {
    Elf64_Ehdr eh;
    REQUIRE(file.size() >= sizeof eh);
    std::memcpy(&eh, file.data(), sizeof eh);
    return eh;
}

} // namespace

TEST_CASE("elf: a static executable's segments, entry, program headers and brk", "[program][elf]") {
    const TestElf elf;
    const auto bytes = elf.bytes();
    const ElfExecutable exe = parse(bytes);
    CHECK(exe.kind == ElfExecutable::Kind::et_exec);
    REQUIRE(exe.segments.size() == 2);
    const ElfSegment& text = exe.segments[0];
    CHECK(text.start == 0x400000);
    CHECK(text.end == 0x402000);
    CHECK(text.file_offset == 0);
    CHECK(text.file_size == 0x1100);
    CHECK(text.zero_start() == 0x401100);
    CHECK((text.readable && !text.writable && text.executable));
    const ElfSegment& data = exe.segments[1];
    CHECK(data.start == 0x403000);
    CHECK(data.end == 0x406000); // 0x403010 + 0x2000, rounded up
    // From the page boundary: the 0x10 bytes before p_offset come along.
    CHECK(data.file_offset == 0x2000);
    CHECK(data.file_size == 0x110);
    CHECK(data.zero_start() == 0x403110);
    CHECK((data.readable && data.writable && !data.executable));
    CHECK(exe.entry == 0x401000);
    CHECK(exe.phdr == 0x400040); // the PT_LOAD holding e_phoff
    CHECK(exe.phent == 56);
    CHECK(exe.phnum == 3);
    CHECK(exe.load_bias == 0);
    CHECK(exe.brk_start == 0x406000);
    CHECK_FALSE(exe.stack_executable);
    CHECK(exe.memory_size() == 0x2000 + 0x3000);
    check_invariants(exe, bytes);
}

TEST_CASE("elf: a static-pie is moved to the base the caller chose", "[program][elf]") {
    auto elf = TestElf::pie();
    const auto bytes = elf.bytes();
    const ElfExecutable exe = parse(bytes);
    constexpr std::uint64_t base = ElfLoadOptions::kDefaultPieBase;
    CHECK(exe.kind == ElfExecutable::Kind::et_dyn);
    CHECK(exe.load_bias == base);
    CHECK(exe.entry == base + 0x1000);
    CHECK(exe.phdr == base + 0x40);
    REQUIRE(exe.segments.size() == 2);
    CHECK(exe.segments[0].start == base);
    CHECK(exe.segments[1].start == base + 0x3000);
    CHECK(exe.brk_start == base + 0x6000);
    check_invariants(exe, bytes);

    SECTION("another base") {
        ElfLoadOptions options;
        options.memory_limit = kGuestRam;
        options.pie_base = 0x10000000;
        const auto moved = parse_elf_executable(bytes, options, "test.elf");
        CHECK(moved.load_bias == 0x10000000);
        CHECK(moved.entry == 0x10001000);
    }
    SECTION("the base keeps the largest p_align, as Linux's maximum_alignment") {
        elf.ph[1].p_align = 0x200000;
        const auto aligned = parse(elf.bytes());
        CHECK(aligned.load_bias == (base & ~std::uint64_t{0x1fffff}));
        CHECK(aligned.segments[0].start % 0x200000 == 0);
    }
    SECTION("linked above 0: the lowest page lands on the base") {
        elf.ph[0].p_vaddr = 0x200000;
        elf.ph[1].p_vaddr = 0x203010;
        elf.eh.e_entry = 0x201000;
        const auto high = parse(elf.bytes());
        CHECK(high.segments[0].start == base);
        CHECK(high.load_bias == base - 0x200000);
        CHECK(high.entry == base + 0x1000);
    }
    SECTION("a base that is not page-aligned is the caller's error") {
        ElfLoadOptions options;
        options.memory_limit = kGuestRam;
        options.pie_base = 0x10000010;
        REQUIRE_THROWS_AS(parse_elf_executable(bytes, options, "test.elf"), ConfigError);
    }
}

TEST_CASE("elf: a dynamically linked executable names its interpreter", "[program][elf]") {
    const std::string ld = "/lib64/ld-linux-x86-64.so.2";
    SECTION("ET_EXEC: at its link addresses") {
        TestElf elf;
        elf.add_interp(ld + '\0');
        const auto bytes = elf.bytes();
        const auto exe = parse(bytes);
        CHECK(exe.kind == ElfExecutable::Kind::et_exec);
        CHECK(exe.interpreter == ld);
        CHECK(exe.load_bias == 0);
        CHECK(exe.entry == 0x401000);
        CHECK(exe.phnum == 4);
        check_invariants(exe, bytes);
    }
    SECTION("a PIE: at ELF_ET_DYN_BASE, as Linux puts one with an interpreter") {
        auto elf = TestElf::pie();
        elf.add_interp(ld + '\0', 0x800);
        const auto bytes = elf.bytes();
        const auto exe = parse(bytes);
        CHECK(exe.kind == ElfExecutable::Kind::et_dyn);
        CHECK(exe.interpreter == ld);
        CHECK(exe.load_bias == ElfLoadOptions::kDefaultPieBase);
        CHECK(exe.entry == ElfLoadOptions::kDefaultPieBase + 0x1000);
        check_invariants(exe, bytes);
    }
    SECTION("the path ends at its first NUL, as Linux opens it") {
        TestElf elf;
        elf.add_interp(std::string("/lib\0/ld.so\0", 12));
        CHECK(parse(elf.bytes()).interpreter == "/lib");
    }
    SECTION("a static executable names none") {
        CHECK(parse(TestElf().bytes()).interpreter.empty());
        CHECK(parse(TestElf::pie().bytes()).interpreter.empty());
    }
}

TEST_CASE("elf: an interpreter is placed at the base given, its own PT_INTERP ignored",
          "[program][elf]") {
    auto elf = TestElf::pie();
    elf.add_interp(std::string("x", 1)); // not even a path: never read
    ElfLoadOptions options;
    options.memory_limit = kGuestRam;
    options.interpreter = true;
    options.pie_base = 0x7ffff7fc0000;
    const auto bytes = elf.bytes();
    const auto interp = parse_elf_executable(bytes, options, "ld.so");
    CHECK(interp.kind == ElfExecutable::Kind::et_dyn);
    CHECK(interp.interpreter.empty());
    CHECK(interp.load_bias == 0x7ffff7fc0000);
    CHECK(interp.entry == 0x7ffff7fc1000);
    CHECK(interp.span() == 0x6000);
    CHECK(interp.align == kPage);
    check_invariants(interp, bytes);

    SECTION("program headers outside every segment are no error for an interpreter") {
        elf.ph.erase(elf.ph.begin()); // (a program's PT_INTERP "x" would be refused first)
        elf.eh.e_phoff = 0x1800;      // in the file, past the text's p_filesz
        const auto moved = elf.bytes();
        CHECK(parse_elf_executable(moved, options, "ld.so").phdr == 0);
        CHECK_THAT(refusal(moved), Contains("are in no loaded segment"));
    }
    SECTION("the largest p_align is reported and kept") {
        elf.ph[2].p_align = 0x200000; // ph[0] is PT_INTERP now
        const auto aligned = parse_elf_executable(elf.bytes(), options, "ld.so");
        CHECK(aligned.align == 0x200000);
        CHECK(aligned.load_bias == 0x7ffff7e00000);
    }
}

TEST_CASE("elf: PT_PHDR, PT_GNU_STACK, empty and unsorted PT_LOADs", "[program][elf]") {
    TestElf elf;
    SECTION("PT_PHDR gives AT_PHDR when present") {
        Elf64_Phdr phdr{};
        phdr.p_type = PT_PHDR;
        phdr.p_vaddr = 0x400800;
        elf.ph.insert(elf.ph.begin(), phdr);
        CHECK(parse(elf.bytes()).phdr == 0x400800);
    }
    SECTION("an executable stack") {
        elf.ph[2].p_flags |= PF_X;
        CHECK(parse(elf.bytes()).stack_executable);
    }
    SECTION("an empty PT_LOAD maps nothing") {
        elf.ph.push_back(TestElf::load(0, 0x900000, 0, 0, PF_R));
        CHECK(parse(elf.bytes()).segments.size() == 2);
    }
    SECTION("PT_LOADs out of order are sorted") {
        std::swap(elf.ph[0], elf.ph[1]);
        const auto exe = parse(elf.bytes());
        REQUIRE(exe.segments.size() == 2);
        CHECK(exe.segments[0].start == 0x400000);
        CHECK(exe.segments[1].start == 0x403000);
    }
    SECTION("a bss-only segment copies nothing") {
        elf.ph.push_back(TestElf::load(0x3000, 0x500000, 0, 0x1000, PF_R | PF_W));
        const auto exe = parse(elf.bytes());
        REQUIRE(exe.segments.size() == 3);
        CHECK(exe.segments[2].file_size == 0);
        CHECK(exe.segments[2].zero_start() == 0x500000);
        CHECK(exe.brk_start == 0x501000);
    }
}

TEST_CASE("elf: every malformed or unsupported executable is refused with its reason",
          "[program][elf]") {
    TestElf elf;
    auto bytes = [&] { return elf.bytes(); };

    SECTION("not an ELF file") {
        std::vector<std::byte> text(200, std::byte{'a'});
        CHECK_THAT(refusal(text), Contains("not an ELF file"));
        CHECK_THAT(refusal({}), Contains("not an ELF file"));
    }
    SECTION("truncated ELF header") {
        auto b = bytes();
        b.resize(40);
        CHECK_THAT(refusal(b), Contains("truncated ELF header (40 bytes"));
        b.resize(10); // shorter than e_ident
        CHECK_THAT(refusal(b), Contains("truncated ELF header"));
    }
    SECTION("truncated program headers") {
        elf.file_size = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + 10;
        CHECK_THAT(refusal(bytes()), Contains("truncated: the program header table"));
        elf.file_size = 0x2110;
        elf.eh.e_phoff = ~std::uint64_t{0} - 8; // wraps
        CHECK_THAT(refusal(bytes()), Contains("truncated: the program header table"));
    }
    SECTION("truncated segment") {
        elf.ph[1].p_filesz = 0x200; // past the file's 0x2110 bytes
        CHECK_THAT(refusal(bytes()), Contains("truncated: segment 1's file bytes"));
        elf.ph[1].p_filesz = 0x100;
        elf.ph[1].p_offset = ~std::uint64_t{0} - 0xf; // wraps, same page offset
        elf.ph[1].p_vaddr = 0x403ff0;
        CHECK_THAT(refusal(bytes()), Contains("truncated: segment 1's file bytes"));
    }
    SECTION("ELFCLASS32") {
        elf.eh.e_ident[EI_CLASS] = ELFCLASS32;
        CHECK_THAT(refusal(bytes()), Contains("32-bit ELF (ELFCLASS32) is not supported"));
        elf.eh.e_ident[EI_CLASS] = 7;
        CHECK_THAT(refusal(bytes()), Contains("unknown ELF class 7"));
    }
    SECTION("not x86-64") {
        elf.eh.e_machine = EM_AARCH64;
        CHECK_THAT(refusal(bytes()), Contains("e_machine 183 is not x86-64"));
    }
    SECTION("not little-endian") {
        elf.eh.e_ident[EI_DATA] = ELFDATA2MSB;
        CHECK_THAT(refusal(bytes()), Contains("not little-endian"));
    }
    SECTION("neither ET_EXEC nor ET_DYN") {
        elf.eh.e_type = ET_REL;
        CHECK_THAT(refusal(bytes()),
                   Contains("e_type 1 is not an executable (ET_EXEC or ET_DYN): a relocatable"));
        elf.eh.e_type = ET_CORE;
        CHECK_THAT(refusal(bytes()), Contains("a core dump"));
    }
    SECTION("a PT_INTERP that is not a NUL-terminated, non-empty path") {
        elf.add_interp(std::string("/lib/ld.so", 10)); // no NUL
        CHECK_THAT(refusal(bytes()), Contains("PT_INTERP (segment 0) does not end with a NUL"));
        elf = TestElf();
        elf.add_interp(std::string(8, '\0'));
        CHECK_THAT(refusal(bytes()), Contains("PT_INTERP (segment 0) is an empty path"));
        elf = TestElf();
        elf.add_interp(std::string(1, '\0'));
        CHECK_THAT(refusal(bytes()), Contains("PT_INTERP (segment 0) of 1 bytes: not a path"));
        elf = TestElf();
        elf.add_interp(std::string(5000, 'a') + '\0', 0);
        elf.file_size = 0x3000;
        CHECK_THAT(refusal(bytes()), Contains("of 5001 bytes: not a path of 1 to 4095 bytes"));
        elf = TestElf();
        elf.add_interp(std::string("/ld.so\0", 7), 0x2110 - 3);
        CHECK_THAT(refusal(bytes()), Contains("truncated: PT_INTERP's bytes [0x210d, +0x7)"));
        elf = TestElf();
        elf.add_interp(std::string("/ld.so\0", 7));
        elf.ph.push_back(elf.ph.front());
        CHECK_THAT(refusal(bytes()), Contains("more than one PT_INTERP (segment 4)"));
    }
    SECTION("an interpreter that is not ET_DYN") {
        ElfLoadOptions options;
        options.memory_limit = kGuestRam;
        options.interpreter = true;
        REQUIRE_THROWS_WITH(
            parse_elf_executable(bytes(), options, "ld.so"),
            "ld.so: e_type 2 is not ET_DYN: an interpreter must be a shared object");
    }
    SECTION("a segment below 64 KiB") {
        elf.ph[0].p_vaddr = 0x8000;
        elf.eh.e_entry = 0x9000;
        CHECK_THAT(refusal(bytes()), Contains("segment 0: address 0x8000 lies below 64 KiB"));
        // A static-pie whose base is 0 is placed there too.
        elf = TestElf::pie();
        ElfLoadOptions options;
        options.memory_limit = kGuestRam;
        options.pie_base = 0;
        const auto b = bytes();
        REQUIRE_THROWS_WITH(parse_elf_executable(b, options, "test.elf"),
                            Contains("lies below 64 KiB"));
    }
    SECTION("overlapping segments") {
        elf.ph[1].p_vaddr = 0x401010;
        CHECK_THAT(refusal(bytes()), Contains("segments 0 and 1 overlap"));
    }
    SECTION("segments sharing a page") {
        elf.ph[1].p_vaddr = 0x401110; // text ends at 0x401100, in the same page
        elf.ph[1].p_offset = 0x1110;
        CHECK_THAT(refusal(bytes()), Contains("segments 0 and 1 share the page at 0x401000"));
    }
    SECTION("beyond the 47-bit user address space") {
        elf.ph[1].p_vaddr = 0x800000000010;
        CHECK_THAT(refusal(bytes()), Contains("segment 1: [0x800000000010, +0x2000) lies above "
                                              "the 47-bit user address space"));
        elf.ph[1].p_vaddr = 0x7ffffffff010; // the guard page Linux keeps
        CHECK_THAT(refusal(bytes()), Contains("lies above the 47-bit"));
        elf.ph[1].p_vaddr = 0xffffffff80000010; // kernel half
        CHECK_THAT(refusal(bytes()), Contains("lies above the 47-bit"));
        elf.ph[1].p_vaddr = 0xfffffffffffff010; // the end wraps
        CHECK_THAT(refusal(bytes()), Contains("segment 1: address range"));
        CHECK_THAT(refusal(bytes()), Contains("wraps around"));
        // A static-pie whose base pushes it past the end.
        elf = TestElf::pie();
        ElfLoadOptions options;
        options.memory_limit = kGuestRam;
        options.pie_base = ElfExecutable::kUserEnd - 0x4000;
        const auto b = bytes();
        REQUIRE_THROWS_WITH(parse_elf_executable(b, options, "test.elf"),
                            Contains("segment 1") && Contains("lies above the 47-bit"));
    }
    SECTION("p_filesz larger than p_memsz") {
        elf.ph[1].p_memsz = 0x80;
        CHECK_THAT(refusal(bytes()),
                   Contains("segment 1: p_filesz 0x100 is larger than p_memsz 0x80"));
    }
    SECTION("p_offset and p_vaddr not congruent modulo the page size") {
        elf.ph[1].p_vaddr = 0x403020;
        CHECK_THAT(refusal(bytes()), Contains("segment 1: p_offset 0x2010 and p_vaddr 0x403020 "
                                              "differ modulo the page size (4096)"));
    }
    SECTION("more memory than guest RAM") {
        CHECK_THAT(refusal(bytes(), 0x4000),
                   Contains("its segments need 20480 bytes of memory, more than the 16384 bytes"));
        CHECK_NOTHROW(parse(bytes(), 0x5000));
        elf.ph[1].p_memsz = 0x7000000000; // 448 GiB of bss
        CHECK_THAT(refusal(bytes()), Contains("more than the"));
    }
    SECTION("no PT_LOAD") {
        elf.ph.erase(elf.ph.begin(), elf.ph.begin() + 2);
        CHECK_THAT(refusal(bytes()), Contains("no loadable (PT_LOAD) segment"));
        elf.ph.push_back(TestElf::load(0, 0x400000, 0, 0, PF_R | PF_X)); // empty
        CHECK_THAT(refusal(bytes()), Contains("no loadable (PT_LOAD) segment"));
    }
    SECTION("entry point outside every executable segment") {
        elf.eh.e_entry = 0x403020; // in the data segment
        CHECK_THAT(refusal(bytes()),
                   Contains("entry point 0x403020 is outside every executable segment"));
        elf.eh.e_entry = 0x402000; // between the segments
        CHECK_THAT(refusal(bytes()), Contains("entry point 0x402000 is outside"));
        elf.eh.e_entry = 0x401100; // in text's page, past its bytes
        CHECK_THAT(refusal(bytes()), Contains("entry point 0x401100 is outside"));
    }
    SECTION("program headers that are not loaded") {
        elf.ph[0].p_offset = 0x1000;
        elf.ph[0].p_vaddr = 0x401000;
        elf.ph[0].p_filesz = elf.ph[0].p_memsz = 0x100;
        CHECK_THAT(refusal(bytes()),
                   Contains("the program headers (file offset 0x40) are in no loaded segment"));
        Elf64_Phdr phdr{};
        phdr.p_type = PT_PHDR;
        phdr.p_vaddr = 0x300000;
        elf.ph.push_back(phdr);
        CHECK_THAT(refusal(bytes()),
                   Contains("PT_PHDR at 0x300000 is not inside a loaded segment"));
    }
    SECTION("program header entries of the wrong size, or none") {
        elf.eh.e_phentsize = 32;
        CHECK_THAT(refusal(bytes()), Contains("e_phentsize 32 is not sizeof(Elf64_Phdr), 56"));
        elf.eh.e_phentsize = sizeof(Elf64_Phdr);
        elf.ph.clear();
        CHECK_THAT(refusal(bytes()), Contains("no program headers"));
    }
}

TEST_CASE("elf: the static executables built for the tests parse as their headers say",
          "[program][elf]") {
    for (const char* path : {MINIVMM_ELF_STATIC_PATH, MINIVMM_ELF_STATIC_PIE_PATH}) {
        INFO(path);
        const auto file = read_file(path);
        const Elf64_Ehdr eh = header_of(file);
        ElfLoadOptions options;
        options.memory_limit = kGuestRam;
        const ElfExecutable exe = parse_elf_executable(file, options, path);
        check_invariants(exe, file);
        CHECK(exe.phnum == eh.e_phnum);
        CHECK(exe.entry == eh.e_entry + exe.load_bias);
        if (eh.e_type == ET_EXEC) {
            CHECK(exe.kind == ElfExecutable::Kind::et_exec);
            CHECK(exe.load_bias == 0);
        } else {
            CHECK(exe.kind == ElfExecutable::Kind::et_dyn);
            CHECK(exe.segments[0].start == ElfLoadOptions::kDefaultPieBase);
        }
        // The first segment begins with the ELF header itself.
        CHECK(exe.segments[0].file_offset == 0);
        CHECK_FALSE(exe.stack_executable);
    }
    CHECK(header_of(read_file(MINIVMM_ELF_STATIC_PATH)).e_type == ET_EXEC);
    CHECK(header_of(read_file(MINIVMM_ELF_STATIC_PIE_PATH)).e_type == ET_DYN);
}

TEST_CASE("elf: the host's /bin/busybox (busybox-static) parses", "[program][elf]") {
    if (::access("/bin/busybox", R_OK) != 0) {
        minivmm::test::skip_test("no /bin/busybox (Debian package busybox-static)");
        return;
    }
    const auto file = read_file("/bin/busybox");
    const Elf64_Ehdr eh = header_of(file);
    ElfLoadOptions options;
    options.memory_limit = kGuestRam;
    const ElfExecutable exe = parse_elf_executable(file, options, "/bin/busybox");
    check_invariants(exe, file);
    CHECK(exe.phnum == eh.e_phnum);
    CHECK(exe.entry == eh.e_entry + exe.load_bias);
    // Its text, read-only data and data segments at least.
    CHECK(exe.segments.size() >= 3);
    CHECK(std::any_of(exe.segments.begin(), exe.segments.end(),
                      [](const ElfSegment& s) { return s.writable && s.zero_start() < s.end; }));
}

namespace {

constexpr std::uint64_t kStackTop = 0x7ffffffde000;

InitialStackInputs stack_inputs() {
    InitialStackInputs in;
    in.stack_top = kStackTop;
    in.argv = {"/bin/prog", "-x", "hello world"};
    in.envp = {"A=1", "PATH=/bin:/usr/bin"};
    in.execfn = "/bin/prog";
    for (std::size_t i = 0; i < in.random.size(); ++i)
        in.random[i] = static_cast<std::byte>(0xa0 + i);
    in.phdr = 0x400040;
    in.phent = 56;
    in.phnum = 10;
    in.entry = 0x401000;
    in.hwcap = 0x178bfbff;
    in.hwcap2 = 2;
    in.uid = 1000;
    in.euid = 1001;
    in.gid = 100;
    in.egid = 101;
    in.sysinfo_ehdr = 0x7ffff7ffd000;
    in.minsigstksz = 0xd30;
    return in;
}

// The stack read back as a program would, from rsp up, without the
// builder's own record of where it put things.
struct DecodedStack {
    std::uint64_t argc = 0;
    std::vector<std::string> argv, envp;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> auxv; // without AT_NULL
    std::uint64_t auxv_end = 0;                                // past AT_NULL
};

class StackReader {
  public:
    explicit StackReader(const InitialStack& s) : s_(s), rsp_(s.stack_top - s.bytes.size()) {}

    std::uint64_t word(std::uint64_t at) const {
        REQUIRE(at >= rsp_);
        REQUIRE(at + 8 <= s_.stack_top);
        std::uint64_t v;
        std::memcpy(&v, s_.bytes.data() + (at - rsp_), 8);
        return v;
    }
    // A NUL-terminated string wholly inside the buffer.
    std::string string(std::uint64_t at) const {
        REQUIRE(at >= rsp_);
        REQUIRE(at < s_.stack_top);
        const auto* begin = reinterpret_cast<const char*>(s_.bytes.data()) + (at - rsp_);
        const auto* end = reinterpret_cast<const char*>(s_.bytes.data()) + s_.bytes.size();
        const auto* nul = std::find(begin, end, '\0');
        REQUIRE(nul != end);
        return std::string(begin, nul);
    }
    std::uint64_t rsp() const { return rsp_; }

    DecodedStack decode() const {
        DecodedStack d;
        std::uint64_t at = rsp_;
        d.argc = word(at);
        at += 8;
        for (std::uint64_t p; (p = word(at)) != 0; at += 8)
            d.argv.push_back(string(p));
        at += 8;
        for (std::uint64_t p; (p = word(at)) != 0; at += 8)
            d.envp.push_back(string(p));
        at += 8;
        for (std::uint64_t key; (key = word(at)) != AT_NULL; at += 16)
            d.auxv.emplace_back(key, word(at + 8));
        d.auxv_end = at + 16;
        return d;
    }

  private:
    const InitialStack& s_;
    std::uint64_t rsp_;
};

std::map<std::uint64_t, std::uint64_t> auxv_map(const DecodedStack& d) {
    std::map<std::uint64_t, std::uint64_t> m;
    for (const auto& [k, v] : d.auxv) {
        INFO("auxv key " << k);
        CHECK(m.count(k) == 0); // each key once
        m[k] = v;
    }
    return m;
}

} // namespace

TEST_CASE("initial stack: argc, argv, envp and the auxiliary vector decode back",
          "[program][elf]") {
    const InitialStackInputs in = stack_inputs();
    const InitialStack s = build_initial_stack(in);
    const StackReader r(s);
    CHECK(s.stack_top == kStackTop);
    CHECK(s.rsp == r.rsp());
    CHECK(s.rsp % 16 == 0); // the psABI's alignment at the entry point
    const DecodedStack d = r.decode();
    CHECK(d.argc == 3);
    CHECK(d.argv == in.argv);
    CHECK(d.envp == in.envp);

    const auto aux = auxv_map(d);
    const std::map<std::uint64_t, std::uint64_t> expected_values = {
        {AT_SYSINFO_EHDR, 0x7ffff7ffd000},
        {AT_MINSIGSTKSZ, 0xd30},
        {AT_HWCAP, 0x178bfbff},
        {AT_PAGESZ, 4096},
        {AT_CLKTCK, 100},
        {AT_PHDR, 0x400040},
        {AT_PHENT, 56},
        {AT_PHNUM, 10},
        {AT_BASE, 0},
        {AT_FLAGS, 0},
        {AT_ENTRY, 0x401000},
        {AT_UID, 1000},
        {AT_EUID, 1001},
        {AT_GID, 100},
        {AT_EGID, 101},
        {AT_SECURE, 0},
        {AT_HWCAP2, 2},
    };
    for (const auto& [key, value] : expected_values) {
        INFO("auxv key " << key);
        REQUIRE(aux.count(key) == 1);
        CHECK(aux.at(key) == value);
    }
    // And the three that point into the stack.
    REQUIRE(aux.size() == expected_values.size() + 3);
    CHECK(r.string(aux.at(AT_PLATFORM)) == "x86_64");
    CHECK(r.string(aux.at(AT_EXECFN)) == "/bin/prog");
    const std::uint64_t random = aux.at(AT_RANDOM);
    REQUIRE(random >= d.auxv_end);
    REQUIRE(random + 16 <= s.stack_top);
    CHECK(std::memcmp(s.bytes.data() + (random - s.rsp), in.random.data(), 16) == 0);
    // Linux's order: ARCH_DLINFO first, then create_elf_tables's entries.
    const std::vector<std::uint64_t> order = {
        AT_SYSINFO_EHDR, AT_MINSIGSTKSZ, AT_HWCAP,  AT_PAGESZ, AT_CLKTCK, AT_PHDR,    AT_PHENT,
        AT_PHNUM,        AT_BASE,        AT_FLAGS,  AT_ENTRY,  AT_UID,    AT_EUID,    AT_GID,
        AT_EGID,         AT_SECURE,      AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_PLATFORM};
    std::vector<std::uint64_t> keys;
    for (const auto& kv : d.auxv)
        keys.push_back(kv.first);
    CHECK(keys == order);
    CHECK(d.auxv == s.auxv_entries);

    // The builder's record of where things are agrees with what decoding found.
    CHECK(s.argv == s.rsp + 8);
    CHECK(s.envp == s.argv + 4 * 8);
    CHECK(s.auxv == s.envp + 3 * 8);
    CHECK(s.random == random);
    CHECK(s.platform == aux.at(AT_PLATFORM));
    CHECK(s.execfn == aux.at(AT_EXECFN));
    CHECK(s.strings == r.word(s.argv));
    // Strings: argv's then envp's then the file name, ending 8 bytes below the top.
    CHECK(r.word(s.argv) > random);
    CHECK(s.execfn + in.execfn.size() + 1 == s.stack_top - 8);
    CHECK(r.word(s.stack_top - 8) == 0);
}

TEST_CASE("initial stack: rsp is 16-byte aligned for every count and length", "[program][elf]") {
    for (std::size_t argc = 0; argc < 5; ++argc) {
        for (std::size_t envc = 0; envc < 4; ++envc) {
            for (std::size_t len = 0; len < 17; ++len) {
                InitialStackInputs in = stack_inputs();
                in.argv.assign(argc, std::string(len, 'a'));
                in.envp.assign(envc, std::string(len + 3, 'e'));
                in.execfn = std::string(len + 1, 'f');
                if (len % 2) in.sysinfo_ehdr = 0; // one pair fewer
                const InitialStack s = build_initial_stack(in);
                INFO("argc " << argc << " envc " << envc << " len " << len);
                CHECK(s.rsp % 16 == 0);
                CHECK(s.bytes.size() == s.stack_top - s.rsp);
                const DecodedStack d = StackReader(s).decode();
                // No arguments: Linux 5.18+ passes an empty argv[0].
                CHECK(d.argc == std::max<std::size_t>(argc, 1));
                CHECK(d.argv.size() == d.argc);
                CHECK(d.envp == in.envp);
                CHECK(d.auxv_end <= s.random);
                CHECK(s.random + 16 == s.platform);
                CHECK(s.platform + 7 <= s.strings);
                CHECK(s.strings - (s.platform + 7) < 16); // only the alignment between
            }
        }
    }
}

TEST_CASE("initial stack: no AT_SYSINFO_EHDR without a vDSO, and an empty argv", "[program][elf]") {
    InitialStackInputs in = stack_inputs();
    in.sysinfo_ehdr = 0;
    in.argv.clear();
    const InitialStack s = build_initial_stack(in);
    const DecodedStack d = StackReader(s).decode();
    CHECK(d.argc == 1);
    CHECK(d.argv == std::vector<std::string>{""});
    const auto aux = auxv_map(d);
    CHECK(aux.count(AT_SYSINFO_EHDR) == 0);
    CHECK(aux.count(AT_MINSIGSTKSZ) == 1);
    CHECK(d.auxv.front().first == AT_MINSIGSTKSZ);
}

TEST_CASE("initial stack: argument list too long, NUL bytes, a bad stack top", "[program][elf]") {
    InitialStackInputs in = stack_inputs();
    SECTION("strings and pointers over the limit") {
        in.max_arg_bytes = 4096;
        in.argv = {std::string(2000, 'a')};
        in.envp = {std::string(2000, 'b')};
        in.execfn = "/p";
        // 2001 + 2001 + 3 bytes of strings and 16 of pointers: 4021.
        CHECK_NOTHROW(build_initial_stack(in));
        in.envp[0].append(75, 'b'); // 4096
        CHECK_NOTHROW(build_initial_stack(in));
        in.envp[0].push_back('c'); // 4097
        REQUIRE_THROWS_AS(build_initial_stack(in), ConfigError);
        REQUIRE_THROWS_WITH(build_initial_stack(in), StartsWith("argument list too long"));
        in.envp[0].resize(100);
        in.envp.resize(300, "x"); // pointers count too
        REQUIRE_THROWS_WITH(build_initial_stack(in), StartsWith("argument list too long"));
    }
    SECTION("the default limit: 128 KiB") {
        in.argv.push_back(std::string(128 * 1024, 'a'));
        REQUIRE_THROWS_WITH(build_initial_stack(in), StartsWith("argument list too long"));
    }
    SECTION("a NUL inside a string") {
        in.envp[1] = std::string("A=\0B", 4);
        REQUIRE_THROWS_WITH(build_initial_stack(in), Contains("envp[1] contains a NUL byte"));
        in.envp[1] = "ok";
        in.argv[0] = std::string("\0", 1);
        REQUIRE_THROWS_WITH(build_initial_stack(in), Contains("argv[0] contains a NUL byte"));
    }
    SECTION("a stack top that is misaligned or too low") {
        in.stack_top = kStackTop + 8;
        REQUIRE_THROWS_WITH(build_initial_stack(in), Contains("not 16-byte aligned"));
        in.stack_top = 0x100;
        REQUIRE_THROWS_WITH(build_initial_stack(in), Contains("too low for the initial stack"));
        in.stack_top = 0;
        REQUIRE_THROWS_WITH(build_initial_stack(in), Contains("too low for the initial stack"));
    }
}

namespace {

// What stack_probe.c printed: offsets below the stack's top.
struct NativeStack {
    std::uint64_t rsp = 0, auxv_at = 0, execfn = 0, platform = 0, random = 0;
    std::vector<std::uint64_t> argv, envp;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> auxv;
};

// Runs `path` with `argv` and `envp`, ASLR's random stack offset off, and
// reads its report; nullopt when personality() is not allowed here.
std::optional<NativeStack> run_probe(const std::string& path, const std::vector<std::string>& argv,
                                     const std::vector<std::string>& envp) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    std::vector<char*> args, env;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const auto& e : envp)
        env.push_back(const_cast<char*>(e.c_str()));
    env.push_back(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::close(out[0]);
        ::close(out[1]);
        if (::personality(ADDR_NO_RANDOMIZE) == -1) ::_exit(126);
        ::execve(path.c_str(), args.data(), env.data());
        ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    char buf[4096];
    for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;)
        text.append(buf, static_cast<std::size_t>(n));
    ::close(out[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    if (WEXITSTATUS(status) == 126) return std::nullopt;
    REQUIRE(WEXITSTATUS(status) == 0);

    NativeStack n;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream in(line);
        std::string what;
        std::uint64_t v = 0;
        in >> what >> v;
        if (what == "rsp") n.rsp = v;
        if (what == "auxv_at") n.auxv_at = v;
        if (what == "execfn") n.execfn = v;
        if (what == "platform") n.platform = v;
        if (what == "random") n.random = v;
        if (what == "argv") n.argv.push_back(v);
        if (what == "envp") n.envp.push_back(v);
        if (what == "auxv") {
            std::string value;
            in >> value;
            n.auxv.emplace_back(v, std::stoull(value, nullptr, 0));
        }
    }
    return n;
}

} // namespace

TEST_CASE("initial stack: the same layout as Linux gives the same static program",
          "[program][elf]") {
    for (const char* path : {MINIVMM_ELF_STATIC_PATH, MINIVMM_ELF_STATIC_PIE_PATH}) {
        INFO(path);
        const std::vector<std::string> argv = {path, "one", "two words", "", "x"};
        const std::vector<std::string> envp = {"A=1", "LONGER_NAME=some value", "E="};
        const auto native = run_probe(path, argv, envp);
        if (!native) {
            minivmm::test::skip_test("personality(ADDR_NO_RANDOMIZE) is not allowed here");
            return;
        }
        const auto file = read_file(path);
        ElfLoadOptions options;
        options.memory_limit = kGuestRam;
        const ElfExecutable exe = parse_elf_executable(file, options, path);

        InitialStackInputs in = stack_inputs();
        in.argv = argv;
        in.envp = envp;
        in.execfn = path;
        in.phdr = exe.phdr;
        in.phent = exe.phent;
        in.phnum = exe.phnum;
        in.entry = exe.entry;
        const InitialStack s = build_initial_stack(in);
        const std::uint64_t top = s.stack_top;
        const StackReader r(s);

        // Every string where Linux put it.
        REQUIRE(native->argv.size() == argv.size());
        for (std::size_t i = 0; i < argv.size(); ++i)
            CHECK(top - r.word(s.argv + 8 * i) == native->argv[i]);
        REQUIRE(native->envp.size() == envp.size());
        for (std::size_t i = 0; i < envp.size(); ++i)
            CHECK(top - r.word(s.envp + 8 * i) == native->envp[i]);
        CHECK(top - s.execfn == native->execfn);
        CHECK(top - s.platform == native->platform);
        CHECK(top - s.random == native->random);

        // Our auxv keys in Linux's order (it may have more: AT_RSEQ_*, ...).
        std::size_t k = 0;
        for (const auto& [key, value] : native->auxv)
            if (k < s.auxv_entries.size() && s.auxv_entries[k].first == key) ++k;
        CHECK(k == s.auxv_entries.size());
        std::map<std::uint64_t, std::uint64_t> linux_aux(native->auxv.begin(), native->auxv.end());
        const std::uint64_t same[] = {AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_CLKTCK,
                                      AT_FLAGS, AT_BASE,  AT_SECURE};
        for (const std::uint64_t key : same) {
            INFO("auxv key " << key);
            const auto ours = std::find_if(s.auxv_entries.begin(), s.auxv_entries.end(),
                                           [&](const auto& kv) { return kv.first == key; });
            REQUIRE(ours != s.auxv_entries.end());
            CHECK(linux_aux.at(key) == ours->second);
        }
        if (exe.kind == ElfExecutable::Kind::et_exec) {
            // Not moved: the very addresses.
            CHECK(linux_aux.at(AT_PHDR) == exe.phdr);
            CHECK(linux_aux.at(AT_ENTRY) == exe.entry);
        } else {
            // Linux chose its own base: the same distances from it.
            CHECK(linux_aux.at(AT_PHDR) - linux_aux.at(AT_ENTRY) == exe.phdr - exe.entry);
        }

        // rsp by create_elf_tables's rounding over Linux's own auxv length;
        // with as many entries, ours is the same.
        const std::uint64_t items = 1 + (argv.size() + 1) + (envp.size() + 1);
        const std::uint64_t words = 2 * (native->auxv.size() + 1) + items;
        CHECK(top - ((s.random - 8 * words) & ~std::uint64_t{15}) == native->rsp);
        CHECK(native->rsp - native->auxv_at == 8 * items);
        if (native->auxv.size() == s.auxv_entries.size()) CHECK(top - s.rsp == native->rsp);
        CHECK(top - s.auxv == top - s.rsp - 8 * items);
    }
}

TEST_CASE("elf: a dynamically linked executable (this test program) and its interpreter",
          "[program][elf]") {
    const auto file = read_file("/proc/self/exe");
    ElfLoadOptions options;
    options.memory_limit = 4ull << 30; // a debug build with sanitizers is large
    const ElfExecutable exe = parse_elf_executable(file, options, "minivmm_unit_tests");
    check_invariants(exe, file);
    REQUIRE_FALSE(exe.interpreter.empty());
    CHECK(exe.interpreter.front() == '/');
    // The host's own dynamic loader, as the guest's loader will read it.
    const auto ld = read_file(exe.interpreter);
    options.interpreter = true;
    options.pie_base = 0x7ffff7fc0000;
    const ElfExecutable interp = parse_elf_executable(ld, options, exe.interpreter);
    CHECK(interp.kind == ElfExecutable::Kind::et_dyn);
    CHECK(interp.interpreter.empty());
    CHECK(interp.segments.front().start == 0x7ffff7fc0000);
    CHECK(interp.entry == header_of(ld).e_entry + interp.load_bias);
    // As a program of its own, ld.so is a static-pie (no PT_INTERP) too.
    options.interpreter = false;
    CHECK(parse_elf_executable(ld, options, exe.interpreter).interpreter.empty());
}
