// The guest program's descriptor table (issue 16): guest fd numbers mapped to
// host descriptors the VMM holds for it. Guest numbers are not host numbers,
// so the program can name, and close, only what this table gives it.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "minivmm/unique_fd.hpp"

namespace minivmm::linux_abi {

// What an open file is, as the system calls need to know it.
enum class FileKind {
    regular,
    directory,
    pipe,
    socket,
    char_device,
    block_device,
    symlink,      // an O_PATH | O_NOFOLLOW descriptor of the link itself
    vmm_terminal, // one of the VMM's own stdin/stdout/stderr, a terminal: the
                  // only kind on which terminal ioctls are passed to the host
    other,
};

// What kind of file host descriptor `fd` refers to (fstat; `other` if that
// fails).
FileKind file_kind_of(int fd);

// One open file description as the guest holds it: one host descriptor (its
// own, close-on-exec on the host), shared by every guest fd dup'ed from it,
// as dup shares an open file description in Linux (offset, status flags).
struct OpenFile {
    UniqueFd host;
    FileKind kind = FileKind::other;
};

// Thread-safe: the program's threads share one table (CLONE_FILES). A file
// a call is using stays open until the call ends, even if another thread
// closes its number meanwhile (entries are shared_ptrs, as Linux's fget).
class FileTable {
  public:
    // RLIMIT_NOFILE's usual soft limit.
    static constexpr int kDefaultLimit = 1024;

    // An empty table whose numbers are 0 .. limit-1 (the hard limit).
    explicit FileTable(int limit = kDefaultLimit);
    FileTable(const FileTable&) = delete;
    FileTable& operator=(const FileTable&) = delete;

    // Guest fds 0, 1, 2 become duplicates of the VMM's own 0, 1, 2 (a closed
    // one stays closed), so the guest closing its fd 1 leaves the VMM's
    // stdout open. Throws SystemError if duplicating fails otherwise.
    void adopt_vmm_stdio();

    // A copy for a forked child: the same open files under the same numbers
    // (the host descriptors are shared, as fork shares open file descriptions).
    std::unique_ptr<FileTable> clone_for_fork() const;
    // execve: closes every number marked close-on-exec.
    void close_on_exec();

    // RLIMIT_NOFILE's soft limit: reserve and duplicate_onto hand out no
    // number at or above it (numbers already open above it stay open, as in
    // Linux). It starts at the hard limit.
    int limit() const noexcept { return soft_limit_.load(std::memory_order_relaxed); }
    int hard_limit() const noexcept { return limit_; }
    // setrlimit(RLIMIT_NOFILE): the new soft limit, clamped to 0 .. hard_limit().
    void set_limit(int soft_limit) noexcept;
    // Numbers in use (reserved ones included).
    std::size_t open_count() const;

    // Linux's two-step open (get_unused_fd_flags, then fd_install): reserve
    // the lowest free number >= `lowest` before the file is opened, so that
    // a full table fails with nothing created. -EMFILE if none is free below
    // the soft limit, -EINVAL if `lowest` is negative or not below the hard
    // limit.
    int reserve(int lowest = 0);
    // Fills reserved number `fd`.
    void install(int fd, std::shared_ptr<const OpenFile> file, bool close_on_exec);
    // Gives reserved number `fd` back unused.
    void unreserve(int fd);
    // reserve + install: the new number, or -EMFILE / -EINVAL.
    int add(std::shared_ptr<const OpenFile> file, bool close_on_exec, int lowest = 0);

    // The file under `fd`; null if none (the caller's -EBADF).
    std::shared_ptr<const OpenFile> get(int fd) const;
    // FD_CLOEXEC of `fd`: nullopt if it is not open.
    std::optional<bool> close_on_exec_flag(int fd) const;
    // 0, or -EBADF.
    int set_close_on_exec_flag(int fd, bool close_on_exec);
    // Frees `fd`: 0, or -EBADF. The host descriptor closes with its last user.
    int close(int fd);
    // dup2/dup3's core: `new_fd` names `old_fd`'s file (whatever it named is
    // closed). Returns new_fd, -EBADF (old_fd not open, new_fd out of range)
    // or -EBUSY (new_fd reserved by an open in progress, as Linux).
    int duplicate_onto(int old_fd, int new_fd, bool close_on_exec);

  private:
    struct Slot {
        std::shared_ptr<const OpenFile> file;
        bool close_on_exec = false;
        bool reserved = false;
        bool in_use() const { return file || reserved; }
    };
    const Slot* slot(int fd) const; // under mutex_; null if out of range
    Slot* slot(int fd);

    const int limit_;
    std::atomic<int> soft_limit_;
    mutable std::mutex mutex_;
    std::vector<Slot> slots_; // grows on demand, never beyond limit_
};

} // namespace minivmm::linux_abi
