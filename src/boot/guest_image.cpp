#include "minivmm/guest_image.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "minivmm/boot_layout.hpp"
#include "minivmm/boot_ram.hpp"
#include "minivmm/error.hpp"
#include "minivmm/unique_fd.hpp"

namespace minivmm {

namespace {

GuestImage parse_flat(std::span<const std::byte> bytes) {
    GuestImage image;
    image.format = GuestImage::Format::flat;
    image.entry = layout::kImageBase;
    ImageSegment seg;
    seg.gpa = layout::kImageBase;
    seg.mem_size = bytes.size();
    seg.data.assign(bytes.begin(), bytes.end());
    seg.executable = true;
    image.segments.push_back(std::move(seg));
    return image;
}

GuestImage parse_elf(std::span<const std::byte> bytes, const std::string& name) {
    auto fail = [&](const std::string& why) {
        return ImageError(fmt::format("{}: malformed ELF: {}", name, why));
    };
    if (bytes.size() < sizeof(Elf64_Ehdr)) throw fail("file shorter than an ELF64 header");
    Elf64_Ehdr eh;
    std::memcpy(&eh, bytes.data(), sizeof eh);
    if (eh.e_ident[EI_CLASS] != ELFCLASS64) throw fail("not a 64-bit ELF (ELFCLASS64)");
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB) throw fail("not little-endian");
    if (eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT)
        throw fail("unknown ELF version");
    if (eh.e_machine != EM_X86_64)
        throw fail(fmt::format("e_machine {} is not x86-64", eh.e_machine));
    if (eh.e_type != ET_EXEC)
        throw fail("not a static executable (ET_EXEC); link with -static -no-pie");
    if (eh.e_phentsize != sizeof(Elf64_Phdr))
        throw fail(fmt::format("e_phentsize {} is not {}", eh.e_phentsize, sizeof(Elf64_Phdr)));
    if (eh.e_phnum == 0) throw fail("no program headers");
    if (!range_within(eh.e_phoff, std::uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr), bytes.size()))
        throw fail("program header table lies outside the file");

    GuestImage image;
    image.format = GuestImage::Format::elf64;
    image.entry = eh.e_entry;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, bytes.data() + eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof ph);
        if (ph.p_type != PT_LOAD) continue;
        if (ph.p_filesz > ph.p_memsz)
            throw fail(fmt::format("segment {}: p_filesz {:#x} > p_memsz {:#x}", i, ph.p_filesz,
                                   ph.p_memsz));
        if (ph.p_memsz == 0) continue; // an empty PT_LOAD occupies nothing
        if (!range_within(ph.p_offset, ph.p_filesz, bytes.size()))
            throw fail(fmt::format("segment {}: file range [{:#x}, +{:#x}) lies outside the file",
                                   i, ph.p_offset, ph.p_filesz));
        if (ph.p_paddr != ph.p_vaddr)
            throw fail(fmt::format("segment {}: p_vaddr {:#x} != p_paddr {:#x} (the ABI maps "
                                   "guest memory identity)",
                                   i, ph.p_vaddr, ph.p_paddr));
        if (!range_within(ph.p_paddr, ph.p_memsz, UINT64_MAX))
            throw fail(fmt::format("segment {}: address range wraps around", i));
        ImageSegment seg;
        seg.gpa = ph.p_paddr;
        seg.mem_size = ph.p_memsz;
        auto file = bytes.subspan(ph.p_offset, ph.p_filesz);
        seg.data.assign(file.begin(), file.end());
        seg.executable = (ph.p_flags & PF_X) != 0;
        image.segments.push_back(std::move(seg));
    }
    if (image.segments.empty()) throw fail("no loadable (PT_LOAD) segment");
    std::sort(image.segments.begin(), image.segments.end(),
              [](const auto& a, const auto& b) { return a.gpa < b.gpa; });
    for (std::size_t i = 1; i < image.segments.size(); ++i) {
        const auto& prev = image.segments[i - 1];
        if (prev.gpa + prev.mem_size > image.segments[i].gpa)
            throw fail(fmt::format("segments at {:#x} and {:#x} overlap", prev.gpa,
                                   image.segments[i].gpa));
    }
    bool entry_ok = std::any_of(image.segments.begin(), image.segments.end(), [&](const auto& s) {
        return s.executable && image.entry >= s.gpa && image.entry - s.gpa < s.mem_size;
    });
    if (!entry_ok)
        throw fail(
            fmt::format("entry point {:#x} is not inside an executable segment", image.entry));
    return image;
}

} // namespace

std::uint64_t GuestImage::end() const noexcept {
    std::uint64_t e = 0;
    for (const auto& s : segments)
        e = std::max(e, s.gpa + s.mem_size);
    return e;
}

GuestImage GuestImage::parse(std::span<const std::byte> bytes, const std::string& name) {
    if (bytes.empty()) throw ImageError(fmt::format("{}: image is empty", name));
    static constexpr unsigned char kElfMagic[] = {0x7f, 'E', 'L', 'F'};
    if (bytes.size() >= 4 && std::memcmp(bytes.data(), kElfMagic, 4) == 0)
        return parse_elf(bytes, name);
    return parse_flat(bytes);
}

std::vector<std::byte> read_image_file(const std::string& path, std::uint64_t max_size) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) throw ImageError(fmt::format("{}: cannot open image: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0)
        throw ImageError(fmt::format("{}: cannot stat image: {}", path, std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw ImageError(fmt::format("{}: not a regular file", path));
    auto size = static_cast<std::uint64_t>(st.st_size);
    if (size == 0) throw ImageError(fmt::format("{}: image is empty", path));
    if (size > max_size)
        throw ImageError(fmt::format("{}: image is {} bytes, larger than the {} bytes of guest RAM "
                                     "available for it (give the VM more RAM?)",
                                     path, size, max_size));
    std::vector<std::byte> bytes(size);
    std::size_t done = 0;
    while (done < size) {
        ssize_t n = ::read(fd.get(), bytes.data() + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            throw ImageError(fmt::format("{}: cannot read image: {}", path, std::strerror(errno)));
        if (n == 0) throw ImageError(fmt::format("{}: image shrank while being read", path));
        done += static_cast<std::size_t>(n);
    }
    return bytes;
}

GuestImage GuestImage::load_file(const std::string& path, std::uint64_t max_size) {
    return parse(read_image_file(path, max_size), path);
}

} // namespace minivmm
