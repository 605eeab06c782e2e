// GuestImage::parse / load_file: flat images, ELF64 images and every way an
// ELF can be malformed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>

#include "boot/builders.hpp"
#include "minivmm/boot.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/error.hpp"
#include "minivmm/guest_image.hpp"
#include "test_util.hpp"

using Catch::Matchers::Contains;
using minivmm::GuestImage;
using minivmm::ImageError;
using minivmm::test::ElfBuilder;
using minivmm::test::guest_path;
using minivmm::test::TempFile;
using minivmm::test::to_bytes;

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ImageError& e) {
        return e.what();
    }
    FAIL("no ImageError thrown");
    return {};
}

// Parses and expects an ImageError that names the image and contains `needle`.
void require_elf_error(const ElfBuilder& elf, const std::string& needle) {
    auto bytes = elf.bytes();
    auto what = error_of([&] { GuestImage::parse(bytes, "test.elf"); });
    CHECK_THAT(what, Contains("test.elf") && Contains("malformed ELF") && Contains(needle));
}

} // namespace

TEST_CASE("flat image: one executable segment at 1 MiB, entered at its first byte", "[image]") {
    auto bytes = to_bytes("\x90\x90\xf4 not an ELF file");
    auto image = GuestImage::parse(bytes);
    CHECK(image.format == GuestImage::Format::flat);
    CHECK(image.entry == 0x100000);
    REQUIRE(image.segments.size() == 1);
    const auto& seg = image.segments[0];
    CHECK(seg.gpa == 0x100000);
    CHECK(seg.mem_size == bytes.size());
    CHECK(seg.data == bytes);
    CHECK(seg.executable);
    CHECK(image.end() == 0x100000 + bytes.size());
}

TEST_CASE("flat image: short inputs that start like ELF magic are flat", "[image]") {
    auto bytes = to_bytes(std::string{'\x7f', 'E', 'L'});
    auto image = GuestImage::parse(bytes);
    CHECK(image.format == GuestImage::Format::flat);
    CHECK(image.segments.at(0).mem_size == 3);
}

TEST_CASE("empty image is rejected", "[image]") {
    std::vector<std::byte> empty;
    REQUIRE_THROWS_WITH(GuestImage::parse(empty, "nothing"),
                        Contains("empty") && Contains("nothing"));
}

TEST_CASE("valid minimal ELF64 parses into sorted segments", "[image][elf]") {
    ElfBuilder elf;
    auto bytes = elf.bytes();
    auto image = GuestImage::parse(bytes, "ok.elf");
    CHECK(image.format == GuestImage::Format::elf64);
    CHECK(image.entry == ElfBuilder::kTextAddr);
    REQUIRE(image.segments.size() == 2);

    const auto& text = image.segments[0];
    CHECK(text.gpa == ElfBuilder::kTextAddr);
    CHECK(text.mem_size == ElfBuilder::kTextSize);
    CHECK(text.executable);
    REQUIRE(text.data.size() == ElfBuilder::kTextSize);
    CHECK(std::equal(text.data.begin(), text.data.end(), bytes.begin() + ElfBuilder::kTextOffset));

    const auto& data = image.segments[1];
    CHECK(data.gpa == ElfBuilder::kDataAddr);
    CHECK(data.mem_size == ElfBuilder::kDataMemSize);
    CHECK_FALSE(data.executable);
    REQUIRE(data.data.size() == ElfBuilder::kDataFileSize);
    CHECK(std::equal(data.data.begin(), data.data.end(), bytes.begin() + ElfBuilder::kDataOffset));
    CHECK(image.end() == ElfBuilder::kDataAddr + ElfBuilder::kDataMemSize);
}

TEST_CASE("ELF program headers in any order come back sorted by address", "[image][elf]") {
    ElfBuilder elf;
    std::swap(elf.ph[0], elf.ph[1]);
    auto image = GuestImage::parse(elf.bytes());
    REQUIRE(image.segments.size() == 2);
    CHECK(image.segments[0].gpa == ElfBuilder::kTextAddr);
    CHECK(image.segments[1].gpa == ElfBuilder::kDataAddr);
}

TEST_CASE("ELF non-PT_LOAD and empty segments are ignored", "[image][elf]") {
    ElfBuilder elf;
    Elf64_Phdr note = elf.text();
    note.p_type = PT_NOTE;
    note.p_vaddr = note.p_paddr = 0x1234; // would be invalid if it were loaded
    Elf64_Phdr empty = elf.data();
    empty.p_vaddr = empty.p_paddr = ElfBuilder::kTextAddr; // would overlap if it were loaded
    empty.p_filesz = empty.p_memsz = 0;
    elf.ph.push_back(note);
    elf.ph.push_back(empty);
    auto image = GuestImage::parse(elf.bytes());
    CHECK(image.segments.size() == 2);
}

