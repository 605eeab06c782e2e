#include "program/elf_executable.hpp"

#include <elf.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "minivmm/error.hpp"

namespace minivmm::linux_abi {

namespace {

constexpr std::uint64_t kPage = ElfExecutable::kPageSize;
constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
// Linux's load_elf_phdrs: at most 64 KiB of program headers.
constexpr std::uint64_t kMaxPhdrBytes = 65536;

constexpr std::uint64_t page_down(std::uint64_t v) noexcept {
    return v & ~(kPage - 1);
}

// [addr, addr + len) inside [0, limit), without wrapping.
constexpr bool within(std::uint64_t addr, std::uint64_t len, std::uint64_t limit) noexcept {
    return len <= limit && addr <= limit - len;
}

// A PT_LOAD as the file states it (link addresses).
struct Load {
    unsigned index = 0;
    Elf64_Phdr ph{};
};

class Parser {
  public:
    Parser(std::span<const std::byte> file, const ElfLoadOptions& options, std::string_view name)
        : file_(file), options_(options), name_(name) {}

    ElfExecutable parse() {
        read_header();
        read_program_headers();
        place_segments();
        find_entry();
        find_program_headers();
        return std::move(exe_);
    }

  private:
    template <typename... Args>
    [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
        throw ImageError(
            fmt::format("{}: {}", name_, fmt::format(format, std::forward<Args>(args)...)));
    }

    void read_header() {
        if (file_.size() < SELFMAG || std::memcmp(file_.data(), ELFMAG, SELFMAG) != 0)
            fail("not an ELF file (no \\x7fELF magic)");
        if (file_.size() < EI_NIDENT)
            fail("truncated ELF header ({} bytes, an ELF64 header has {})", file_.size(),
                 sizeof(Elf64_Ehdr));
        const auto ident = reinterpret_cast<const unsigned char*>(file_.data());
        if (ident[EI_CLASS] == ELFCLASS32)
            fail("32-bit ELF (ELFCLASS32) is not supported, only x86-64 ELF64");
        if (ident[EI_CLASS] != ELFCLASS64) fail("unknown ELF class {}", ident[EI_CLASS]);
        if (ident[EI_DATA] != ELFDATA2LSB)
            fail("not little-endian (EI_DATA {}), x86-64 is ELFDATA2LSB", ident[EI_DATA]);
        if (file_.size() < sizeof(Elf64_Ehdr))
            fail("truncated ELF header ({} bytes, an ELF64 header has {})", file_.size(),
                 sizeof(Elf64_Ehdr));
        std::memcpy(&eh_, file_.data(), sizeof eh_);
        if (eh_.e_machine != EM_X86_64)
            fail("e_machine {} is not x86-64 (EM_X86_64, {})", eh_.e_machine, EM_X86_64);
        if (options_.interpreter && eh_.e_type != ET_DYN) {
            // The interpreter goes wherever the mmap area has room, which
            // only a shared object can (Linux would map an ET_EXEC one at
            // its link addresses, over whatever is there).
            fail("e_type {} is not ET_DYN: an interpreter must be a shared object", eh_.e_type);
        } else if (eh_.e_type == ET_EXEC) {
            exe_.kind = ElfExecutable::Kind::et_exec;
        } else if (eh_.e_type == ET_DYN) {
            exe_.kind = ElfExecutable::Kind::et_dyn;
        } else {
            fail("e_type {} is not an executable (ET_EXEC or ET_DYN){}", eh_.e_type,
                 eh_.e_type == ET_REL    ? ": a relocatable object"
                 : eh_.e_type == ET_CORE ? ": a core dump"
                                         : "");
        }
        if (eh_.e_phentsize != sizeof(Elf64_Phdr))
            fail("e_phentsize {} is not sizeof(Elf64_Phdr), {}", eh_.e_phentsize,
                 sizeof(Elf64_Phdr));
        if (eh_.e_phnum == 0) fail("no program headers (e_phnum 0)");
        const std::uint64_t table = std::uint64_t{eh_.e_phnum} * sizeof(Elf64_Phdr);
        if (table > kMaxPhdrBytes)
            fail("{} program headers, more than Linux takes ({} bytes of them)", eh_.e_phnum,
                 kMaxPhdrBytes);
        if (!within(eh_.e_phoff, table, file_.size()))
            fail("truncated: the program header table [{:#x}, +{:#x}) lies past the end of the "
                 "file ({} bytes)",
                 eh_.e_phoff, table, file_.size());
        exe_.phent = eh_.e_phentsize;
        exe_.phnum = eh_.e_phnum;
    }

