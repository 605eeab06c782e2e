/// \file
/// A guest image parsed and validated: a flat binary (loaded at 1 MiB, entered
/// at its first byte) or an ELF64 executable (loaded by its PT_LOAD program
/// headers, entered at e_entry), per guest ABI v1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace minivmm {

/// One loadable piece of an image (owns a copy of its bytes).
struct ImageSegment {
    std::uint64_t gpa = 0;       ///< where it is loaded (identity mapped)
    std::uint64_t mem_size = 0;  ///< bytes it occupies; the tail past data is zeroed
    std::vector<std::byte> data; ///< bytes copied from the file
    bool executable = false;     ///< PF_X (ELF); true for a flat image
};

/// A parsed, validated guest image: a value type that owns copies of its
/// segments' bytes (the file is not kept open).
struct GuestImage {
    /// What the file was.
    enum class Format {
        flat, ///< loaded at layout::kImageBase, entered at its first byte
        elf64 ///< static ELF64 executable: PT_LOAD segments, entered at e_entry
    };

    Format format = Format::flat;       ///< what the file was
    std::uint64_t entry = 0;            ///< guest-physical entry point
    std::vector<ImageSegment> segments; ///< sorted by gpa, non-overlapping

    /// First byte past the highest segment.
    std::uint64_t end() const noexcept;

    /// Parses `bytes`: ELF64 when it starts with the ELF magic, flat otherwise.
    /// `name` is used in error messages.
    /// \throws ImageError naming what is wrong.
    static GuestImage parse(std::span<const std::byte> bytes, const std::string& name = "image");
    /// Reads and parses a regular file no larger than `max_size` bytes.
    /// \throws ImageError if it cannot be read, is empty, too large or malformed.
    static GuestImage load_file(const std::string& path, std::uint64_t max_size);
};

/// The whole of a regular file of 1 to `max_size` bytes (what load_file
/// parses; the Linux program loader reads executables with it too).
/// \throws ImageError if it cannot be opened or read, is not a regular
/// file, is empty or larger than `max_size`.
std::vector<std::byte> read_image_file(const std::string& path, std::uint64_t max_size);

} // namespace minivmm