TEST_CASE("ELF segment with no file bytes (only .bss) loads as zeros", "[image][elf]") {
    // Found by fuzz_image: the segment's empty data reached memcpy as a null
    // source pointer, which UBSan reports (nonnull attribute) even for 0 bytes.
    ElfBuilder elf;
    elf.data().p_filesz = 0;
    auto image = GuestImage::parse(elf.bytes());
    REQUIRE(image.segments.size() == 2);
    CHECK(image.segments[1].data.empty());
    CHECK(image.segments[1].mem_size == ElfBuilder::kDataMemSize);
    minivmm::BootRam mem(4 << 20);
    mem.fill(ElfBuilder::kDataAddr, ElfBuilder::kDataMemSize, std::byte{0xaa});
    minivmm::load_image(mem, image);
    auto bss = mem.range(ElfBuilder::kDataAddr, ElfBuilder::kDataMemSize);
    REQUIRE(bss);
    CHECK(std::all_of(bss->begin(), bss->end(), [](std::byte b) { return b == std::byte{0}; }));
    // An empty write (a null span) is fine anywhere in RAM, up to its end.
    CHECK_NOTHROW(mem.write_bytes(0x200000, std::span<const std::byte>()));
    CHECK_NOTHROW(mem.write_bytes(mem.size(), std::span<const std::byte>()));
}

TEST_CASE("malformed ELF images are rejected with a message naming the problem", "[image][elf]") {
    ElfBuilder elf;

    SECTION("truncated header") {
        auto bytes = elf.bytes();
        bytes.resize(sizeof(Elf64_Ehdr) - 1);
        REQUIRE_THROWS_WITH(GuestImage::parse(bytes, "test.elf"),
                            Contains("test.elf") && Contains("shorter than an ELF64 header"));
    }
    SECTION("ELFCLASS32") {
        elf.eh.e_ident[EI_CLASS] = ELFCLASS32;
        require_elf_error(elf, "ELFCLASS64");
    }
    SECTION("big-endian") {
        elf.eh.e_ident[EI_DATA] = ELFDATA2MSB;
        require_elf_error(elf, "little-endian");
    }
    SECTION("unknown ELF version") {
        elf.eh.e_version = 2;
        require_elf_error(elf, "version");
    }
    SECTION("wrong e_machine") {
        elf.eh.e_machine = EM_386;
        require_elf_error(elf, "e_machine");
    }
    SECTION("ET_DYN") {
        elf.eh.e_type = ET_DYN;
        require_elf_error(elf, "ET_EXEC");
    }
    SECTION("ET_REL") {
        elf.eh.e_type = ET_REL;
        require_elf_error(elf, "ET_EXEC");
    }
    SECTION("bad e_phentsize") {
        elf.eh.e_phentsize = sizeof(Elf64_Phdr) - 8;
        require_elf_error(elf, "e_phentsize");
    }
    SECTION("no program headers") {
        elf.phnum_override = 0;
        require_elf_error(elf, "no program headers");
    }
    SECTION("phoff beyond the file") {
        elf.eh.e_phoff = ElfBuilder::kFileSize;
        require_elf_error(elf, "program header table");
    }
    SECTION("phoff so large that phoff + table size wraps") {
        elf.eh.e_phoff = UINT64_MAX - 8;
        require_elf_error(elf, "program header table");
    }
    SECTION("phnum larger than the file holds") {
        elf.phnum_override = 0xffff;
        require_elf_error(elf, "program header table");
    }
    SECTION("p_filesz > p_memsz") {
        elf.data().p_filesz = elf.data().p_memsz + 1;
        require_elf_error(elf, "p_filesz");
    }
    SECTION("p_filesz > p_memsz with p_memsz == 0") {
        elf.data().p_memsz = 0; // must not be skipped as an empty segment
        require_elf_error(elf, "p_filesz");
    }
    SECTION("segment file range beyond the file") {
        elf.data().p_offset = ElfBuilder::kFileSize - 4; // 0x10 bytes from 4 before the end
        require_elf_error(elf, "outside the file");
    }
    SECTION("segment file offset wraps around") {
        elf.data().p_offset = UINT64_MAX - 4;
        require_elf_error(elf, "outside the file");
    }
    SECTION("p_vaddr != p_paddr") {
        elf.data().p_vaddr += 0x1000;
        require_elf_error(elf, "p_paddr");
    }
    SECTION("no PT_LOAD") {
        elf.text().p_type = PT_NOTE;
        elf.data().p_type = PT_PHDR;
        require_elf_error(elf, "PT_LOAD");
    }
    SECTION("overlapping segments") {
        elf.data().p_vaddr = elf.data().p_paddr = ElfBuilder::kTextAddr + ElfBuilder::kTextSize - 1;
        require_elf_error(elf, "overlap");
    }
    SECTION("identical segments") {
        elf.data().p_vaddr = elf.data().p_paddr = ElfBuilder::kTextAddr;
        require_elf_error(elf, "overlap");
    }
    SECTION("entry outside any segment") {
        elf.eh.e_entry = 0x200000;
        require_elf_error(elf, "entry point");
    }
    SECTION("entry one past the end of the executable segment") {
        elf.eh.e_entry = ElfBuilder::kTextAddr + ElfBuilder::kTextSize;
        require_elf_error(elf, "entry point");
    }
    SECTION("entry inside a non-executable segment") {
        elf.eh.e_entry = ElfBuilder::kDataAddr;
        require_elf_error(elf, "entry point");
    }
    SECTION("address wrap-around") {
        elf.data().p_vaddr = elf.data().p_paddr = UINT64_MAX - 0x10;
        require_elf_error(elf, "wraps");
    }
}