    void read_program_headers() {
        for (unsigned i = 0; i < eh_.e_phnum; ++i) {
            Elf64_Phdr ph;
            std::memcpy(&ph, file_.data() + eh_.e_phoff + i * sizeof(Elf64_Phdr), sizeof ph);
            switch (ph.p_type) {
            case PT_INTERP:
                // load_elf_interp never looks at an interpreter's own.
                if (!options_.interpreter) read_interpreter(i, ph);
                break;
            case PT_GNU_STACK:
                exe_.stack_executable = (ph.p_flags & PF_X) != 0;
                break;
            case PT_PHDR:
                if (!phdr_segment_) phdr_segment_ = ph;
                break;
            case PT_LOAD:
                check_load(i, ph);
                if (ph.p_memsz != 0) loads_.push_back({i, ph}); // an empty one maps nothing
                break;
            default:
                break;
            }
        }
        if (loads_.empty()) fail("no loadable (PT_LOAD) segment");
        std::sort(loads_.begin(), loads_.end(),
                  [](const Load& a, const Load& b) { return a.ph.p_vaddr < b.ph.p_vaddr; });
    }

    // load_elf_binary: one PT_INTERP of 2 to PATH_MAX bytes whose last is
    // NUL; the path is the string up to the first NUL (not empty here, where
    // Linux's open would fail with ENOENT).
    void read_interpreter(unsigned i, const Elf64_Phdr& ph) {
        if (!exe_.interpreter.empty()) fail("more than one PT_INTERP (segment {})", i);
        if (ph.p_filesz < 2 || ph.p_filesz > ElfExecutable::kMaxInterpreterPath)
            fail("PT_INTERP (segment {}) of {} bytes: not a path of 1 to {} bytes and its NUL", i,
                 ph.p_filesz, ElfExecutable::kMaxInterpreterPath - 1);
        if (!within(ph.p_offset, ph.p_filesz, file_.size()))
            fail("truncated: PT_INTERP's bytes [{:#x}, +{:#x}) lie past the end of the file ({} "
                 "bytes)",
                 ph.p_offset, ph.p_filesz, file_.size());
        const auto* text = reinterpret_cast<const char*>(file_.data() + ph.p_offset);
        if (text[ph.p_filesz - 1] != '\0')
            fail("PT_INTERP (segment {}) does not end with a NUL", i);
        exe_.interpreter = std::string(text); // NUL-terminated: checked above
        if (exe_.interpreter.empty()) fail("PT_INTERP (segment {}) is an empty path", i);
    }

    void check_load(unsigned i, const Elf64_Phdr& ph) const {
        if (ph.p_filesz > ph.p_memsz)
            fail("segment {}: p_filesz {:#x} is larger than p_memsz {:#x}", i, ph.p_filesz,
                 ph.p_memsz);
        // (A bss-only segment's p_offset is never read.)
        if (ph.p_filesz != 0 && !within(ph.p_offset, ph.p_filesz, file_.size()))
            fail("truncated: segment {}'s file bytes [{:#x}, +{:#x}) lie past the end of the "
                 "file ({} bytes)",
                 i, ph.p_offset, ph.p_filesz, file_.size());
        if (ph.p_offset % kPage != ph.p_vaddr % kPage)
            fail("segment {}: p_offset {:#x} and p_vaddr {:#x} differ modulo the page size ({})", i,
                 ph.p_offset, ph.p_vaddr, kPage);
        // Room for the end and its page rounding in 64 bits: the placement
        // below then works on differences that cannot wrap.
        if (!within(ph.p_vaddr, ph.p_memsz, kMax - (kPage - 1)))
            fail("segment {}: address range [{:#x}, +{:#x}) wraps around", i, ph.p_vaddr,
                 ph.p_memsz);
    }

    // A link address at or above the lowest PT_LOAD's page, where it lands.
    std::optional<std::uint64_t> place(std::uint64_t link) const noexcept {
        const std::uint64_t offset = link - low_page_; // link >= low_page_
        if (offset > kMax - base_) return std::nullopt;
        return base_ + offset;
    }

