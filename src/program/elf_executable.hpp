// An unmodified x86-64 Linux executable, parsed and checked on the host
// before any of it reaches the guest (issue 16): what to map where, and the
// values the initial stack's auxiliary vector gives the program: ET_EXEC or
// ET_DYN, static or dynamically linked (PT_INTERP names the interpreter,
// which is parsed the same way with ElfLoadOptions::interpreter), placed as
// Linux's fs/binfmt_elf.c load_elf_binary and load_elf_interp place them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace minivmm::linux_abi {

// One PT_LOAD as it is to be mapped. Its pages [start, end) get file bytes
// [file_offset, file_offset + file_size) copied to `start`, and zeros in
// [zero_start(), end): the bss and the page tails. Like Linux, the copy
// begins at the page boundary, so the bytes of the file page before p_offset
// (the ELF header, for the first segment) are visible too.
struct ElfSegment {
    std::uint64_t start = 0;       // page-aligned, load bias applied
    std::uint64_t end = 0;         // page-aligned, > start
    std::uint64_t file_offset = 0; // page-aligned
    std::uint64_t file_size = 0;   // <= end - start
    bool readable = false;         // PF_R
    bool writable = false;         // PF_W
    bool executable = false;       // PF_X

    std::uint64_t zero_start() const noexcept { return start + file_size; }
    std::uint64_t size() const noexcept { return end - start; }
};

struct ElfExecutable {
    static constexpr std::uint64_t kPageSize = 4096;
    // Linux's vm.mmap_min_addr default: no segment may map below it.
    static constexpr std::uint64_t kMinAddress = 0x10000;
    // The end of x86-64 user space with 4-level paging (Linux's
    // TASK_SIZE_MAX: 2^47 minus the guard page).
    static constexpr std::uint64_t kUserEnd = (1ull << 47) - kPageSize;

    // Linux's PATH_MAX: the longest PT_INTERP string load_elf_binary takes.
    static constexpr std::uint64_t kMaxInterpreterPath = 4096;

    enum class Kind {
        et_exec, // ET_EXEC: at its link addresses, load_bias 0
        et_dyn,  // ET_DYN (a PIE, static or not, or an interpreter): moved by load_bias
    };
    Kind kind = Kind::et_exec;
    // PT_INTERP's path (the dynamic loader, e.g. /lib64/ld-linux-x86-64.so.2)
    // without its NUL; empty for a static executable and for an interpreter.
    std::string interpreter;
    // Sorted by address; their page ranges are disjoint.
    std::vector<ElfSegment> segments;
    std::uint64_t entry = 0;       // AT_ENTRY: e_entry + load_bias
    std::uint64_t phdr = 0;        // AT_PHDR: the program headers in memory
    std::uint16_t phent = 0;       // AT_PHENT: sizeof(Elf64_Phdr)
    std::uint16_t phnum = 0;       // AT_PHNUM
    std::uint64_t load_bias = 0;   // added to every link address (mod 2^64)
    std::uint64_t align = 0;       // the largest power-of-two p_align, at least a page
    std::uint64_t brk_start = 0;   // page-aligned end of the highest segment
    bool stack_executable = false; // PT_GNU_STACK with PF_X (absent: not, on x86-64)

    // The bytes of guest memory the segments' pages take.
    std::uint64_t memory_size() const noexcept;
    // The bytes from the lowest segment's start to the highest one's end:
    // the room placing the image takes (gaps between segments included).
    std::uint64_t span() const noexcept;
};

// What parse_elf_executable needs from its caller.
struct ElfLoadOptions {
    // Where Linux puts a PIE that has an interpreter (ELF_ET_DYN_BASE, 2/3
    // of 47 bits, page-aligned); a fine place for a static-pie too.
    static constexpr std::uint64_t kDefaultPieBase = 0x555555554000;

    // An ET_DYN's lowest page goes here (rounded down to its PT_LOADs'
    // largest p_align, as Linux does); page-aligned. Unused for ET_EXEC.
    std::uint64_t pie_base = kDefaultPieBase;
    // The segments' pages must fit in this many bytes (the guest's RAM).
    std::uint64_t memory_limit = 0;
    // The file is a program's interpreter (load_elf_interp's checks): it
    // must be ET_DYN, its own PT_INTERP is ignored and its program headers
    // need not be loaded (phdr is then 0).
    bool interpreter = false;
};

// Parses `file` (the whole executable) and checks that it can be loaded as
// Linux would load it. `name` (its path) starts every error message.
// \throws ImageError with a one-line reason for anything else: not an ELF
// file, truncated, not x86-64 ELF64 little-endian, not ET_EXEC/ET_DYN (an
// interpreter: not ET_DYN), a second PT_INTERP or one that is not a
// NUL-terminated, non-empty path shorter than PATH_MAX, no PT_LOAD, a segment below
// ElfExecutable::kMinAddress or past ElfExecutable::kUserEnd, overlapping segments (or ones sharing
// a page), p_filesz > p_memsz, p_offset and p_vaddr not congruent modulo the page size, more memory
// than options.memory_limit, an entry point outside every executable segment, program headers that
// are not loaded. \throws ConfigError for options.pie_base not page-aligned.
ElfExecutable parse_elf_executable(std::span<const std::byte> file, const ElfLoadOptions& options,
                                   std::string_view name);

} // namespace minivmm::linux_abi