TEST_CASE("ELF entry anywhere inside the executable segment is accepted", "[image][elf]") {
    ElfBuilder elf;
    elf.eh.e_entry = ElfBuilder::kTextAddr + ElfBuilder::kTextSize - 1;
    CHECK(GuestImage::parse(elf.bytes()).entry ==
          ElfBuilder::kTextAddr + ElfBuilder::kTextSize - 1);
}

TEST_CASE("load_file reads a flat image and an ELF image from disk", "[image][file]") {
    auto flat = to_bytes("flat image bytes");
    TempFile flat_file(flat);
    auto image = GuestImage::load_file(flat_file.path(), 1 << 20);
    CHECK(image.format == GuestImage::Format::flat);
    CHECK(image.segments.at(0).data == flat);

    ElfBuilder elf;
    TempFile elf_file(elf.bytes());
    CHECK(GuestImage::load_file(elf_file.path(), 1 << 20).format == GuestImage::Format::elf64);
    // Exactly at the limit is fine.
    CHECK_NOTHROW(GuestImage::load_file(elf_file.path(), ElfBuilder::kFileSize));
}

TEST_CASE("load_file rejects unusable files with a message naming the problem", "[image][file]") {
    SECTION("missing file") {
        std::string path = "/nonexistent/minivmm/image.bin";
        auto what = error_of([&] { GuestImage::load_file(path, 1 << 20); });
        CHECK_THAT(what, Contains(path) && Contains("cannot open") &&
                             Contains("No such file or directory"));
    }
    SECTION("a directory") {
        auto what = error_of([&] { GuestImage::load_file("/tmp", 1 << 20); });
        CHECK_THAT(what, Contains("/tmp") && Contains("not a regular file"));
    }
    SECTION("an empty file") {
        TempFile file(std::vector<std::byte>{});
        auto what = error_of([&] { GuestImage::load_file(file.path(), 1 << 20); });
        CHECK_THAT(what, Contains(file.path()) && Contains("empty"));
    }
    SECTION("a file larger than max_size") {
        std::vector<std::byte> bytes(4097, std::byte{0x90});
        TempFile file(bytes);
        auto what = error_of([&] { GuestImage::load_file(file.path(), 4096); });
        CHECK_THAT(what, Contains(file.path()) && Contains("4097 bytes") && Contains("4096"));
    }
    SECTION("a malformed ELF file") {
        ElfBuilder elf;
        elf.eh.e_machine = EM_AARCH64;
        TempFile file(elf.bytes());
        auto what = error_of([&] { GuestImage::load_file(file.path(), 1 << 20); });
        CHECK_THAT(what, Contains(file.path()) && Contains("e_machine"));
    }
}

TEST_CASE("the real hello guest: ELF entered at 1 MiB, .bin parses as flat", "[image][guest]") {
    auto elf = GuestImage::load_file(guest_path("hello.elf"), 64 << 20);
    CHECK(elf.format == GuestImage::Format::elf64);
    CHECK(elf.entry == 0x100000);
    REQUIRE_FALSE(elf.segments.empty());
    CHECK(elf.segments.front().gpa == 0x100000);
    CHECK(elf.segments.front().executable);

    auto bin = GuestImage::load_file(guest_path("hello.bin"), 64 << 20);
    CHECK(bin.format == GuestImage::Format::flat);
    CHECK(bin.entry == 0x100000);
    REQUIRE(bin.segments.size() == 1);

    // Both loaders must put the same bytes at the same addresses.
    const auto& flat = bin.segments[0].data;
    for (const auto& seg : elf.segments) {
        INFO("ELF segment at 0x" << std::hex << seg.gpa);
        REQUIRE(seg.gpa >= 0x100000);
        std::uint64_t off = seg.gpa - 0x100000;
        REQUIRE(off + seg.data.size() <= flat.size());
        CHECK(std::equal(seg.data.begin(), seg.data.end(), flat.begin() + static_cast<long>(off)));
    }
}
