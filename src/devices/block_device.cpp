#include "devices/block_device.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include <fmt/format.h>

#include "minivmm/block_abi.hpp"
#include "minivmm/boot_layout.hpp"
#include "minivmm/error.hpp"

namespace minivmm {

BlockDevice::BlockDevice(const GuestMemory& mem, VmControl& control, const std::string& path,
                         bool read_only)
    : mem_(mem), control_(control), read_only_(read_only) {
    // No O_CREAT: the disk must exist. O_CLOEXEC: not inherited by children.
    fd_.reset(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
    if (!fd_)
        throw ConfigError(fmt::format("--disk {}: cannot open: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0)
        throw ConfigError(fmt::format("--disk {}: cannot stat: {}", path, std::strerror(errno)));
    std::uint64_t bytes = 0;
    if (S_ISREG(st.st_mode)) {
        bytes = static_cast<std::uint64_t>(st.st_size);
    } else if (S_ISBLK(st.st_mode)) {
        off_t end = ::lseek(fd_.get(), 0, SEEK_END);
        if (end < 0)
            throw ConfigError(
                fmt::format("--disk {}: cannot find its size: {}", path, std::strerror(errno)));
        bytes = static_cast<std::uint64_t>(end);
    } else {
        throw ConfigError(fmt::format("--disk {}: not a regular file or block device", path));
    }
    sectors_ = bytes / blk::kSectorSize;
}

ExitAction BlockDevice::fail(const IoAccess& access, const std::string& why) {
    control_.request_stop(
        {VmExit::Kind::guest_fault, 0, static_cast<int>(access.vcpu_index),
         fmt::format("bad hypercall {} ({}) on vcpu {}: {}", blk::kInfoNr + access.offset,
                     access.offset == 0 ? "blk_info" : "blk_io", access.vcpu_index, why)});
    return ExitAction::stop;
}

std::uint64_t BlockDevice::serve(std::uint64_t op, std::uint64_t sector, std::uint64_t buf,
                                 std::uint64_t len) noexcept {
    if (op == blk::kFlush) {
        // Durability: the request completes only once the data is on stable
        // storage (nothing is cached in the VMM).
        int rc;
        do
            rc = ::fdatasync(fd_.get());
        while (rc != 0 && errno == EINTR);
        return rc == 0 ? blk::kOk : blk::kIoError;
    }
    if (op != blk::kRead && op != blk::kWrite) return blk::kBadOp;
    if (op == blk::kWrite && read_only_) return blk::kReadOnly;
    if (len == 0 || len % blk::kSectorSize != 0) return blk::kBadLength;
    // [sector, sector + count) within [0, sectors_), without overflow.
    if (!range_within(sector, len / blk::kSectorSize, sectors_)) return blk::kOutOfRange;
    std::optional<std::span<std::byte>> span;
    if (op == blk::kRead) {
        // A read writes guest memory: never into the VMM's reserved first
        // MiB (the guest's own page tables and descriptor tables, which it
        // may not write either). writable_range marks the pages dirty.
        if (buf < layout::kReservedEnd) return blk::kBadBuffer;
        span = mem_.writable_range(buf, len);
    } else {
        span = mem_.range(buf, len);
    }
    if (!span) return blk::kBadBuffer;
    // sector * 512 + len <= sectors_ * 512 <= file size, which fits off_t.
    auto offset = static_cast<off_t>(sector * blk::kSectorSize);
    std::byte* p = span->data();
    std::size_t left = span->size();
    while (left != 0) {
        ssize_t n = op == blk::kRead ? ::pread(fd_.get(), p, left, offset)
                                     : ::pwrite(fd_.get(), p, left, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return blk::kIoError; // error, or the file shrank under us
        p += n;
        left -= static_cast<std::size_t>(n);
        offset += n;
    }
    return blk::kOk;
}

ExitAction BlockDevice::access(const IoAccess& access) {
    if (!access.is_write || access.data.size() != 4)
        return fail(access, "a hypercall is a 32-bit OUT (outl) of the argument block's address");
    std::uint32_t block = 0;
    std::memcpy(&block, access.data.data(), sizeof block);
    auto outside = [&](std::uint64_t len) {
        return fmt::format("argument block [{:#x}, +{:#x}) is outside guest RAM ({:#x} bytes)",
                           block, len, mem_.size());
    };
    // The VMM writes into these blocks: never into the reserved first MiB,
    // which the guest itself may not write (its descriptor and page tables).
    if (block < layout::kReservedEnd)
        return fail(access,
                    fmt::format("argument block {:#x} lies in the VMM-reserved first MiB", block));
    if (access.offset == 0) {
        auto out = mem_.writable_range(block, sizeof(blk::Info));
        if (!out) return fail(access, outside(sizeof(blk::Info)));
        blk::Info info{sectors_, read_only_ ? blk::kFlagReadOnly : 0};
        std::memcpy(out->data(), &info, sizeof info);
        return ExitAction::resume;
    }
    auto req = mem_.read<blk::Io>(block);
    if (!req) return fail(access, outside(sizeof(blk::Io)));
    auto status_field =
        mem_.writable_range(block + offsetof(blk::Io, status), sizeof(std::uint64_t));
    if (!status_field) return fail(access, outside(sizeof(blk::Io)));
    std::uint64_t status = serve(req->op, req->sector, req->buf, req->len);
    std::memcpy(status_field->data(), &status, sizeof status);
    return ExitAction::resume;
}

ExitAction BlockHypercallRouter::access(const IoAccess& access) {
    if (access.offset != blk::kInfoNr && access.offset != blk::kIoNr)
        return hypercalls_.access(access);
    IoAccess a = access;
    a.offset -= blk::kInfoNr;
    return disk_.access(a);
}

} // namespace minivmm