    void place_segments() {
        low_page_ = page_down(loads_.front().ph.p_vaddr);
        // As Linux's maximum_alignment: a bias keeps every segment's p_align
        // (a power of two of at least a page).
        exe_.align = kPage;
        for (const auto& l : loads_)
            if (std::has_single_bit(l.ph.p_align)) exe_.align = std::max(exe_.align, l.ph.p_align);
        if (exe_.kind == ElfExecutable::Kind::et_exec) {
            base_ = low_page_;
        } else {
            if (options_.pie_base % kPage != 0)
                throw ConfigError(fmt::format("load base {:#x} for an ET_DYN executable is not "
                                              "page-aligned",
                                              options_.pie_base));
            base_ = options_.pie_base & ~(exe_.align - 1);
        }
        exe_.load_bias = base_ - low_page_; // modulo 2^64, as Linux's

        std::uint64_t total = 0;
        for (std::size_t k = 0; k < loads_.size(); ++k) {
            const Load& l = loads_[k];
            const auto start = place(l.ph.p_vaddr);
            const auto last = place(l.ph.p_vaddr + l.ph.p_memsz - 1);
            if (!start || !last || *last >= ElfExecutable::kUserEnd)
                fail("segment {}: [{:#x}, +{:#x}) lies above the 47-bit user address space "
                     "(which ends at {:#x})",
                     l.index, start.value_or(l.ph.p_vaddr), l.ph.p_memsz, ElfExecutable::kUserEnd);
            if (page_down(*start) < ElfExecutable::kMinAddress)
                fail("segment {}: address {:#x} lies below 64 KiB (Linux's mmap_min_addr, {:#x})",
                     l.index, *start, ElfExecutable::kMinAddress);
            ElfSegment seg;
            seg.start = page_down(*start);
            seg.end = page_down(*last) + kPage; // no wrap: *last < kUserEnd
            if (l.ph.p_filesz != 0) {
                seg.file_offset = page_down(l.ph.p_offset);
                seg.file_size = l.ph.p_offset % kPage + l.ph.p_filesz;
            }
            seg.readable = (l.ph.p_flags & PF_R) != 0;
            seg.writable = (l.ph.p_flags & PF_W) != 0;
            seg.executable = (l.ph.p_flags & PF_X) != 0;
            if (k > 0) {
                const Load& prev = loads_[k - 1];
                const ElfSegment& before = exe_.segments.back();
                if (prev.ph.p_vaddr + prev.ph.p_memsz > l.ph.p_vaddr)
                    fail("segments {} and {} overlap: [{:#x}, +{:#x}) and [{:#x}, +{:#x})",
                         prev.index, l.index, prev.ph.p_vaddr, prev.ph.p_memsz, l.ph.p_vaddr,
                         l.ph.p_memsz);
                if (before.end > seg.start)
                    fail("segments {} and {} share the page at {:#x}", prev.index, l.index,
                         seg.start);
            }
            total += seg.size(); // disjoint pages below 2^47: no overflow
            exe_.segments.push_back(seg);
        }
        if (total > options_.memory_limit)
            fail("its segments need {} bytes of memory, more than the {} bytes of guest RAM", total,
                 options_.memory_limit);
        exe_.brk_start = exe_.segments.back().end;
    }

    void find_entry() {
        const std::uint64_t entry = eh_.e_entry;
        const bool inside = std::any_of(loads_.begin(), loads_.end(), [&](const Load& l) {
            return (l.ph.p_flags & PF_X) != 0 && entry >= l.ph.p_vaddr &&
                   entry - l.ph.p_vaddr < l.ph.p_memsz;
        });
        if (!inside) fail("entry point {:#x} is outside every executable segment", entry);
        exe_.entry = *place(entry); // inside a placed segment
    }

    void find_program_headers() {
        const std::uint64_t table = std::uint64_t{eh_.e_phnum} * sizeof(Elf64_Phdr);
        if (phdr_segment_) {
            const std::uint64_t at = phdr_segment_->p_vaddr;
            const bool loaded = std::any_of(loads_.begin(), loads_.end(), [&](const Load& l) {
                return at >= l.ph.p_vaddr && within(at - l.ph.p_vaddr, table, l.ph.p_memsz);
            });
            if (!loaded) fail("PT_PHDR at {:#x} is not inside a loaded segment", at);
            exe_.phdr = *place(at);
            return;
        }
        // As Linux: the PT_LOAD whose file bytes hold the table.
        for (const auto& l : loads_) {
            if (eh_.e_phoff >= l.ph.p_offset &&
                within(eh_.e_phoff - l.ph.p_offset, table, l.ph.p_filesz)) {
                exe_.phdr = *place(l.ph.p_vaddr + (eh_.e_phoff - l.ph.p_offset));
                return;
            }
        }
        // An interpreter's AT_PHDR is never asked for (ld.so finds its own
        // headers through __ehdr_start).
        if (options_.interpreter) return;
        fail("the program headers (file offset {:#x}) are in no loaded segment, and there is no "
             "PT_PHDR",
             eh_.e_phoff);
    }

    std::span<const std::byte> file_;
    const ElfLoadOptions& options_;
    std::string_view name_;
    Elf64_Ehdr eh_{};
    std::vector<Load> loads_;
    std::optional<Elf64_Phdr> phdr_segment_;
    std::uint64_t low_page_ = 0; // the lowest PT_LOAD's page, link address
    std::uint64_t base_ = 0;     // where low_page_ lands
    ElfExecutable exe_;
};

} // namespace

std::uint64_t ElfExecutable::memory_size() const noexcept {
    std::uint64_t total = 0;
    for (const auto& s : segments)
        total += s.size();
    return total;
}

std::uint64_t ElfExecutable::span() const noexcept {
    return segments.empty() ? 0 : segments.back().end - segments.front().start;
}

ElfExecutable parse_elf_executable(std::span<const std::byte> file, const ElfLoadOptions& options,
                                   std::string_view name) {
    return Parser(file, options, name).parse();
}

} // namespace minivmm::linux_abi
