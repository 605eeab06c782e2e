// The one gate through which the Linux personality (issue 16) reads and
// writes a guest program's memory: guest-virtual addresses, checked against
// the program's own mappings. A system call handler never touches guest
// memory any other way, so a bad pointer becomes -EFAULT, never a VMM fault
// (the shape of Solo5 hvt's checked guest pointers, at the virtual level).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace minivmm::linux_abi {

class UserMemory {
  public:
    virtual ~UserMemory() = default;
    // Copies guest-virtual [va, va + out.size()) into `out`. False, with
    // nothing promised about `out`, when any byte is not mapped readable by
    // the program (user, present), or the range wraps.
    virtual bool copy_in(std::uint64_t va, std::span<std::byte> out) const = 0;
    // Copies `in` to guest-virtual [va, va + in.size()). False when any byte
    // is not mapped writable by the program; then no byte was written.
    virtual bool copy_out(std::uint64_t va, std::span<const std::byte> in) = 0;
    // The host address of the 4-byte-aligned 32-bit word at `va`, for atomic
    // operations and host futexes on it while the program runs (its threads
    // wait on the host address of the guest word, so the VMM keeps no table
    // of waiters); null when it is not mapped readable (and writable for
    // `write`). The address stays valid host memory for the VM's life.
    virtual std::uint32_t* word(std::uint64_t va, bool write) = 0;
};

// A NUL-terminated string at `va` of at most `max` bytes before the NUL
// (Linux's PATH_MAX is 4096 with the NUL). nullopt with `error` set to
// EFAULT (unreadable) or ENAMETOOLONG (no NUL within max).
std::optional<std::string> read_string(const UserMemory& mem, std::uint64_t va, std::size_t max,
                                       int& error);

// A system call as the guest made it: number in rax, arguments in rdi, rsi,
// rdx, r10, r8, r9 (the x86-64 Linux convention).
struct SyscallArgs {
    std::uint64_t nr = 0;
    std::uint64_t a[6] = {};
};

} // namespace minivmm::linux_abi
