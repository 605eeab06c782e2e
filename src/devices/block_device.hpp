// The paravirtual block device ("straightforward version"): a host file
// exposed as a disk of 512-byte sectors through two minivmm-defined
// hypercalls, blk_info (17) and blk_io (18) (include/minivmm/block_abi.hpp,
// README "Block device").
//
// Requests are served synchronously on the vCPU thread that made the
// hypercall: pread/pwrite straight between the host file and the guest
// buffer (no bounce copy), and a flush is an fdatasync that has returned
// before the guest resumes (no write-back cache in the VMM). A malformed
// request fails with a status code in its block and the guest continues; an
// argument block outside guest RAM stops the guest like any bad hypercall.
#pragma once

#include <cstdint>
#include <string>

#include "minivmm/guest_memory.hpp"
#include "minivmm/io_bus.hpp"
#include "minivmm/unique_fd.hpp"
#include "vcpu/vm_control.hpp"

namespace minivmm {

class BlockDevice final : public IoDevice {
  public:
    // Opens `path` (which must exist and be a regular file or a block device)
    // read-write, or read-only when `read_only`. The disk has size / 512
    // sectors (a partial last sector is not exposed). Throws ConfigError.
    BlockDevice(const GuestMemory& mem, VmControl& control, const std::string& path,
                bool read_only);

    // Registered on the port bus at 0x500 + blk::kInfoNr, 2 ports: offset 0
    // is blk_info, offset 1 blk_io.
    ExitAction access(const IoAccess& access) override;

    std::uint64_t sectors() const noexcept { return sectors_; }
    bool read_only() const noexcept { return read_only_; }

  private:
    ExitAction fail(const IoAccess& access, const std::string& why);
    std::uint64_t serve(std::uint64_t op, std::uint64_t sector, std::uint64_t buf,
                        std::uint64_t len) noexcept;

    const GuestMemory& mem_;
    VmControl& control_;
    UniqueFd fd_;
    std::uint64_t sectors_ = 0;
    bool read_only_;
};

// Owns the whole hypercall port range when there is a disk: hypercalls 17
// and 18 go to the block device (offset 0 and 1), the rest to the ABI's
// hypercall device, which reads the number from the offset. (The port bus
// needs every byte of an access inside one range, so the ranges cannot just
// be split around the disk's two ports.)
class BlockHypercallRouter final : public IoDevice {
  public:
    BlockHypercallRouter(IoDevice& hypercalls, BlockDevice& disk) noexcept
        : hypercalls_(hypercalls), disk_(disk) {}
    ExitAction access(const IoAccess& access) override;

  private:
    IoDevice& hypercalls_;
    BlockDevice& disk_;
};

} // namespace minivmm
