// The top of a guest Linux program's system calls (issue 16): one call, as
// the vCPU loop took it from the registers, routed to whoever serves its
// number (the file calls, the process calls, the memory calls). A number
// nobody serves gets -ENOSYS, as from a kernel without that call, and one
// warning line per number, so that what a program misses shows without
// flooding the log.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "program/file_syscalls.hpp"
#include "program/process_calls.hpp"
#include "program/user_memory.hpp"

namespace minivmm::linux_abi {

// The highest x86-64 system call number syscall_name knows.
inline constexpr std::uint64_t kLastSyscallNumber = 469;

// The name of x86-64 system call `nr` (arch/x86/entry/syscalls/
// syscall_64.tbl); "" for a number that has none.
std::string_view syscall_name(std::uint64_t nr);

class SyscallDispatcher {
  public:
    // brk, mmap, munmap, mprotect, madvise, mremap: the result, or nullopt
    // for a number it does not serve.
    using MemoryCalls = std::function<std::optional<std::int64_t>(const SyscallArgs&)>;
    // Takes one warning line; the default writes it to logger().warn.
    using WarningSink = std::function<void(const std::string&)>;

    // How many times one number was called.
    struct CallCount {
        std::uint64_t nr;
        std::uint64_t count;
    };

    // All three must outlive the dispatcher; `memory` may be empty.
    SyscallDispatcher(FileSystemCalls& files, ProcessCalls& process, MemoryCalls memory,
                      WarningSink warn = {});
    SyscallDispatcher(const SyscallDispatcher&) = delete;
    SyscallDispatcher& operator=(const SyscallDispatcher&) = delete;

    // Serves one call of `thread`. Linux reads the number from eax (the
    // upper half of rax is ignored); so does this. Thread-safe.
    SyscallResult dispatch(const SyscallArgs& args, ThreadContext& thread);

    // The numbers called so far and how often, by number; numbers above
    // kLastSyscallNumber are summed in one entry with nr = kOtherNumbers.
    static constexpr std::uint64_t kOtherNumbers = ~std::uint64_t{0};
    std::vector<CallCount> counts() const;

  private:
    void warn_unsupported(std::uint64_t nr);

    FileSystemCalls& files_;
    ProcessCalls& process_;
    MemoryCalls memory_;
    WarningSink warn_;
    // One counter per known number, and one for all others.
    std::array<std::atomic<std::uint64_t>, kLastSyscallNumber + 2> counts_{};
    std::array<std::atomic<bool>, kLastSyscallNumber + 1> warned_{};
    // Numbers beyond the table already warned about: at most
    // kMaxWarnedOthers of them, so that a program cycling through numbers
    // cannot grow the set without end.
    static constexpr std::size_t kMaxWarnedOthers = 256;
    std::mutex others_mutex_;
    std::set<std::uint64_t> warned_others_;
    bool others_overflowed_ = false;
};

} // namespace minivmm::linux_abi
