// Fuzz target: the Linux-program loader's ELF parser (src/program/
// elf_executable.*) and the initial stack built from what it accepts. The
// input is the executable file. A refusal must be an ImageError with one
// line naming the file; an accepted executable must keep every promise of
// elf_executable.hpp, with each segment's file bytes inside the input (they
// are all read, so ASan sees a range past its end), and its stack must
// decode back.
#include <elf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "fuzz_support.hpp"
#include "minivmm/error.hpp"
#include "program/elf_executable.hpp"
#include "program/initial_stack.hpp"

using namespace minivmm;
using namespace minivmm::linux_abi;

namespace {

constexpr std::uint64_t kGuestRam = 256ull << 20;
constexpr std::uint64_t kPage = ElfExecutable::kPageSize;

void check_executable(const ElfExecutable& exe, std::span<const std::byte> file) {
    MINIVMM_FUZZ_CHECK(!exe.segments.empty());
    MINIVMM_FUZZ_CHECK(exe.memory_size() <= kGuestRam);
    MINIVMM_FUZZ_CHECK(exe.phent == sizeof(Elf64_Phdr));
    MINIVMM_FUZZ_CHECK(exe.phnum != 0);
    bool entry_ok = false, phdr_ok = false;
    unsigned sum = 0;
    for (std::size_t i = 0; i < exe.segments.size(); ++i) {
        const ElfSegment& s = exe.segments[i];
        MINIVMM_FUZZ_CHECK(s.start % kPage == 0 && s.end % kPage == 0);
        MINIVMM_FUZZ_CHECK(s.start < s.end);
        MINIVMM_FUZZ_CHECK(s.start >= ElfExecutable::kMinAddress);
        MINIVMM_FUZZ_CHECK(s.end <= ElfExecutable::kUserEnd);
        MINIVMM_FUZZ_CHECK(s.file_offset % kPage == 0);
        MINIVMM_FUZZ_CHECK(s.file_size <= s.size());
        MINIVMM_FUZZ_CHECK(s.file_offset <= file.size());
        MINIVMM_FUZZ_CHECK(s.file_size <= file.size() - s.file_offset);
        for (std::byte b : file.subspan(s.file_offset, s.file_size))
            sum += static_cast<unsigned>(b);
        if (i > 0) MINIVMM_FUZZ_CHECK(exe.segments[i - 1].end <= s.start);
        entry_ok = entry_ok || (s.executable && exe.entry >= s.start && exe.entry < s.end);
        phdr_ok = phdr_ok || (exe.phdr >= s.start && exe.phdr < s.end);
    }
    MINIVMM_FUZZ_CHECK(entry_ok);
    MINIVMM_FUZZ_CHECK(phdr_ok);
    MINIVMM_FUZZ_CHECK(exe.brk_start == exe.segments.back().end);
    if (exe.kind == ElfExecutable::Kind::et_exec) MINIVMM_FUZZ_CHECK(exe.load_bias == 0);
    asm volatile("" : : "r"(sum)); // the reads must happen
}

void check_stack(const ElfExecutable& exe) {
    InitialStackInputs in;
    in.stack_top = 0x7ffffffff000;
    in.argv = {"prog", "arg"};
    in.envp = {"A=1"};
    in.execfn = "/prog";
    in.phdr = exe.phdr;
    in.phent = exe.phent;
    in.phnum = exe.phnum;
    in.entry = exe.entry;
    in.base = 0;
    const InitialStack s = build_initial_stack(in);
    MINIVMM_FUZZ_CHECK(s.rsp % 16 == 0);
    MINIVMM_FUZZ_CHECK(s.bytes.size() == s.stack_top - s.rsp);
    std::uint64_t argc;
    std::memcpy(&argc, s.bytes.data(), sizeof argc);
    MINIVMM_FUZZ_CHECK(argc == 2);
    for (const auto& [key, value] : s.auxv_entries) {
        if (key == AT_PHDR) MINIVMM_FUZZ_CHECK(value == exe.phdr);
        if (key == AT_ENTRY) MINIVMM_FUZZ_CHECK(value == exe.entry);
        if (key == AT_PHNUM) MINIVMM_FUZZ_CHECK(value == exe.phnum);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto file = std::as_bytes(std::span(data, size));
    ElfLoadOptions options;
    options.memory_limit = kGuestRam;
    ElfExecutable exe;
    try {
        exe = parse_elf_executable(file, options, "fuzz");
    } catch (const ImageError& e) {
        const std::string_view why = e.what();
        MINIVMM_FUZZ_CHECK(why.starts_with("fuzz: "));
        MINIVMM_FUZZ_CHECK(why.size() > 6);
        MINIVMM_FUZZ_CHECK(why.find('\n') == std::string_view::npos);
        return 0;
    }
    check_executable(exe, file);
    check_stack(exe);
    return 0;
}
